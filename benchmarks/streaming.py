"""Streaming inference of a whole backbone, token by token: per-token latency, cumulative time, state bytes and
peak memory at every power-of-two token count up to `max_tokens` (the paper's Figure-style analysis).

Method (see docs/efficiency.md): a job streams real tokens from an empty state and records the cumulative time
at 1, 2, 4, ... tokens: wall time, and on CPU also the process's CPU time (what the stream cost without the
waits of a shared machine). At each checkpoint T ≥ rounds·window it times `rounds` windows of `window` single steps
(these are real tokens of the stream, counted in its time), interleaved with the same windows on a copy of the
state saved at `ref_tokens` (1k) — the paired latency ratio T vs 1k cancels the drift of a shared machine's load —
and, for the Transformer, on an Aaren backbone of the same config (the paired speedup). The Transformer streams
real tokens up to `kv_real_max`; beyond, each point times steps on a KV cache filled to T (filled_kv_state) and
its cumulative time is the trapezoid integral of the measured latencies (marked "estimated"). A job stops when
the next checkpoint would exceed its time budget or the state its memory cap; Aaren jobs resume from a saved
state after an interruption.
"""
import math
import os
import statistics
import time
from pathlib import Path

import torch

import aaren

from .common import clock, job_id, peak_bytes, reset_peak
from .configs import backbone_config
from .steppers import EagerStepper, filled_kv_state, kv_cache_bytes, make_stepper

INPUT_POOL = 256  # distinct random tokens cycled through by every stream (x_t (B, D) each)


def build_backbone(config: str, kind: str, device: str, seed: int) -> aaren.Backbone:
    torch.manual_seed(seed)
    with torch.inference_mode(False):  # ordinary parameters, as a trained model's are; streaming runs in inference
        return aaren.Backbone(kind=kind, **backbone_config(config)).to(device).eval()


def advance(stepper, inputs, state, start: int, stop: int, device: str):
    """Stream tokens start+1..stop; returns (state, wall seconds, process CPU seconds)."""
    t0, c0 = clock(device), time.process_time()
    for i in range(start, stop):
        state = stepper.step(inputs[i % len(inputs)], state)
    return state, clock(device) - t0, time.process_time() - c0


