"""Benchmark of the op (not a test): prints one JSON row per measurement.

1. forward+backward time of every `aaren.scan` backend and of causal SDPA self-attention vs N;
2. per-token time of `aaren.step` vs a KV-cache decode step (SDPA of one query over the cache) vs context;
3. with --paper: forward+backward at the paper's attention shapes (PAPER_SHAPES), Aaren's scan ("auto",
   "chunked", "dense") and causal SDPA called in turn in one process (the order rotating every round), median
   CPU time of each (one thread with --threads 1). Aaren gets scores (B, H, N) and values (B, H, N, Dh); SDPA q, k, v (B, H, N, Dh).

    python scripts/bench_scan.py [--device cpu|cuda] [--max-n 16384] [--out results/bench_scan.jsonl]
    python scripts/bench_scan.py --paper --threads 1 --out results/bench/scan_paper_cpu.jsonl
Defaults: B=1, H=4, D=32 on CPU; B=4, H=8, D=64 on CUDA.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for `benchmarks` when not installed

import aaren  # noqa: E402
from aaren.scan import _pick as pick_backend  # noqa: E402
from benchmarks.common import clock, device_name  # noqa: E402
from benchmarks.interleave import interleaved_medians  # noqa: E402


def _timeit(fn, *, device, repeats=5, budget_s=20.0):
    """Best wall time of up to `repeats` calls after a warm-up (stops once `budget_s` is spent)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = clock(device)
        fn()
        times.append(clock(device) - t0)
        if sum(times) > budget_s:
            break
    return min(times)


def _machine(device):
    name = device_name(device)
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        sha = None
    return {"device": device, "device_name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "git_sha": sha}


def bench_training(*, b, h, d, lengths, device, dtype, naive_max_n):
    for n in lengths:
        s = torch.randn(b, h, n, device=device, dtype=dtype, requires_grad=True)
        v = torch.randn(b, h, n, d, device=device, dtype=dtype, requires_grad=True)
        q = torch.randn(b, h, n, d, device=device, dtype=dtype, requires_grad=True)
        k = torch.randn(b, h, n, d, device=device, dtype=dtype, requires_grad=True)
        cases = {name: (lambda name=name: aaren.scan(s, v, backend=name).sum().backward())
                 for name in ["naive", "hillis_steele", "chunked"] if name != "naive" or n <= naive_max_n}
        cases["sdpa_causal"] = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        for name, fn in cases.items():
            ms = 1e3 * _timeit(fn, device=device)
            yield {"bench": "fwd_bwd", "op": name, "N": n, "B": b, "H": h, "D": d, "dtype": str(dtype), "ms": ms}


PAPER_SHAPES = {  # config: (B, H, Dh, N) of one attention layer at the task's paper size
    "dt": (64, 1, 128, 60), "forecasting_paper": (32, 8, 64, 96), "cpu_small": (32, 4, 16, 96),
    "classification_n29": (16, 8, 16, 29), "classification_n152": (16, 8, 16, 152),
    "classification_n315": (16, 8, 16, 315), "classification_n1751": (16, 8, 16, 1751), "tpp": (16, 1, 64, 500),
}
DENSE_MAX_N = 512  # the O(N²) dense backend is timed up to here (N = 1751 would need 1.5 GB of weights)


def bench_paper_shapes(*, device, dtype, repeats):
    """Median forward+backward time per op at every paper shape, the ops called in turn (interleaved)."""
    metric = "cpu_ms" if device == "cpu" else "wall_ms"  # CPU time: robust to a shared machine
    for config, (b, h, d, n) in PAPER_SHAPES.items():
        g = torch.Generator(device=device).manual_seed(0)
        s = torch.randn(b, h, n, device=device, dtype=dtype, generator=g).requires_grad_(True)
        q, k, v = (torch.randn(b, h, n, d, device=device, dtype=dtype, generator=g).requires_grad_(True)
                   for _ in range(3))
        cases = {name: (lambda name=name: aaren.scan(s, v, backend=name).sum().backward())
                 for name in ("auto", "chunked", "dense") if name != "dense" or n <= DENSE_MAX_N}
        cases["sdpa_causal"] = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        medians = interleaved_medians(cases, repeats=repeats, device=device, rotate=True)  # none always follows SDPA
        sdpa_ms = medians["sdpa_causal"][metric]
        for name, median in medians.items():
            ms = median[metric]
            yield {"bench": "paper_fwd_bwd", "config": config, "op": name, "B": b, "H": h, "D": d, "N": n,
                   "dtype": str(dtype), "ms": ms, "vs_sdpa": ms / sdpa_ms, "repeats": repeats,
                   "runs": "sdpa" if name == "sdpa_causal" else pick_backend(name, n, None)}


@torch.no_grad()
def bench_streaming(*, b, h, d, contexts, device, dtype, steps=200):
    for t in contexts:
        state = aaren.init_state((b, h), d, device=device, dtype=dtype)
        s_t, v_t = torch.randn(b, h, device=device, dtype=dtype), torch.randn(b, h, d, device=device, dtype=dtype)
        keys = torch.randn(b, h, t, d, device=device, dtype=dtype)
        q_t = torch.randn(b, h, 1, d, device=device, dtype=dtype)

        def aaren_steps():
            st = state
            for _ in range(steps):
                _, st = aaren.step(st, s_t, v_t)

        def kv_steps():
            for _ in range(steps):
                F.scaled_dot_product_attention(q_t, keys, keys)

        for name, fn in (("aaren_step", aaren_steps), ("kv_cache_decode", kv_steps)):
            us = 1e6 * _timeit(fn, device=device, repeats=3) / steps
            yield {"bench": "step", "op": name, "context": t, "B": b, "H": h, "D": d, "dtype": str(dtype),
                   "us_per_token": us}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-n", type=int, default=16384)
    parser.add_argument("--naive-max-n", type=int, default=1024)
    parser.add_argument("--out", default=None, help="also append the rows to this JSONL file")
    parser.add_argument("--paper", action="store_true", help="only the paper shapes (part 3), interleaved")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds per op with --paper")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = _machine(args.device)
    if args.paper:
        rows = list(bench_paper_shapes(device=args.device, dtype=torch.float32, repeats=args.repeats))
    else:
        b, h, d = (1, 4, 32) if args.device == "cpu" else (4, 8, 64)
        lengths = [n for n in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536) if n <= args.max_n]
        rows = list(bench_training(b=b, h=h, d=d, lengths=lengths, device=args.device, dtype=torch.float32,
                                   naive_max_n=args.naive_max_n))
        rows += bench_streaming(b=b, h=h, d=d, contexts=[1024, 4096, 16384], device=args.device,
                                dtype=torch.float32)
    out = open(args.out, "a") if args.out else None
    for row in rows:
        line = json.dumps(row | machine)
        print(line, flush=True)
        if out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
