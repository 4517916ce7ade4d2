"""Benchmark of the op (not a test): prints one JSON row per measurement.

1. forward+backward time of every `aaren.scan` backend and of causal SDPA self-attention vs N;
2. per-token time of `aaren.step` vs a KV-cache decode step (SDPA of one query over the cache) vs context.

    python scripts/bench_scan.py [--device cpu|cuda] [--max-n 16384] [--out results/bench_scan.jsonl]
Defaults: B=1, H=4, D=32 on CPU; B=4, H=8, D=64 on CUDA.
"""
import argparse
import json
import platform
import subprocess
import time

import torch
import torch.nn.functional as F

import aaren


def _timeit(fn, *, device, repeats=5, budget_s=20.0):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s:
            break
    return min(times)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _machine(device):
    name = torch.cuda.get_device_name() if device == "cuda" else _cpu_name()
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
    args = parser.parse_args()
    b, h, d = (1, 4, 32) if args.device == "cpu" else (4, 8, 64)
    lengths = [n for n in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536) if n <= args.max_n]
    machine = _machine(args.device)
    rows = list(bench_training(b=b, h=h, d=d, lengths=lengths, device=args.device, dtype=torch.float32,
                               naive_max_n=args.naive_max_n))
    rows += bench_streaming(b=b, h=h, d=d, contexts=[1024, 4096, 16384], device=args.device, dtype=torch.float32)
    out = open(args.out, "a") if args.out else None
    for row in rows:
        line = json.dumps(row | machine)
        print(line, flush=True)
        if out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
