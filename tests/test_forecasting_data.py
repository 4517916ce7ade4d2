"""Forecasting data protocol: TSLib split borders and window counts, train-only scaling, calendar features,
windows, the datamodule's loaders, and clear errors on bad files."""
import numpy as np
import pandas as pd
import pytest
import torch

from tasks.datasets.errors import DatasetFormatError
from tests.fixtures import make_tslib_csv
from tasks.forecasting.data import ForecastingDataModule, ForecastingWindows, load_series
from tasks.forecasting.splits import StandardScaler, split_borders
from tasks.forecasting.time_features import n_time_features, time_features

ETT_HOUR = {"kind": "months", "rows_per_month": 720, "train_months": 12, "val_months": 4, "test_months": 4}
ETT_MINUTE = dict(ETT_HOUR, rows_per_month=2880)
RATIO = {"kind": "ratio", "train_fraction": 0.7, "test_fraction": 0.2}
# ETT's scheme scaled down for fixtures: 10 rows per "month", 12/4/4 months → rows [0, 200) used
TINY_MONTHS = dict(ETT_HOUR, rows_per_month=10)


def tslib_frame(tmp_path, n_rows=220):
    """A generated TSLib CSV (date, x0, x1, OT) read back as a DataFrame, for editing."""
    return pd.read_csv(make_tslib_csv(tmp_path / "generated.csv", n_rows=n_rows, n_channels=3))


def _window_counts(n_rows, scheme, seq_len=96, horizon=96):
    borders = split_borders(n_rows, seq_len=seq_len, horizon=horizon, scheme=scheme, source="x.csv")
    return tuple(end - start - seq_len - horizon + 1 for start, end in borders.values())


@pytest.mark.parametrize("n_rows, scheme, counts", [
    (17420, ETT_HOUR, (8449, 2785, 2785)),      # ETTh1/ETTh2, as TSLib prints "train 8449 / val 2785 / test 2785"
    (69680, ETT_MINUTE, (34369, 11425, 11425)),  # ETTm1/ETTm2
    (52696, RATIO, (36696, 5175, 10444)),        # Weather
    (7588, RATIO, (5120, 665, 1422)),            # Exchange
])
def test_window_counts_match_tslib(n_rows, scheme, counts):
    assert _window_counts(n_rows, scheme) == counts


def test_ett_borders_and_seq_len_overlap():
    b = split_borders(17420, seq_len=96, horizon=192, scheme=ETT_HOUR, source="ETTh1.csv")
    assert b == {"train": (0, 8640), "val": (8640 - 96, 11520), "test": (11520 - 96, 14400)}


def test_series_too_short_names_file():
    with pytest.raises(DatasetFormatError, match=r"short\.csv.*too short.*96 \+ 720"):
        split_borders(1000, seq_len=96, horizon=720, scheme=RATIO, source="short.csv")
    with pytest.raises(DatasetFormatError, match=r"short\.csv: 100 rows.*needs 14400"):
        split_borders(100, seq_len=96, horizon=96, scheme=ETT_HOUR, source="short.csv")


def test_scaler_uses_training_rows_only():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = StandardScaler(train)
    np.testing.assert_allclose(scaler.mean, [2.0, 5.0])
    np.testing.assert_allclose(scaler.std, [1.0, 1.0])  # population std 1; constant channel → 1, not 0
    later = np.array([[101.0, 7.0]])
    np.testing.assert_allclose(scaler.transform(later), [[99.0, 2.0]])
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(later)), later)


def test_time_features_values():
    f = time_features(pd.to_datetime(["2016-07-01 00:00:00", "2016-12-31 23:45:00"]), "t")
    # 2016-07-01 is a Friday (dayofweek 4), day 183 of a leap year; 2016-12-31 a Saturday, day 366
    expected = [[0 / 59 - .5, 0 / 23 - .5, 4 / 6 - .5, 0 / 30 - .5, 182 / 365 - .5],
                [45 / 59 - .5, 23 / 23 - .5, 5 / 6 - .5, 30 / 30 - .5, 365 / 365 - .5]]
    np.testing.assert_allclose(f, expected, rtol=1e-6)
    assert f.dtype == np.float32 and n_time_features("h") == 4
    with pytest.raises(ValueError, match="freq"):
        time_features(pd.to_datetime(["2016-07-01"]), "fortnightly")