def timed_windows(runs: dict, *, window: int, rounds: int, device: str):
    """Interleaved timing: rounds × (window single steps on each run). runs: name → [stepper, inputs, state]."""
    times, cpu = {name: [] for name in runs}, {name: 0.0 for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            stepper, inputs, state = run
            c0 = time.process_time()
            for i in range(window):
                t0 = clock(device)
                state = stepper.step(inputs[i % len(inputs)], state)
                times[name].append(clock(device) - t0)
            cpu[name] += time.process_time() - c0
            run[2] = state
    return times, cpu


def latency_fields(times: dict, cpu: dict) -> dict:
    us = {name: 1e6 * statistics.median(values) for name, values in times.items()}
    row = {"us_per_token": us["live"], "us_per_token_min": 1e6 * min(times["live"]),
           "cpu_us_per_token": 1e6 * cpu["live"] / len(times["live"])}
    if "ref_1k" in us:
        row |= {"us_per_token_ref_1k": us["ref_1k"], "latency_ratio_vs_1k": us["live"] / us["ref_1k"]}
    if "aaren" in us:
        row |= {"aaren_us_per_token_paired": us["aaren"], "speedup_aaren_vs_this": us["live"] / us["aaren"]}
    return row


def trapezoid_s(previous: dict, row: dict, per_token: str) -> float:
    """Seconds between two points' token counts by the trapezoid rule on their per-token costs (µs)."""
    return 1e-6 * (row["tokens"] - previous["tokens"]) * (previous[per_token] + row[per_token]) / 2


def resume_path(out_dir: Path, jid: str) -> Path:
    return out_dir / "resume" / f"{jid}.pt"


def _save_resume(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def run_stream_job(job: dict, settings: dict, store, out_dir: Path) -> None:
    device, batch, s = job["device"], job["batch"], settings
    budget = s["budget_s"] if job["path"] == "eager" else s["fast_path_budget_s"]
    jid = job_id(job)
    backbone = build_backbone(job["config"], job["kind"], device, s["seed"])
    stepper = make_stepper(job["path"], backbone, batch=batch, device=device)
    generator = torch.Generator().manual_seed(s["seed"])
    inputs = stepper.inputs(torch.randn(INPUT_POOL, batch, backbone.d_model, generator=generator).to(device))
    comparison = None
    if job["kind"] == "transformer":  # the paired Aaren of the same size, its state after ref_tokens tokens
        other = EagerStepper(build_backbone(job["config"], "aaren", device, s["seed"]))
        comparison = [other, other.inputs(inputs), None]
        comparison[2] = advance(other, comparison[1], other.init(batch), 0, s["ref_tokens"], device)[0]

    def end(status: str, reason: str = "") -> None:
        store.end_job(job, settings, status, reason)
        resume_path(out_dir, jid).unlink(missing_ok=True)

    checkpoints = [2 ** k for k in range(int(math.log2(s["max_tokens"])) + 1)]
    real_max = s["max_tokens"] if job["kind"] == "aaren" else min(s["kv_real_max"], s["max_tokens"])
    stored = store.points(jid)
    points = {p["tokens"]: p for p in stored if p["method"] == "stream"}
    filled = {p["tokens"]: p for p in stored if p["method"] == "filled_cache"}
    resume = resume_path(out_dir, jid)
    if resume.exists():
        saved = torch.load(resume, weights_only=True)  # plain tensors and numbers: no code is unpickled
        t, cumulative, elapsed = saved["t"], saved["cumulative"], saved["elapsed"]
        cumulative_cpu = saved.get("cumulative_cpu")
        state = stepper.restore(saved["state"])
        ref_state = None if saved["ref"] is None else stepper.restore(saved["ref"])
    else:
        real_done = any(p["method"] == "stream" and p["tokens"] == real_max for p in points.values())
        if points and not real_done:  # a KV stream cut short cannot resume: start the job again
            store.forget(jid)
            points, filled = {}, {}
        t, cumulative, cumulative_cpu, elapsed, state, ref_state = 0, 0.0, 0.0, 0.0, stepper.init(batch), None
    started = time.perf_counter() - elapsed
    baseline = reset_peak(device)

    for tokens in [c for c in checkpoints if c <= real_max and c not in points]:
        latency = cumulative / max(t, 1)  # the stream's real pace so far, waits for a busy CPU included
        if job["kind"] == "transformer":
            need = kv_cache_bytes(backbone, batch=batch, tokens=tokens + s["rounds"] * s["window"])
            if need > s["max_state_bytes"]:
                return end("stopped", f"memory: {tokens} tokens need {need / 2**30:.2f} GiB of KV cache > the cap")
        projected = (tokens - t + s["rounds"] * s["window"]) * latency
        if time.perf_counter() - started + projected > budget:
            return end("stopped", f"budget: {tokens} tokens would take ≈{projected:.0f} s more")
        state, seconds, cpu_seconds = advance(stepper, inputs, state, t, tokens, device)
        t, cumulative = tokens, cumulative + seconds
        cumulative_cpu = None if cumulative_cpu is None else cumulative_cpu + cpu_seconds
        row = {"tokens": tokens, "method": "stream", "cumulative_s": cumulative, "cumulative_method": "measured",
               "cumulative_cpu_s": cumulative_cpu if device == "cpu" else None, "state_bytes": stepper.nbytes(state)}
        if tokens == s["ref_tokens"]:
            ref_state = stepper.clone(state)
        if tokens >= s["rounds"] * s["window"]:
            runs = {"live": [stepper, inputs, state]}
            if ref_state is not None:
                runs["ref_1k"] = [stepper, inputs, stepper.clone(ref_state)]  # stays at 1k tokens
            if comparison is not None:
                runs["aaren"] = comparison
            times, cpu = timed_windows(runs, window=s["window"], rounds=s["rounds"], device=device)
            state = runs["live"][2]
            t, cumulative = t + len(times["live"]), cumulative + sum(times["live"])
            cumulative_cpu = None if cumulative_cpu is None else cumulative_cpu + cpu["live"]
            row |= latency_fields(times, cpu)
        row |= {"peak_bytes": peak_bytes(device), "baseline_bytes": baseline}
        points[tokens] = row
        store.add_point(job, row)
        saveable = stepper.saveable(state)
        if saveable is not None:
            _save_resume(resume, {"t": t, "cumulative": cumulative, "cumulative_cpu": cumulative_cpu,
                                  "elapsed": time.perf_counter() - started,
                                  "state": saveable, "ref": None if ref_state is None else stepper.saveable(ref_state)})
    if job["kind"] == "aaren":
        return end("done")

    # the Transformer beyond kv_real_max: time steps on a cache filled to T (T = kv_real_max too, as a check)
    previous = points[real_max]
    if ref_state is None:  # resumed after the real stream: rebuild the 1k reference (cheap)
        ref_state = advance(stepper, inputs, stepper.init(batch), 0, s["ref_tokens"], device)[0]
    for tokens in [c for c in checkpoints if c >= real_max]:
        if tokens in filled:
            previous = filled[tokens]
            continue
        need = kv_cache_bytes(backbone, batch=batch, tokens=tokens + s["rounds"] * s["window"])
        if need > s["max_state_bytes"]:
            return end("stopped", f"memory: {tokens} tokens need {need / 2**30:.2f} GiB of KV cache > the cap")
        projected = s["rounds"] * s["window"] * previous["us_per_token"] * 1e-6 * 2 * tokens / previous["tokens"]
        if time.perf_counter() - started + projected > budget:
            return end("stopped", f"budget: {tokens} tokens would take ≈{projected:.0f} s more")
        state = runs = None  # free the previous cache before measuring this one's peak
        baseline_t = reset_peak(device)
        state = filled_kv_state(backbone, batch=batch, tokens=tokens)
        row = {"tokens": tokens, "method": "filled_cache", "state_bytes": stepper.nbytes(state)}
        runs = {"live": [stepper, inputs, state], "ref_1k": [stepper, inputs, stepper.clone(ref_state)],
                "aaren": comparison}
        times, cpu = timed_windows(runs, window=s["window"], rounds=s["rounds"], device=device)
        row |= latency_fields(times, cpu)
        # trapezoid rule between the previous checkpoint and this one, on the measured per-token costs
        for total, per_token in (("cumulative_s", "us_per_token"), ("cumulative_cpu_s", "cpu_us_per_token")):
            row[total] = None if previous.get(total) is None else \
                previous[total] + trapezoid_s(previous, row, per_token)
        row["cumulative_method"] = "measured" if tokens == real_max else "estimated"
        if tokens == real_max:
            row["cumulative_s"], row["cumulative_cpu_s"] = previous["cumulative_s"], previous.get("cumulative_cpu_s")
        row |= {"peak_bytes": peak_bytes(device), "baseline_bytes": baseline_t}
        store.add_point(job, row)
        previous = row
    return end("done")
