"""scripts/bench_efficiency.py at toy size: the output schema, the figures, resumption. No timing assertions."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_efficiency.py"
MAX_TOKENS, KV_REAL_MAX = 128, 32
TOY = ["--configs", "toy", "--batches", "1,2", "--fast-paths", "torchscript", "--max-tokens", str(MAX_TOKENS),
       "--kv-real-max", str(KV_REAL_MAX), "--window", "4", "--rounds", "2", "--ref-tokens", "16",
       "--train-config", "toy", "--train-lengths", "16,32", "--train-ops", "naive,chunked,sdpa",
       "--naive-max-n", "16", "--repeats", "1", "--threads", "1", "--in-process"]
STREAM_FIELDS = {"job", "config", "kind", "path", "batch", "device", "tokens", "method", "cumulative_s",
                 "cumulative_cpu_s", "cumulative_method", "state_bytes", "peak_bytes", "baseline_bytes"}
TRAIN_FIELDS = {"job", "config", "scope", "op", "dtype", "batch", "device", "N", "ms", "ms_median",
                "tokens_per_s", "peak_bytes", "baseline_bytes", "extra_bytes"}


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *TOY, "--out", str(out), *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("efficiency")
    done = _run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text())


def test_summary_records_provenance_and_every_job(toy_run):
    out, summary = toy_run
    info = summary["provenance"]
    assert info["device"] == "cpu" and info["device_name"] and info["versions"]["torch"]
    assert "sha" in info["git"] and info["torch_threads"] == 1
    # 2 batches × (aaren, transformer) + torchscript at B=1; 2 scopes × 2 dtypes × 3 ops
    assert len(summary["jobs"]) == 5 + 12
    assert all(j["status"] == "done" and j["settings"]["measured_with"]["versions"] for j in summary["jobs"])
    for name in ("tables.md", "streaming_memory.png", "streaming_cumulative_time.png", "streaming_latency.png",
                 "training_throughput.png", "training_memory.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "streaming_memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((out / "resume").glob("*.pt"))  # finished streams leave no resume state behind


def test_stream_points(toy_run):
    _, summary = toy_run
    streams = [p for p in summary["points"] if p["bench"] == "stream"]
    assert all(STREAM_FIELDS <= set(p) for p in streams)
    for key in {(p["kind"], p["path"], p["batch"]) for p in streams}:
        series = sorted((p for p in streams if (p["kind"], p["path"], p["batch"]) == key and p["method"] == "stream"),
                        key=lambda p: p["tokens"])
        tokens = [p["tokens"] for p in series]
        limit = MAX_TOKENS if key[0] == "aaren" else KV_REAL_MAX
        assert tokens == [2 ** k for k in range(limit.bit_length())], key
        assert all(a["cumulative_s"] < b["cumulative_s"] for a, b in zip(series, series[1:]))
        assert all(0 < p["cumulative_cpu_s"] for p in series)  # on CPU, the process's CPU time too
        sizes = {p["state_bytes"] for p in series}
        if key[0] == "aaren":
            assert len(sizes) == 1  # the constant state
            assert all("latency_ratio_vs_1k" in p for p in series if p["tokens"] >= 16)
        else:
            assert series[-1]["state_bytes"] > series[0]["state_bytes"]  # the growing KV cache
    filled = [p for p in streams if p["method"] == "filled_cache"]
    assert sorted({p["tokens"] for p in filled}) == [32, 64, 128]
    assert all(p["cumulative_method"] == ("measured" if p["tokens"] == KV_REAL_MAX else "estimated") for p in filled)
    assert all(p["speedup_aaren_vs_this"] > 0 and p["us_per_token"] > 0 for p in filled)


def test_train_points(toy_run):
    _, summary = toy_run
    trains = [p for p in summary["points"] if p["bench"] == "train"]
    assert all(TRAIN_FIELDS <= set(p) for p in trains)
    assert {p["N"] for p in trains if p["op"] == "naive"} == {16}  # the sequential loop stops at --naive-max-n
    assert {p["N"] for p in trains if p["op"] == "chunked"} == {16, 32}
    assert {(p["scope"], p["dtype"]) for p in trains} == {(s, d) for s in ("layer", "backbone")
                                                        for d in ("float32", "bfloat16")}
    assert [t["config"] for t in summary["targets"]] == ["toy", "toy"]


def test_a_rerun_skips_finished_jobs(toy_run):
    out, _ = toy_run
    before = (out / "points.jsonl").read_text()
    done = _run(out, "--sections", "stream")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "points.jsonl").read_text() == before


def test_an_interrupted_aaren_stream_resumes(tmp_path):
    from benchmarks.common import PointStore
    from benchmarks.streaming import run_stream_job

    class Interrupting(PointStore):
        def append(self, row):
            if row.get("tokens") == 32:
                raise KeyboardInterrupt  # killed while recording the 32-token point
            super().append(row)

    job = {"bench": "stream", "config": "toy", "kind": "aaren", "path": "eager", "batch": 1, "device": "cpu"}
    settings = {"max_tokens": 64, "kv_real_max": 16, "window": 2, "rounds": 2, "ref_tokens": 8, "seed": 0,
                "budget_s": 300.0, "fast_path_budget_s": 300.0, "max_state_bytes": 2 ** 20}
    with pytest.raises(KeyboardInterrupt):
        run_stream_job(job, settings, Interrupting(tmp_path / "points.jsonl"), tmp_path)
    run_stream_job(job, settings, PointStore(tmp_path / "points.jsonl"), tmp_path)
    points = [r for r in PointStore(tmp_path / "points.jsonl").read() if r["record"] == "point"]
    assert [p["tokens"] for p in points] == [1, 2, 4, 8, 16, 32, 64]
    assert all(a["cumulative_s"] < b["cumulative_s"] for a, b in zip(points, points[1:]))
    assert not (tmp_path / "resume").exists() or not list((tmp_path / "resume").iterdir())


def test_the_flat_kv_step_equals_the_kv_cached_transformer():
    import aaren
    import torch

    from benchmarks import exported_kv
    torch.manual_seed(0)
    backbone = aaren.Backbone(kind="transformer", d_model=16, n_layers=2, n_heads=2, d_ff=32)
    assert exported_kv.kv_reference_check(backbone, tokens=37) < 1e-5
    with pytest.raises(ValueError, match="Transformer backbone"):
        exported_kv.FlatKVStep(backbone=aaren.Backbone(kind="aaren", d_model=16, n_layers=1, n_heads=2, d_ff=32))


def test_the_exported_pair_times_both_models_in_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from benchmarks import common, exported_kv
    job = {"bench": "stream", "config": "toy", "kind": "transformer", "path": "onnxruntime", "batch": 1,
           "device": "cpu"}
    settings = {"max_tokens": 64, "window": 2, "rounds": 2, "ref_tokens": 16, "seed": 0,
                "fast_path_budget_s": 300.0, "max_state_bytes": 2 ** 20}
    store = common.PointStore(tmp_path / "points.jsonl")
    exported_kv.run_exported_pair_job(job, settings, store)
    rows = store.read()
    points = [r for r in rows if r["record"] == "point"]
    assert [p["tokens"] for p in points] == [16, 32, 64]
    assert all(STREAM_FIELDS <= set(p) and p["method"] == "filled_cache" for p in points)
    assert all(p["speedup_aaren_vs_this"] > 0 for p in points)
    assert [p["state_bytes"] for p in points] == [2 * t * 16 * 2 * 4 for t in (16, 32, 64)]  # k, v × 2 layers
    assert rows[-1]["record"] == "job_end" and rows[-1]["status"] == "done"
    exported_kv.run_exported_pair_job(job, settings, store)  # a rerun measures nothing again
    assert len([r for r in store.read() if r["record"] == "point"]) == 3