def test_load_series_scales_windows_and_orders_target_last(tmp_path):
    frame = tslib_frame(tmp_path)[["date", "OT", "x0", "x1"]]  # target not last in the file
    frame.loc[150:, "x0"] += 1000.0  # a level shift after the training rows must not leak into the scaler
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    s = load_series(path, target="OT", time_feature_freq="h", channels=3, seq_len=8, horizon=4,
                    split=TINY_MONTHS)
    assert s.columns == ("x0", "x1", "OT")
    assert s.borders == {"train": (0, 120), "val": (112, 160), "test": (152, 200)}
    train = s.values[:120]
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1.0, atol=1e-5)
    assert s.values[150:, 0].min() > 100  # the shifted rows stay far out: scaled with training statistics
    np.testing.assert_allclose(s.scaler.inverse_transform(s.values), frame[["x0", "x1", "OT"]].to_numpy(),
                               rtol=1e-5)

    test = ForecastingWindows(s, "test", seq_len=8, horizon=4)
    assert len(test) == 48 - 8 - 4 + 1
    x, x_mark, y = test[len(test) - 1]
    assert x.shape == (8, 3) and x_mark.shape == (8, 4) and y.shape == (4, 3)
    torch.testing.assert_close(y, torch.from_numpy(s.values[196:200]))  # last target row = last test row
    torch.testing.assert_close(x, torch.from_numpy(s.values[188:196]))


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns="date"), r"no 'date' column"),
    (lambda f: f.drop(columns="OT"), r"no target column 'OT'"),
    (lambda f: f.assign(x0=f.x0.where(f.index != 30)), r"line 32, column 'x0': empty or NaN"),
    (lambda f: f.drop(columns="x1"), r"2 channels .* channels: 3"),
    (lambda f: f.iloc[:150], r"150 rows, but the split scheme"),
])
def test_bad_files_raise_errors_naming_the_file(tmp_path, edit, message):
    path = tmp_path / "bad_series.csv"
    edit(tslib_frame(tmp_path)).to_csv(path, index=False)
    with pytest.raises(DatasetFormatError, match=message) as error:
        load_series(path, target="OT", time_feature_freq="h", channels=3, seq_len=8, horizon=4,
                    split=TINY_MONTHS)
    assert "bad_series.csv" in str(error.value)


def test_horizon_longer_than_a_split_names_file(tmp_path):
    path = make_tslib_csv(tmp_path / "tiny.csv", n_rows=220, n_channels=3)
    with pytest.raises(DatasetFormatError, match=r"tiny\.csv.*too short.*8 \+ 48"):
        load_series(path, target="OT", time_feature_freq="h", channels=3, seq_len=8, horizon=48,
                    split=TINY_MONTHS)


@pytest.mark.parametrize("drop_last_test, n_test_windows", [(False, 37), (True, 32)])
def test_datamodule_loaders_and_the_drop_last_compat_switch(tmp_path, monkeypatch, drop_last_test, n_test_windows):
    path = make_tslib_csv(tmp_path / "toy.csv", n_rows=220, n_channels=3)
    dataset = {"name": "toy", "file": "toy.csv", "target": "OT", "time_feature_freq": "h", "channels": 3,
               "split": TINY_MONTHS}
    dm = ForecastingDataModule(dataset=dataset, data_root=str(tmp_path), seq_len=8, horizon=4, batch_size=8,
                               drop_last_test=drop_last_test)
    monkeypatch.setattr(dm, "path", lambda: path)  # the file; locate() is the registry's business
    dm.setup("fit")
    assert [len(dm.windows[s]) for s in ("train", "val", "test")] == [120 - 11, 37, 37]
    assert sum(len(y) for _, _, y in dm.test_dataloader()) == n_test_windows  # 37 = 4 batches of 8 + 5
    assert sum(len(y) for _, _, y in dm.val_dataloader()) == 37  # validation always scores every window
    assert sum(len(y) for _, _, y in dm.train_dataloader()) == 109
