"""scripts/infer_training.py: how training ended, for records that predate the `training` block."""
import json

import pytest

from scripts import infer_training
from tasks import fileio
from tasks.harness import store
from tasks.reporting import tables


def old_record(*, patience, max_epochs, max_steps=None, epochs_trained):
    return {"run_id": "aaren_s0_x", "task": "forecasting", "dataset": "ETTh1", "model": "aaren", "seed": 0,
            "variant": {"horizon": 96}, "metrics": {"mse": 0.5},
            "epochs_trained": epochs_trained,
            "config": {"task": {"patience": patience, "trainer": {"max_epochs": max_epochs, "max_steps": max_steps}}}}


@pytest.mark.parametrize("kwargs, stopped_early, steps", [
    (dict(patience=3, max_epochs=5, epochs_trained=3), True, None),        # fewer epochs than the limit
    (dict(patience=3, max_epochs=5, epochs_trained=5), False, None),       # the limit reached
    (dict(patience=None, max_epochs=-1, max_steps=2000, epochs_trained=2), False, 2000),   # RL: updates
])
def test_how_training_ended_is_inferred_from_epochs_and_limits(kwargs, stopped_early, steps):
    block = infer_training.inferred_training(old_record(**kwargs))
    assert block["stopped_early"] is stopped_early and block["reached_limit"] is (not stopped_early)
    assert block["steps"] == steps and block["epochs"] == kwargs["epochs_trained"] and block["inferred_from"]


def test_the_script_adds_only_the_block_and_tables_mark_it(tmp_path):
    old = old_record(patience=3, max_epochs=5, epochs_trained=3)
    path = store.record_path(tmp_path, "forecasting", "ETTh1", old["run_id"])
    fileio.write_json_atomic(path, old)
    assert infer_training.main(["--results-root", str(tmp_path), "--dry-run"]) == 0
    assert "training" not in json.loads(path.read_text())
    assert infer_training.main(["--results-root", str(tmp_path)]) == 0
    new = json.loads(path.read_text())
    assert {k: v for k, v in new.items() if k != "training"} == old
    assert tables.convergence([new], "epochs") == "3 ep (stopped early: yes)*"
    assert infer_training.main(["--results-root", str(tmp_path)]) == 0   # run again: nothing left to infer
    assert json.loads(path.read_text()) == new
