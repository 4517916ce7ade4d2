"""Training cost vs sequence length: forward+backward time and peak memory of one block and of the whole backbone,
for every Aaren scan backend and for the Transformer's causal SDPA (FlashAttention on a GPU), fp32 and bf16.

One point = one (scope, op, dtype, N): a warm-up step, a step under the peak-memory probe, then up to `repeats`
timed steps (min and median reported) within `point_budget_s`. bf16 means the model and its inputs in bf16 (the
scan accumulates in fp32 internally). A job stops at the first N whose warm-up alone exceeds the point budget, or
that runs out of memory.
"""
import statistics

import torch

import aaren

from .common import clock, job_id, peak_bytes, reset_peak
from .configs import backbone_config

OPS = ("naive", "hillis_steele", "chunked", "sdpa")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
SCOPES = ("layer", "backbone")


def build_model(config: str, *, scope: str, op: str, dtype: str, device: str, seed: int) -> torch.nn.Module:
    """One block or the whole backbone of `config`; Aaren with scan backend `op`, or the Transformer (op=sdpa)."""
    if op not in OPS or scope not in SCOPES or dtype not in DTYPES:
        raise ValueError(f"build_model: op in {OPS}, scope in {SCOPES}, dtype in {tuple(DTYPES)}; "
                         f"got {op!r}, {scope!r}, {dtype!r}")
    cfg = backbone_config(config)
    kind = "transformer" if op == "sdpa" else "aaren"
    torch.manual_seed(seed)
    scan = {} if kind == "transformer" else {"backend": op}
    if scope == "layer":
        block = aaren.TransformerBlock if kind == "transformer" else aaren.AarenBlock
        model = block(**{k: v for k, v in cfg.items() if k != "n_layers"}, **scan)
    else:
        model = aaren.Backbone(kind=kind, **cfg, **scan)
    return model.to(device=device, dtype=DTYPES[dtype]).train()


def run_train_job(job: dict, settings: dict, store) -> None:
    device, s = job["device"], settings
    model = build_model(job["config"], scope=job["scope"], op=job["op"], dtype=job["dtype"], device=device,
                        seed=s["seed"])
    d_model = backbone_config(job["config"])["d_model"]
    done = {p["N"] for p in store.points(job_id(job))}

    def end(status: str, reason: str = "") -> None:
        store.end_job(job, settings, status, reason)

    lengths = [n for n in s["train_lengths"] if job["op"] != "naive" or n <= s["naive_max_n"]]
    for n in lengths:
        if n in done:
            continue
        x = torch.randn(job["batch"], n, d_model, device=device, dtype=DTYPES[job["dtype"]])

        def train_step():
            model.zero_grad(set_to_none=True)
            model(x).float().pow(2).mean().backward()  # (B, N, D) → a scalar loss

        try:
            t0 = clock(device)
            train_step()  # warm-up (first-call allocations, kernel selection)
            warmup = clock(device) - t0
            model.zero_grad(set_to_none=True)
            baseline = reset_peak(device)
            train_step()
            peak = peak_bytes(device)
            times = []
            while len(times) < s["repeats"] and sum(times) + warmup < s["point_budget_s"]:
                t0 = clock(device)
                train_step()
                times.append(clock(device) - t0)
        except RuntimeError as error:  # torch.OutOfMemoryError on CUDA; "can't allocate memory" on CPU
            if not isinstance(error, torch.OutOfMemoryError) and "allocate" not in str(error):
                raise
            return end("stopped", f"out of memory at N={n}")
        times = times or [warmup]
        store.add_point(job, {
            "N": n, "ms": 1e3 * min(times), "ms_median": 1e3 * statistics.median(times), "repeats": len(times),
            "tokens_per_s": job["batch"] * n / min(times), "peak_bytes": peak, "baseline_bytes": baseline,
            "extra_bytes": None if peak is None or baseline is None else peak - baseline})
        if warmup > s["point_budget_s"]:
            return end("stopped", f"budget: one step at N={n} took {warmup:.1f} s > {s['point_budget_s']} s")
    return end("done")
