"""One prepared GPU check of the Triton backend (issue 8): correctness, timings, HBM bound, CUDA-graph streaming.

    python scripts/gpu_check.py                           # on an H100/H200, < 5 min: writes $OUT/gpu_check.json
    python scripts/gpu_check.py --max-n 4096 --out /tmp   # a quicker slice

1. correctness of backend="triton" (outputs, ∂scores, ∂values, final state; the loss also weighs the final c, a)
   against float64 naive (N ≤ 1000) or float64 chunked (longer), fp32 and bf16, masks, scores ±1e4, N up to 64k;
2. forward and forward+backward time at B=4, H=8, D=64, N = 1k … 64k of triton (and its block_d, num_warps and
   tf32x3 variants), chunked, hillis_steele, and causal SDPA in bf16 (FlashAttention) on q, k, v (B, H, N, D);
3. the HBM-traffic bound of the triton kernels: bytes they must read+write / the bandwidth of a measured
   device-to-device copy;
4. one streaming step of aaren.Backbone(kind="aaren", d_model=512, n_layers=2, n_heads=8, d_ff=2048), batch 1:
   eager vs a CUDA-graph replay, µs per token.
Each part runs on its own: a failing part's traceback goes under "errors" and the check goes on. The JSON is
rewritten after every part, so a run cut short keeps what it measured.
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import aaren  # noqa: E402
from aaren.backends import BACKENDS, HAS_TRITON  # noqa: E402

LENGTHS = (1024, 4096, 16384, 65536)
TRITON_VARIANTS = {"triton": {}, "triton_bd16": {"block_d": 16}, "triton_bd64": {"block_d": 64},
                   "triton_4warps": {"num_warps": 4}, "triton_tf32x3": {"precision": "tf32x3"}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gpu_check.json (default: $OUT)")
    p.add_argument("--max-n", type=int, default=LENGTHS[-1], help="longest sequence timed and checked")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--budget-s", type=float, default=1.0, help="timed repeats per measurement stop after this")
    p.add_argument("--stream-tokens", type=int, default=2000)
    return p.parse_args(argv)


class Report:
    """Results and errors of the parts, written to <out>/gpu_check.json after each part."""

    def __init__(self, args):
        cuda = torch.cuda.is_available()
        triton_version = __import__("triton").__version__ if HAS_TRITON else None
        self.path = Path(args.out) / "gpu_check.json"
        self.data = {"device_name": torch.cuda.get_device_name() if cuda else "cpu (no GPU: nothing measured)",
                     "torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton_version,
                     "settings": vars(args), "results": {}, "errors": {}}

    def run(self, name, fn):
        t0 = time.perf_counter()
        try:
            self.data["results"][name] = fn()
        except Exception:  # one failing part must not stop the others
            self.data["errors"][name] = traceback.format_exc(limit=6)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        status = "ok" if name in self.data["results"] else "FAILED: " + self.data["errors"][name].splitlines()[-1]
        print(f"[{time.perf_counter() - t0:6.1f} s] {name}: {status}", flush=True)
        self.write()

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1, default=str))
        return self.path


# ---------------------------------------------------------------------------------------------- correctness

def _loss_grads(backend, s, v, mask, state=None, **kw):
    """o, final state and ∂/∂(s, v) of a fixed random linear loss on o and the final (c, a)."""
    s, v = s.detach().clone().requires_grad_(True), v.detach().clone().requires_grad_(True)
    if backend == "triton" and kw:  # variants: call the backend itself (scan takes no block_d / precision)
        st = state or aaren.init_state(s.shape[:-1], v.shape[-1], device=s.device)
        o, final = BACKENDS["triton"](s.float(), v.float(), mask, st, **kw)
        o = o.to(v.dtype)
    else:
        o, final = aaren.scan(s, v, mask, backend=backend, state=state, return_state=True)
    g = torch.Generator(device=s.device).manual_seed(1)
    outs = (o, final.c, final.a)
    weights = [torch.randn(x.shape, generator=g, device=s.device, dtype=torch.float64) for x in outs]
    sum((x.double() * w).sum() for x, w in zip(outs, weights)).backward()
    return {"o": o, "c": final.c, "a": final.a, "ds": s.grad, "dv": v.grad}


def _case(n, *, dtype, scale=3.0, mask_kind="random", seed=0, **kw):
    """One comparison: triton in `dtype` vs float64 naive (N ≤ 1000) or chunked on the same (rounded) inputs."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    b, h, d = (2, 2, 64) if n <= 1000 else (1, 2, 64)
    s = (torch.randn(b, h, n, generator=g, device="cuda") * scale).to(dtype)
    v = torch.randn(b, h, n, d, generator=g, device="cuda").to(dtype)
    mask = torch.rand(b, h, n, generator=g, device="cuda") > 0.1
    if mask_kind == "padding":
        mask[0, 0, : n // 3] = False  # left padding
        mask[-1, -1, n // 2:] = False  # right padding
        mask[0, -1] = False  # a stream with nothing valid
    got = _loss_grads("triton", s, v, mask, **kw)
    want = _loss_grads("naive" if n <= 1000 else "chunked", s.double(), v.double(), mask)
    errors = {}
    for key in got:
        x, y = got[key].double(), want[key]
        errors[key] = {"max_abs_err": (x - y).abs().max().item(), "max_abs_ref": y.abs().max().item(),
                       "finite": bool(torch.isfinite(x).all())}
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    ok = all(e["finite"] and e["max_abs_err"] <= tol * max(1.0, e["max_abs_ref"]) for e in errors.values())
    return {"ok": ok, "tolerance": tol, "errors": errors}


def _continue_from_state(n=1000):
    g = torch.Generator(device="cuda").manual_seed(2)
    s = torch.randn(4, 8, n, generator=g, device="cuda") * 3
    v = torch.randn(4, 8, n, 64, generator=g, device="cuda")
    o1, state = aaren.scan(s[..., :600], v[..., :600, :], backend="triton", return_state=True)
    o2 = aaren.scan(s[..., 600:], v[..., 600:, :], backend="triton", state=state)
    err = (torch.cat([o1, o2], -2) - aaren.scan(s, v, backend="triton")).abs().max().item()
    return {"ok": err < 1e-5, "max_abs_err": err}


# ---------------------------------------------------------------------------------------------- timings

def _time_ms(fn, budget_s):
    for _ in range(2):  # warm-up: compiles the kernels
        fn()
    torch.cuda.synchronize()
    times = []
    while len(times) < 3 or (len(times) < 30 and sum(times) < budget_s * 1e3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "repeats": len(times)}


def _time_method(method, n, args):
    b, h, d = args.batch, args.heads, args.head_dim
    kw = dict(device="cuda", dtype=torch.bfloat16, requires_grad=True)
    if method == "sdpa_bf16":
        inputs = [torch.randn(b, h, n, d, **kw) for _ in range(3)]  # q, k, v
        forward = lambda: F.scaled_dot_product_attention(*inputs, is_causal=True)  # noqa: E731
    else:
        inputs = [torch.randn(b, h, n, **kw), torch.randn(b, h, n, d, **kw)]  # s, v
        if method in TRITON_VARIANTS:
            state = aaren.init_state((b, h), d, device="cuda")
            forward = lambda: BACKENDS["triton"](inputs[0].float(), inputs[1].float(), None, state,  # noqa: E731
                                                 **TRITON_VARIANTS[method])[0].bfloat16()
        else:
            forward = lambda: aaren.scan(*inputs, backend=method)  # noqa: E731
    grad_out = torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16)

    def forward_backward():
        for x in inputs:
            x.grad = None
        forward().backward(grad_out)

    with torch.no_grad():
        fwd = _time_ms(forward, args.budget_s)
    torch.cuda.reset_peak_memory_stats()
    fwd_bwd = _time_ms(forward_backward, args.budget_s)
    return {"fwd": fwd, "fwd_bwd": fwd_bwd, "peak_mib": torch.cuda.max_memory_allocated() / 2**20}


def _bandwidth():
    """Device-to-device copy of 1 GiB: bytes read + written per second."""
    x = torch.empty(2**28, device="cuda")
    y = torch.empty_like(x)
    t = _time_ms(lambda: y.copy_(x), 1.0)["median_ms"]
    return {"bytes_per_s": 2 * x.numel() * 4 / (t * 1e-3), "copy_ms": t}


def _hbm_bound(n, args, bytes_per_s):
    """Least time of the triton kernels (fp32 operands) and of an ideal fused op on bf16 tensors, fwd+bwd."""
    rows, d, f32 = args.batch * args.heads, args.head_dim, 4
    fwd = rows * n * f32 * (1 + d + d + 2)  # read s, v; write o, (M, log den)
    bwd = rows * n * f32 * ((d + d + 1) + (1 + d + d + 1 + 2) + (1 + d))  # do·o pre-pass; read s v do δ M l; write
    ideal_bf16 = rows * n * 2 * ((1 + d + d) + (1 + d + d + d + 1 + d))  # fwd s v o; bwd s v o do → ds dv
    return {"kernels_fp32_ms": (fwd + bwd) / bytes_per_s * 1e3, "ideal_bf16_ms": ideal_bf16 / bytes_per_s * 1e3,
            "kernels_fp32_bytes": fwd + bwd, "ideal_bf16_bytes": ideal_bf16}


# ---------------------------------------------------------------------------------------------- streaming

@torch.no_grad()
def _streaming(args):
    model = aaren.Backbone(kind="aaren", d_model=512, n_layers=2, n_heads=8, d_ff=2048, dropout=0.0)
    model = model.cuda().eval()
    x = torch.randn(args.stream_tokens, 1, 512, device="cuda")
    state = model.init_state(1)
    for t in range(20):  # warm-up
        model.step(x[t], state)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for t in range(len(x)):
        y, state = model.step(x[t], state)
    torch.cuda.synchronize()
    eager_us = (time.perf_counter() - t0) / len(x) * 1e6

    static_x, static_state = x[0].clone(), model.init_state(1)

    def body():
        y, new = model.step(static_x, static_state)
        for old, fresh in zip(static_state, new):
            for a, b in zip(old, fresh):
                a.copy_(b)
        return y

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = body()
    for old, fresh in zip(static_state, model.init_state(1)):  # back to the empty state
        for a, b in zip(old, fresh):
            a.copy_(b)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for t in range(len(x)):
        static_x.copy_(x[t])
        graph.replay()
    torch.cuda.synchronize()
    graph_us = (time.perf_counter() - t0) / len(x) * 1e6
    err = (static_y - y).abs().max().item()  # the last token's output after the same stream, eager vs replayed
    return {"tokens": len(x), "eager_us_per_token": eager_us, "graph_us_per_token": graph_us,
            "graph_us_per_token_per_layer": graph_us / 2, "graph_vs_eager_max_abs_err": err}


def main(argv=None):
    args = parse_args(argv)
    report = Report(args)
    if not torch.cuda.is_available() or not HAS_TRITON:
        report.data["errors"]["setup"] = "needs a CUDA GPU and triton: nothing was measured"
        print(report.data["errors"]["setup"], "->", report.write())
        return report
    lengths = [n for n in LENGTHS if n <= args.max_n]
    for name, n, kw in [("fp32", 1, {}), ("fp32", 100, {}), ("fp32", 1000, {"mask_kind": "padding"}),
                        ("fp32_scores_1e4", 1000, {"scale": 1e4}), ("fp32_block_d64", 1000, {"block_d": 64}),
                        ("fp32_tf32x3", 1000, {"precision": "tf32x3"}), ("bf16", 1000, {"dtype": torch.bfloat16}),
                        *[("fp32", m, {}) for m in lengths[1:]], ("bf16", lengths[-1], {"dtype": torch.bfloat16})]:
        report.run(f"correct/{name}/N={n}", lambda n=n, kw=kw: _case(n, **{"dtype": torch.float32, **kw}))
    report.run("correct/continue_from_state", _continue_from_state)
    report.run("bandwidth", _bandwidth)
    methods = [*TRITON_VARIANTS, "chunked", "hillis_steele", "sdpa_bf16"]
    for n in lengths:
        for method in methods:
            report.run(f"time/N={n}/{method}", lambda n=n, method=method: _time_method(method, n, args))
        if "bandwidth" in report.data["results"]:
            report.run(f"hbm_bound/N={n}", lambda n=n: _hbm_bound(
                n, args, report.data["results"]["bandwidth"]["bytes_per_s"]))
    report.run("streaming_step", lambda: _streaming(args))
    _summary(report.data, lengths, methods)
    print("wrote", report.write())
    return report


def _summary(data, lengths, methods):
    res = data["results"]
    print(f"\n{data['device_name']}: fwd+bwd median ms (B, H, D as set; bf16 inputs, fp32 accumulation)")
    print(f"{'N':>6}" + "".join(f"{m:>15}" for m in [*methods, "bound_fp32", "bound_bf16"]))
    for n in lengths:
        cells = [res.get(f"time/N={n}/{m}", {}).get("fwd_bwd", {}).get("median_ms") for m in methods]
        bound = res.get(f"hbm_bound/N={n}", {})
        cells += [bound.get("kernels_fp32_ms"), bound.get("ideal_bf16_ms")]
        print(f"{n:>6}" + "".join(f"{c:>15.3f}" if c is not None else f"{'-':>15}" for c in cells))
    bad = sorted(k for k, v in res.items() if k.startswith("correct/") and not v["ok"])
    print("correctness:", "all ok" if not bad else f"NOT ok: {bad}")
    print("failed parts:", sorted(data["errors"]) or "none")
    if "streaming_step" in res:
        st = res["streaming_step"]
        print(f"streaming step: eager {st['eager_us_per_token']:.1f} µs/token, CUDA graph "
              f"{st['graph_us_per_token']:.1f} µs/token ({st['graph_us_per_token_per_layer']:.1f} per layer)")


if __name__ == "__main__":
    main()
