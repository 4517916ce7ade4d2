"""scripts/bench_train.py (benchmarks/train_step.py) at toy sizes: one row per kind with both parts timed and FLOPs counted, and resuming
skips what is already measured. Speed itself is the benchmark's business, never a test's."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import train_step  # noqa: E402
from scripts import bench_train  # noqa: E402
from benchmarks.interleave import interleaved_medians  # noqa: E402


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_bench_rows_time_backbone_and_task_step_of_both_kinds(precision):
    rows = train_step.bench("tpp", 8, precision, repeats=1, peaks={precision: 100.0})
    assert [r["kind"] for r in rows] == ["aaren", "transformer"]
    for row in rows:
        assert row["precision"] == precision and row["N"] == 8 and row["batch"] == 16
        for part in ("backbone", "step"):
            assert row[part]["cpu_ms"] > 0 and row[part]["gflop"] > 0 and row[part]["of_matmul_peak"] > 0
        assert row["step"]["gflop"] > row["backbone"]["gflop"]  # the step adds embedding, heads, loss
    ratio = rows[0]["step"]["cpu_ms"] / rows[1]["step"]["cpu_ms"]
    assert rows[0]["aaren_over_transformer"]["step"] == pytest.approx(ratio, rel=1e-2)


def test_bench_resumes_without_measuring_again(tmp_path, monkeypatch):
    monkeypatch.setitem(train_step.CONFIGS, "tpp", dict(train_step.CONFIGS["tpp"], lengths=[8]))
    monkeypatch.setattr(train_step, "matmul_peak_gflops", lambda dtype: 100.0)  # a 2048² matmul: not for tests
    out = tmp_path / "train.jsonl"
    args = ["--quick", "--configs", "tpp", "--precisions", "32-true", "--out", str(out)]
    assert bench_train.main(args) == 0
    first = out.read_text().splitlines()
    assert [json.loads(line)["record"] for line in first] == ["machine", "point", "point", "job_end"]
    assert bench_train.main(args) == 0
    assert out.read_text().splitlines() == first


def test_interleaved_medians_runs_candidates_in_turn():
    calls = []
    result = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=2)
    assert calls == ["a", "b", "a", "b", "a", "b"] and set(result) == {"a", "b"}
    calls.clear()
    interleaved_medians({name: (lambda name=name: calls.append(name)) for name in "abc"}, repeats=3, warmup=0,
                        rotate=True)  # bench_scan --paper: the order shifts every round
    assert "".join(calls) == "abcbcacab"
    with pytest.raises(ValueError, match="repeats"):
        interleaved_medians({"a": lambda: None}, repeats=0)
