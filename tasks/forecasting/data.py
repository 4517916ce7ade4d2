"""Forecasting data: a TSLib CSV → channels in TSLib order → train-scaled series → sliding windows per split.

Follows TSLib's `Dataset_ETT_*` / `Dataset_Custom` (features=M, timeenc=1): every column but `date` is a channel,
the target column (`OT`) is moved last, the StandardScaler is fit on the training rows, and window i of a split
is input rows [i, i + seq_len) with targets [i + seq_len, i + seq_len + horizon). Metrics are on this scaled data.
There is no decoder, so TSLib's `label_len` (the decoder's start tokens) has no role here.
"""
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tasks.datasets.errors import DatasetFormatError
from tasks.datasets.readers.series import read_csv_series

from .splits import SPLITS, StandardScaler, split_borders
from .time_features import time_features


@dataclass(frozen=True)
class ScaledSeries:
    path: Path
    columns: tuple  # C channel names, target last
    values: np.ndarray  # (T, C) float32, scaled with the training rows' statistics
    marks: np.ndarray  # (T, F) float32 calendar features
    borders: dict  # split → (start, end) rows
    scaler: StandardScaler


def load_series(path, *, target: str, time_feature_freq: str, channels: int, seq_len: int, horizon: int,
                split: Mapping) -> ScaledSeries:
    """Read, validate and scale one series; every data problem raises DatasetFormatError naming `path`."""
    table = read_csv_series(path)
    if target not in table.columns:
        raise DatasetFormatError(table.path, f"no target column {target!r}; channels are {list(table.columns)}")
    columns = tuple(c for c in table.columns if c != target) + (target,)
    if len(columns) != channels:
        raise DatasetFormatError(table.path, f"{len(columns)} channels {list(columns)}, but the dataset config "
                                             f"says channels: {channels}")
    values = table.values[:, [table.columns.index(c) for c in columns]]  # (T, C)
    borders = split_borders(len(values), seq_len=seq_len, horizon=horizon, scheme=split, source=table.path)
    scaler = StandardScaler(values[slice(*borders["train"])])
    return ScaledSeries(path=table.path, columns=columns, values=scaler.transform(values).astype(np.float32),
                        marks=time_features(table.dates, time_feature_freq), borders=borders, scaler=scaler)


class ForecastingWindows(Dataset):
    """Every window of rows [start, end): item i → (x (seq_len, C), x_mark (seq_len, F), y (horizon, C))."""

    def __init__(self, series: ScaledSeries, split: str, *, seq_len: int, horizon: int):
        start, end = series.borders[split]
        self.values = torch.from_numpy(series.values[start:end])
        self.marks = torch.from_numpy(series.marks[start:end])
        self.seq_len, self.horizon = seq_len, horizon

    def __len__(self) -> int:
        return len(self.values) - self.seq_len - self.horizon + 1

    def __getitem__(self, i: int):
        cut = i + self.seq_len
        return self.values[i:cut], self.marks[i:cut], self.values[cut:cut + self.horizon]


class ForecastingDataModule(L.LightningDataModule):
    """dataset: the conf/dataset node {name, file, target, time_feature_freq, channels, split};
    data_root: a root laid out as <root>/forecasting/<Name>/ (None = the default root; see tasks.datasets).

    drop_last_test: TSLib's historical test loader dropped the last partial batch (a few windows never scored);
    False (default) scores every test window, True reproduces the old numbers.
    """

    def __init__(self, *, dataset: Mapping, data_root, seq_len: int, horizon: int, batch_size: int,
                 drop_last_test: bool = False, num_workers: int = 0):
        super().__init__()
        self.dataset_config, self.data_root = dict(dataset), data_root
        self.seq_len, self.horizon, self.batch_size = seq_len, horizon, batch_size
        self.drop_last_test, self.num_workers = drop_last_test, num_workers
        self.series, self.windows = None, {}

    def path(self) -> Path:
        from tasks.datasets.registry import locate

        return locate(self.dataset_config["name"], root=self.data_root) / self.dataset_config["file"]

    def setup(self, stage: str | None = None) -> None:
        if self.series is not None:
            return
        d = self.dataset_config
        self.series = load_series(self.path(), target=d["target"], time_feature_freq=d["time_feature_freq"],
                                  channels=d["channels"], seq_len=self.seq_len, horizon=self.horizon,
                                  split=d["split"])
        self.windows = {s: ForecastingWindows(self.series, s, seq_len=self.seq_len, horizon=self.horizon)
                        for s in SPLITS}

    def _loader(self, split: str, *, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(self.windows[split], batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train", shuffle=True, drop_last=False)

    def val_dataloader(self):
        return self._loader("val", shuffle=False, drop_last=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False, drop_last=self.drop_last_test)
