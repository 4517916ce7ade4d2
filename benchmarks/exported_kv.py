"""The Transformer baseline exported like Aaren's step, so the two can be compared without eager overhead.

Aaren's exported step (aaren/export.py, run in onnxruntime) sheds PyTorch's per-operator cost; timing it against
the *eager* KV-cached Transformer would credit Aaren with that saving. Here the Transformer's streaming step is
exported the same way and run in the same runtime:

`aaren.export.FlatKVStep` (x_t and per-layer caches of a fixed length T → y_t and the new keys/values) attends to
the T cached tokens and to itself; the graph reads the cache once, as a decode kernel does, and copies nothing.

The benchmark times it on caches filled to T (the filled-cache method of docs/efficiency.md): the cache stays at
T tokens while the timing windows run, interleaved with Aaren's exported step (paired speedup).
"""
import math
import tempfile
import time
from pathlib import Path

import torch

import aaren
from aaren.export import FlatKVStep

from .common import BenchmarkError, job_id, peak_bytes, reset_peak
from .steppers import OnnxRuntimeStepper
from .streaming import INPUT_POOL, advance, build_backbone, latency_fields, timed_windows, trapezoid_s


def export_kv_onnx(backbone: aaren.Backbone, path: Path, *, batch: int) -> Path:
    """FlatKVStep to ONNX (dynamo exporter) with T a dynamic axis, so one graph serves every cache length."""
    step = FlatKVStep(backbone=backbone)
    tokens = torch.export.Dim("tokens", min=2)
    cache = step.filled_cache(batch, 16)
    dynamic = ({}, tuple({3: tokens} for _ in range(step.n_layers)) + tuple({2: tokens} for _ in range(step.n_layers)))
    names = ["x_t"] + [f"k_{i}" for i in range(step.n_layers)] + [f"v_{i}" for i in range(step.n_layers)]
    with torch.no_grad():
        torch.onnx.export(step, (torch.zeros(batch, backbone.d_model), *cache), str(path), dynamo=True,
                          input_names=names, output_names=["y_t", "k_t", "v_t"], dynamic_shapes=dynamic,
                          verbose=False)
    return path


class OnnxKVStepper:
    """The exported Transformer step in onnxruntime on a cache of fixed length (the stepper interface of
    steppers.py; `step` leaves the cache at its length)."""

    def __init__(self, backbone: aaren.Backbone, batch: int):
        import onnxruntime  # lazy: an optional dependency of the benchmark

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory() as folder:
            path = export_kv_onnx(backbone, Path(folder) / "kv_step.onnx", batch=batch)
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.flat, self.names = FlatKVStep(backbone=backbone), [i.name for i in self.session.get_inputs()]

    def inputs(self, pool):
        return [x.cpu().numpy() for x in pool]

    def filled(self, batch: int, tokens: int, seed: int):
        cache = self.flat.filled_cache(batch, tokens, torch.Generator().manual_seed(seed))
        return {name: t.numpy() for name, t in zip(self.names[1:], cache)}

    def step(self, x_t, state):
        self.session.run(None, {"x_t": x_t} | state)
        return state

    def nbytes(self, state):
        return sum(int(x.nbytes) for x in state.values())


def run_exported_pair_job(job: dict, settings: dict, store) -> None:
    """Paired timing of the exported Transformer (caches filled to T = 1k, 2k, ...) against Aaren's exported step."""
    if job["device"] != "cpu" or job["path"] != "onnxruntime":
        raise BenchmarkError("the exported pair is measured with onnxruntime on CPU only")
    s, batch = settings, job["batch"]
    kv = OnnxKVStepper(build_backbone(job["config"], "transformer", "cpu", s["seed"]), batch)
    aaren_step = OnnxRuntimeStepper(build_backbone(job["config"], "aaren", "cpu", s["seed"]), batch, "cpu")
    pool = torch.randn(INPUT_POOL, batch, kv.flat.backbone.d_model, generator=torch.Generator().manual_seed(s["seed"]))
    inputs, aaren_inputs = kv.inputs(pool), aaren_step.inputs(pool)
    aaren_state = advance(aaren_step, aaren_inputs, aaren_step.init(batch), 0, s["ref_tokens"], "cpu")[0]
    done = {p["tokens"]: p for p in store.points(job_id(job))}
    previous, started = None, time.perf_counter()
    for tokens in [2 ** k for k in range(int(math.log2(s["ref_tokens"])), int(math.log2(s["max_tokens"])) + 1)]:
        if tokens in done:
            previous = done[tokens]
            continue
        need = 2 * tokens * batch * kv.flat.backbone.d_model * kv.flat.n_layers * 4
        if need > s["max_state_bytes"]:
            return store.end_job(job, settings, "stopped",
                                 f"memory: {tokens} tokens need {need / 2**30:.2f} GiB > the cap")
        if previous and time.perf_counter() - started + 4 * s["rounds"] * s["window"] * previous["us_per_token"] \
                * 1e-6 * tokens / previous["tokens"] > s["fast_path_budget_s"]:
            return store.end_job(job, settings, "stopped", f"budget: {tokens} tokens")
        baseline = reset_peak("cpu")
        cache = kv.filled(batch, tokens, s["seed"])
        runs = {"live": [kv, inputs, cache], "aaren": [aaren_step, aaren_inputs, aaren_state]}
        row = {"tokens": tokens, "method": "filled_cache", "state_bytes": kv.nbytes(cache)}
        row |= latency_fields(*timed_windows(runs, window=s["window"], rounds=s["rounds"], device="cpu"))
        aaren_state = runs["aaren"][2]
        # cumulative time: integrated from the measured per-token costs (the first point: T × its cost)
        start = previous or {"tokens": 0, "cumulative_s": 0.0, "us_per_token": row["us_per_token"]}
        row |= {"cumulative_s": start["cumulative_s"] + trapezoid_s(start, row, "us_per_token"),
                "cumulative_cpu_s": None, "cumulative_method": "estimated",
                "peak_bytes": peak_bytes("cpu"), "baseline_bytes": baseline}
        store.add_point(job, row)
        previous, cache, runs = row, None, None
    store.end_job(job, settings, "done")


def kv_reference_check(backbone: aaren.Backbone, *, tokens: int, seed: int = 0) -> float:
    """Max |FlatKVStep − Backbone.step on an aaren.KVCache| after streaming `tokens` real tokens (for tests)."""
    generator = torch.Generator().manual_seed(seed)
    xs = torch.randn(tokens + 1, 2, backbone.d_model, generator=generator)
    backbone = backbone.eval()
    with torch.no_grad():
        state = backbone.init_state(2)
        for x in xs[:-1]:
            state = backbone.step(x, state)[1]
        flat = FlatKVStep(backbone=backbone)
        keys = [c.view()[0].transpose(-1, -2).contiguous() for c in state]
        values = [c.view()[1].contiguous() for c in state]
        y_flat, k_t, v_t = flat(xs[-1], *keys, *values)
        y_ref, state = backbone.step(xs[-1], state)
    worst = (y_flat - y_ref).abs().max()
    worst = max(worst, (k_t - torch.stack([c.view()[0][:, :, -1] for c in state])).abs().max())
    return float(max(worst, (v_t - torch.stack([c.view()[1][:, :, -1] for c in state])).abs().max()))
