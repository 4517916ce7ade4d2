"""Forecasting through the harness: every dataset config against the real file (when ../shared is there), and a
tiny end-to-end run of train.py's pipeline on ETTh1 (train → best checkpoint → full test set → record)."""
import json
import os
from pathlib import Path

import pytest
import yaml

from tasks.datasets.errors import DatasetMissingError
from tasks.datasets.registry import locate
from tasks.forecasting.data import ForecastingWindows, load_series
from tests.harness_toy.helpers import records, run_in_process

REPO = Path(__file__).resolve().parents[1]
ROOTS = [Path(p) for p in (os.environ.get("AAREN_DATA_ROOT"), REPO.parent / "shared" / "datasets") if p]
# TSLib's printed window counts "train / val / test" at seq_len 96, horizon 96
TSLIB_COUNTS = {"ETTh1": (8449, 2785, 2785), "ETTh2": (8449, 2785, 2785), "ETTm1": (34369, 11425, 11425),
                "ETTm2": (34369, 11425, 11425), "Weather": (36696, 5175, 10444), "Exchange": (5120, 665, 1422)}


def _find(name: str) -> Path | None:
    for root in ROOTS + [None]:  # None: the default root, then the registry's embedded copy
        try:
            return locate(name, root=root)
        except (DatasetMissingError, FileNotFoundError):
            continue
    return None


@pytest.mark.parametrize("name", sorted(TSLIB_COUNTS))
def test_dataset_configs_reproduce_tslib_window_counts(name):
    folder = _find(name)
    if folder is None:
        pytest.skip(f"{name} is not on this machine (set AAREN_DATA_ROOT or see data/README.md)")
    d = yaml.safe_load((REPO / "conf" / "dataset" / f"{name}.yaml").read_text())
    series = load_series(folder / d["file"], target=d["target"], time_feature_freq=d["time_feature_freq"],
                         channels=d["channels"], seq_len=96, horizon=96, split=d["split"])
    counts = tuple(len(ForecastingWindows(series, s, seq_len=96, horizon=96)) for s in ("train", "val", "test"))
    assert counts == TSLIB_COUNTS[name]
    assert series.columns[-1] == "OT" and series.marks.shape == (len(series.values), 4)


def test_tiny_end_to_end_run_writes_a_labelled_record(tmp_path):
    folder = _find("ETTh1")
    if folder is None:
        pytest.skip("ETTh1 is not on this machine")
    tiny = ["task=forecasting", "model=aaren", f"paths.data_root={folder.parent.parent}", "task.horizon=24",
            "task.backbone.d_model=8", "task.backbone.n_heads=2", "task.backbone.d_ff=16",
            "task.trainer.max_epochs=2", "task.trainer.limit_train_batches=3", "+task.trainer.limit_val_batches=2",
            "task.datamodule.batch_size=256"]
    record = run_in_process(tmp_path, tiny)
    [path] = records(tmp_path)
    assert json.loads(path.read_text()) == record
    assert record["variant"] == {"horizon": 24}
    assert record["experiment"] == "adhoc" and record["protocol"]["drop_last_test"] is False
    assert set(record["metrics"]) == {"mse", "mae"} and all(0 < v < 10 for v in record["metrics"].values())
    assert record["epochs_trained"] == 2
