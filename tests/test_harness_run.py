"""End to end in this process: train → test → record → table, skip when finished, force, determinism,
and a smoke run of every registered task (conf/experiment/smoke/<task>.yaml) on generated data."""
import math
import sys
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts import make_tables  # noqa: E402
from tasks.harness import store  # noqa: E402
from tests.harness_toy.helpers import CONF, compose_config, path_overrides, records, run_in_process  # noqa: E402

TOY = ["task=toy", "task.trainer.max_epochs=2"]


def test_toy_run_writes_one_complete_record_then_skips_then_force_reruns_identically(tmp_path):
    first = run_in_process(tmp_path, TOY)
    [path] = records(tmp_path)
    assert store.read_record(path) == first
    assert path == store.record_path(tmp_path / "results", "toy", "toy_sine", first["run_id"])
    assert (first["task"], first["dataset"], first["model"], first["seed"]) == ("toy", "toy_sine", "aaren", 0)
    assert first["variant"] == {"horizon": 1} and first["protocol"] == {"noise": 0.1}
    assert set(first["metrics"]) == {"mse", "mae"} and all(math.isfinite(v) for v in first["metrics"].values())
    assert first["data_label"] == "generated waves (test fixture)"
    assert first["config"]["task"]["module"]["optim"]["lr"] == 0.01 and "paths" not in first["config"]
    assert first["n_parameters"] > 0 and first["wall_time_s"] > 0 and first["epochs_trained"] == 2
    assert first["tested_checkpoint"] == "best" and first["resumed"] is False and first["world_size"] == 1
    assert first["versions"]["torch"] and first["machine"]["cpu"] and "dirty" in first["git"]

    mtime = path.stat().st_mtime_ns
    assert run_in_process(tmp_path, TOY) == first and path.stat().st_mtime_ns == mtime  # finished: skipped

    again = run_in_process(tmp_path, [*TOY, "force=true"])
    assert again["metrics"] == first["metrics"]  # same config + seed on CPU → identical metrics
    assert records(tmp_path) == [path]           # still one record for the run

    assert first["experiment"] == "adhoc"  # a bare command line: its run never enters a table
    assert make_tables.main(["--results-root", str(tmp_path / "results"), "--conf-dir", str(CONF)]) == []


def test_seed_changes_the_run_and_its_numbers(tmp_path):
    a = run_in_process(tmp_path, [*TOY, "task.trainer.max_epochs=1"])
    b = run_in_process(tmp_path, [*TOY, "task.trainer.max_epochs=1", "seed=1"])
    assert a["run_id"] != b["run_id"] and a["metrics"] != b["metrics"] and len(records(tmp_path)) == 2


def test_a_module_that_keeps_its_own_snapshots_is_tested_on_the_last_checkpoint(tmp_path, monkeypatch):
    from tests.harness_toy.module import ToyModule

    tested = []
    monkeypatch.setattr(ToyModule, "tested_checkpoint", "last")
    monkeypatch.setattr(ToyModule, "on_test_start", lambda self: tested.append(self.trainer.ckpt_path), raising=False)
    entry = run_in_process(tmp_path, [*TOY, "task.trainer.max_epochs=3"])
    assert entry["tested_checkpoint"] == "last" and [Path(p).name for p in tested] == ["last.ckpt"]


def test_a_second_start_of_a_running_run_stands_aside(tmp_path):
    from tasks.harness import identity
    from tasks.harness.resume import RunLock
    from tasks.harness.runner import prepare_config
    from tests.harness_toy.helpers import REPO as repo

    cfg = prepare_config(compose_config([*TOY, *path_overrides(tmp_path)]), repo)
    lock = RunLock(identity.run_dir(cfg, identity.run_id(cfg, experiment=identity.ADHOC))).acquire()  # "another process" runs it
    try:
        assert run_in_process(tmp_path, TOY) is None and records(tmp_path) == []
    finally:
        lock.release()


def _real_tasks() -> list[str]:
    return sorted(p.stem for p in (CONF / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", _real_tasks())
def test_smoke_run_of_each_registered_task(tmp_path, task):
    """conf/experiment/smoke/<task>.yaml: a tiny run; its optional `smoke.fixture` node (`_target_` + arguments,
    may use ${paths.data_root}) is called first to write generated files under the (temporary) data root."""
    smoke = CONF / "experiment" / "smoke" / f"{task}.yaml"
    if not smoke.is_file():
        pytest.skip(f"task {task!r} has no smoke config yet ({smoke.relative_to(REPO)})")
    overrides = [f"experiment=smoke/{task}"]
    fixture = OmegaConf.select(compose_config([*overrides, *path_overrides(tmp_path)]), "smoke.fixture")
    if fixture is not None:
        hydra.utils.instantiate(fixture)
    record = run_in_process(tmp_path, overrides)
    assert record["task"] == task and record["metrics"]
    assert [p.name for p in records(tmp_path)] == [f"{record['run_id']}.json"]
