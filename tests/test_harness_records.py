"""What a record says about its run: the experiment, the learning curve, how training ended; which runs share a
record (same config values), what identifies a run (values after defaults, thread count), where smoke runs go."""
import json
import logging
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.harness import identity, store  # noqa: E402
from tests.harness_toy.helpers import compose_config, records, run_in_process  # noqa: E402

TOY = ["task=toy", "task.trainer.max_epochs=3", "task.patience=null"]


def test_record_names_its_experiment_and_keeps_every_validation_round(tmp_path):
    record = run_in_process(tmp_path, TOY)
    assert record["experiment"] == "adhoc" and record["schema_version"] == 2
    curve = record["learning_curve"]
    assert [point["epoch"] for point in curve] == [0, 1, 2]  # one point per validation round, no sanity check
    assert all(point["step"] > 0 and point["val/loss"] > 0 for point in curve)
    assert min(point["val/loss"] for point in curve) == pytest.approx(record["monitor"]["best"])
    assert record["training"] == {"epochs": 3, "steps": curve[-1]["step"], "stopped_early": False,
                                  "reached_limit": True, "converged": True}


def test_early_stopping_is_recorded_as_stopped_early(tmp_path):
    # lr 1e-12 leaves the float32 weights as they are, so val/loss never improves: patience 1 stops after the
    # second round, far from the 50-epoch limit
    record = run_in_process(tmp_path, ["task=toy", "task.trainer.max_epochs=50", "task.patience=1",
                                       "task.module.optim.lr=1e-12"])
    assert record["training"]["stopped_early"] is True and record["training"]["reached_limit"] is False
    assert record["training"]["converged"] is True and len(record["learning_curve"]) == 2


def test_experiment_choice_is_recorded_and_part_of_the_run_id(tmp_path):
    adhoc = run_in_process(tmp_path, ["task=toy", "task.trainer.max_epochs=1"])
    paper = run_in_process(tmp_path, ["experiment=paper/toy", "task.trainer.max_epochs=1", "seed=0"])
    assert paper["experiment"] == "paper/toy" and paper["run_id"] != adhoc["run_id"]


def test_same_values_under_another_experiment_are_copied_not_retrained(tmp_path, caplog):
    first = run_in_process(tmp_path, ["experiment=paper/toy", "task.trainer.max_epochs=1", "seed=0"])
    [path] = records(tmp_path)
    with caplog.at_level(logging.INFO, logger="aaren.harness"):
        shown = run_in_process(tmp_path, ["task=toy", "task.trainer.max_epochs=1"])  # adhoc: shown, not written
    assert shown["metrics"] == first["metrics"] and records(tmp_path) == [path]
    assert "recorded by experiment paper/toy" in caplog.text and "force=true reruns it" in caplog.text
    assert f"test mae {first['metrics']['mae']:.6g}  mse {first['metrics']['mse']:.6g}" in caplog.text
    assert shown["run_id"] == first["run_id"]  # the paper run's own record, nothing trained for the adhoc one
    assert [p.name for p in (tmp_path / "outputs" / "runs" / "toy" / "toy_sine").iterdir()] == [first["run_id"]]


def test_finished_run_prints_its_metrics_as_a_finished_run_does(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="aaren.harness"):
        done = run_in_process(tmp_path, ["task=toy", "task.trainer.max_epochs=1"])
        trained = caplog.text
        caplog.clear()
        again = run_in_process(tmp_path, ["task=toy", "task.trainer.max_epochs=1"])
    line = f"run {done['run_id']} [adhoc] test mae {done['metrics']['mae']:.6g}  mse {done['metrics']['mse']:.6g}"
    assert again == done and line in trained and line in caplog.text
    assert f"recorded {done['finished_at']} in " in caplog.text


def test_default_valued_arguments_and_prose_do_not_change_the_run_id():
    base = identity.config_hash(compose_config(["task=forecasting"]))
    assert identity.config_hash(compose_config(["task=forecasting", "+task.datamodule.num_workers=0"])) == base
    assert identity.config_hash(compose_config(["task=forecasting", "report.protocol.scaler=reworded"])) == base
    assert identity.config_hash(compose_config(["task=forecasting", "+task.datamodule.num_workers=2"])) != base
    assert identity.config_hash(compose_config(["task=forecasting", "threads=2"])) != base


def test_no_profile_labels_remain_in_any_config():
    for path in (REPO / "conf").rglob("*.yaml"):
        assert "profile:" not in path.read_text(), f"{path}: hand-written profile label (the experiment names it)"


def test_a_run_pins_its_thread_count(tmp_path):
    import torch

    record = run_in_process(tmp_path, [*TOY[:1], "task.trainer.max_epochs=1", "threads=2"])
    assert record["config"]["threads"] == 2 and record["machine"]["torch_threads"] == 2
    assert torch.get_num_threads() == 1  # the helper puts the process's own setting back


@pytest.mark.parametrize("task", ["classification", "forecasting", "rl", "tpp"])
def test_smoke_runs_write_outside_the_results_store_by_default(task):
    cfg = compose_config([f"experiment=smoke/{task}", "paths.output_root=/somewhere/outputs"])
    assert cfg.paths.results_root == "/somewhere/outputs/smoke_results"


class NamedFileDataModule:
    """Stands in for a datamodule that names the file it reads (tasks/rl/data.py's `file()`)."""
    path = None

    def __init__(self, **kwargs):
        pass

    def file(self):
        return self.path


def test_finished_run_warns_when_its_data_file_changed(tmp_path, caplog):
    from tasks.harness.checks import warn_on_data_drift
    from tasks.datasets.download import sha256_of

    NamedFileDataModule.path = tmp_path / "data.bin"
    NamedFileDataModule.path.write_bytes(b"old")
    cfg = compose_config(["task=toy"])
    cfg.task.datamodule = {"_target_": f"{__name__}.NamedFileDataModule"}
    record = {"run_id": "r", "data": {"sha256": sha256_of(NamedFileDataModule.path)}}
    assert warn_on_data_drift(cfg, record, tmp_path / "r.json") is False
    NamedFileDataModule.path.write_bytes(b"new")
    with caplog.at_level(logging.WARNING, logger="aaren.harness"):
        assert warn_on_data_drift(cfg, record, tmp_path / "r.json") is True
    assert "not from this data" in caplog.text and str(NamedFileDataModule.path) in caplog.text


def test_migrated_records_kept_their_metrics_and_name_their_experiment():
    """The committed store after scripts/migrate_records.py: schema 2, an experiment, metrics as before."""
    paths = sorted((REPO / "results" / "records").rglob("*.json"))
    if not paths:
        pytest.skip("no committed records")
    for path in paths:
        record = json.loads(path.read_text())
        assert record["experiment"] and record["schema_version"] == 2, path
        assert path.stem == record["run_id"] == identity.run_id_of(
            model=record["model"], seed=record["seed"], experiment=record["experiment"],
            config_hash=record["config_hash"]), path
        assert identity.values_hash(record["config"]) == record["config_hash"], path
        assert "profile" not in record["protocol"], path
    assert store.load_records(REPO / "results")
