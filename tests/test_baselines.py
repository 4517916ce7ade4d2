"""Sanity baselines on hand examples (tasks/tpp/baselines.py, tasks/forecasting/baselines.py), and the script end to
end on the generated Hawkes and the shipped ETTh1."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tasks.tpp.baselines import sanity_baselines, train_mark_frequencies
from tasks.tpp.sequences import EventSequences
from tests.harness_toy.helpers import REPO


def _sequences(times, marks, num_marks=3, truth=None):
    times = [np.asarray(t, dtype=np.float64) for t in times]
    marks = [np.asarray(m, dtype=np.int64) for m in marks]
    if truth is None:
        return EventSequences(times, marks, num_marks, "hand")
    return EventSequences(times, marks, num_marks, "hand", *truth)


def test_baselines_on_a_hand_example():
    # training targets: τ 1, 1, 2 (mean 4/3), marks 1, 1, 2 → counts (0, 2, 1), add-one (1, 3, 2) / 6
    train = _sequences([[1.0, 2.0, 3.0], [0.5, 2.5]], [[0, 1, 1], [2, 2]])
    # test targets: seq 1 τ (2, 1), marks (0, 0) after a 0; seq 2 τ (3,), mark 1 after a 2
    test = _sequences([[1.0, 3.0, 4.0], [1.0, 4.0]], [[0, 0, 0], [2, 1]],
                      truth=([np.array([9.0, -1.0, -2.0]), np.array([9.0, -3.0])],
                             [np.array([9.0, -0.5, -0.5]), np.array([9.0, -0.2])]))
    np.testing.assert_allclose(train_mark_frequencies(train), [1 / 6, 3 / 6, 2 / 6])
    out = sanity_baselines({"train": train, "val": train, "test": test})
    assert out["repeat_previous_mark"]["accuracy"] == pytest.approx(2 / 3)
    freq = out["train_mark_frequencies"]
    assert freq["nll_mark"] == pytest.approx(-(2 * math.log(1 / 6) + math.log(3 / 6)) / 3)
    assert freq["accuracy"] == pytest.approx(1 / 3)                        # always mark 1
    assert out["uniform_marks"]["nll_mark"] == pytest.approx(math.log(3))
    errors = np.array([4 / 3 - 2, 4 / 3 - 1, 4 / 3 - 3])
    assert out["train_mean_interevent"]["rmse"] == pytest.approx(math.sqrt((errors ** 2).mean()))
    per_sequence = np.array([errors[0] + errors[1], errors[2]])           # Meta-TPP squares each sequence's sum
    assert out["train_mean_interevent"]["rmse_metatpp"] == pytest.approx(math.sqrt((per_sequence ** 2).sum() / 3))
    truth = out["true_process"]                                           # the first event is input only
    assert truth["nll_time"] == pytest.approx(6 / 3) and truth["nll_mark"] == pytest.approx(1.2 / 3)
    assert truth["nll"] == pytest.approx(7.2 / 3)


def test_unmarked_data_without_truth_has_only_the_time_baseline():
    seqs = _sequences([[1.0, 2.0, 4.0]], [[0, 0, 0]], num_marks=1)
    assert set(sanity_baselines({"train": seqs, "val": seqs, "test": seqs})) == {"train_mean_interevent"}


def test_script_writes_the_contract_file_for_the_generated_hawkes(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "baselines.py"), "Hawkes",
                           "--results-root", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "baselines" / "tpp" / "Hawkes.json").read_text())
    assert (payload["task"], payload["dataset"], payload["split"], payload["variant"]) == ("tpp", "Hawkes", "test", {})
    assert set(payload["baselines"]) == {"repeat_previous_mark", "train_mark_frequencies", "uniform_marks",
                                         "train_mean_interevent", "true_process"}
    assert payload["provenance"]["generator"]["process"] == "hawkes" and payload["provenance"]["created_at"]
    # the generating process is the best predictor there is: its NLL is below the frequency baseline's
    assert payload["baselines"]["true_process"]["nll_mark"] < payload["baselines"]["train_mark_frequencies"]["nll_mark"]


def _windows(values, seq_len, horizon):
    from tasks.forecasting.data import ForecastingWindows, ScaledSeries
    values = np.asarray(values, dtype=np.float32)
    series = ScaledSeries(path=None, columns=tuple(range(values.shape[1])), values=values,
                          marks=np.zeros((len(values), 1), dtype=np.float32), borders={"test": (0, len(values))},
                          scaler=None)
    return ForecastingWindows(series, "test", seq_len=seq_len, horizon=horizon)


def test_forecasting_baselines_on_a_hand_example():
    from tasks.forecasting.baselines import sanity_baselines
    # one channel 0, 1, 3, 6; seq_len 2, horizon 1 → windows ([0, 1] → 3), ([1, 3] → 6)
    out = sanity_baselines(_windows([[0.0], [1.0], [3.0], [6.0]], seq_len=2, horizon=1), batch_size=1)
    assert out["repeat_last_value"] == pytest.approx({"mse": (2 ** 2 + 3 ** 2) / 2, "mae": (2 + 3) / 2})
    assert out["train_mean"] == pytest.approx({"mse": (3 ** 2 + 6 ** 2) / 2, "mae": (3 + 6) / 2})
    # two channels, horizon 2: every (window, step, channel) counts once, whatever the batch size
    values = np.stack([np.arange(6.0), -np.arange(6.0) ** 2], axis=1)
    by_one, by_all = (sanity_baselines(_windows(values, seq_len=2, horizon=2), batch_size=b) for b in (1, 64))
    x_last = np.array([[1.0, -1.0], [2.0, -4.0], [3.0, -9.0]])                       # last input of windows 0..2
    y = np.array([[[2, -4], [3, -9]], [[3, -9], [4, -16]], [[4, -16], [5, -25]]], dtype=float)
    assert by_one["repeat_last_value"]["mse"] == pytest.approx(((y - x_last[:, None]) ** 2).mean())
    assert all(by_one[name] == pytest.approx(by_all[name]) for name in by_one)


def test_script_writes_one_forecasting_file_per_horizon(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "baselines.py"), "ETTh1", "--horizons", "96",
                           "192", "--data-root", str(REPO / "data"), "--results-root", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for horizon in (96, 192):
        payload = json.loads((tmp_path / "baselines" / "forecasting" / f"ETTh1_horizon{horizon}.json").read_text())
        assert (payload["task"], payload["dataset"], payload["variant"]) == ("forecasting", "ETTh1",
                                                                             {"horizon": horizon})
        assert set(payload["baselines"]) == {"repeat_last_value", "train_mean"}
        assert list(payload["provenance"]["data_files"]) == ["ETTh1.csv"]
        # on the scaled data, predicting each channel's training mean is far from free
        assert payload["baselines"]["train_mean"]["mse"] > 0.5


def test_classification_baselines_on_a_hand_example():
    from tasks.classification.baselines import sanity_baselines
    # TRAIN: class 2 most frequent (3 of 5); TEST: 2 of 4 are class 2
    out = sanity_baselines(np.array([0, 2, 2, 1, 2]), np.array([2, 0, 2, 1]), n_classes=4)
    assert out == {"majority_class": {"accuracy": 0.5}, "uniform_guess": {"accuracy": 0.25}}
    tie = sanity_baselines(np.array([1, 0, 1, 0]), np.array([0, 0, 1]), n_classes=2)   # tie → the first class
    assert tie["majority_class"]["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="empty"):
        sanity_baselines(np.array([], dtype=int), np.array([0]), n_classes=2)


def test_rl_baseline_is_the_behaviour_data_level_on_every_score_column():
    from tasks.rl.baselines import sanity_baselines
    out = sanity_baselines({"dataset": "x", "normalized_return_mean": 40.7})
    assert out == {"behaviour_data": {f"{s}_{m}_normalized_score": 40.7 for s in ("last", "best")
                                      for m in ("window", "stream")}}
    with pytest.raises(ValueError, match="normalized_return_mean"):
        sanity_baselines({"dataset": "x"})


def test_script_writes_the_rl_file_from_the_committed_statistics(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "baselines.py"), "halfcheetah-medium",
                           "--results-root", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "baselines" / "rl" / "halfcheetah-medium.json").read_text())
    statistics = json.loads((REPO / "results" / "rl_data" / "halfcheetah-medium.json").read_text())
    assert payload["baselines"]["behaviour_data"]["last_stream_normalized_score"] == \
        statistics["normalized_return_mean"]
    assert list(payload["provenance"]["statistics"]) == ["results/rl_data/halfcheetah-medium.json"]


def test_classification_file_on_the_shared_japanese_vowels(tmp_path):
    shared = REPO.parent / "shared" / "datasets"
    if not (shared / "classification" / "JapaneseVowels").is_dir():
        pytest.skip("../shared/datasets/classification/JapaneseVowels is not here")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "baselines.py"), "JapaneseVowels",
                           "--data-root", str(shared), "--results-root", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    payload = json.loads((tmp_path / "baselines" / "classification" / "JapaneseVowels.json").read_text())
    assert payload["baselines"]["uniform_guess"]["accuracy"] == pytest.approx(1 / 9)          # 9 speakers
    assert 0 < payload["baselines"]["majority_class"]["accuracy"] < 0.2                      # near-balanced TEST
    assert set(payload["provenance"]["data_files"]) == {"JapaneseVowels_TRAIN.ts", "JapaneseVowels_TEST.ts"}
