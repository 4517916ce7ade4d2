"""UEADataModule: `<Name>_TRAIN.ts` / `<Name>_TEST.ts` → right-padded batches (x, mask, y) under the protocol.

Steps (protocol.py has the facts and the TSLib differences):
1. read both files with the data layer's `read_ts` (it validates the format and names the file in errors);
   check channels / classes / lengths against the dataset config; code labels by TRAIN's classes.
2. interpolate NaNs per case and channel (TSLib).
3. validation = "train_split" (default): a seeded stratified split of TRAIN (`val_fraction`); "test" (TSLib
   compat): validate, and so early-stop and pick the best epoch, on TEST.
4. normalisation = "train" (default): per-channel statistics of the training cases; "per_split" (TSLib compat):
   each file with its own statistics. `instance_norm` adds TSLib's per-case step for EthanolConcentration.
5. batches: cases right-padded with zeros to the longest in the batch; mask (B, N) bool True=valid.
"""
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tasks.datasets.readers import read_ts

from .protocol import (NORMALISATIONS, ChannelStandardiser, ClassificationDataError, encode_labels,
                       interpolate_missing, stratified_split, tslib_instance_norm)

VALIDATIONS = ("train_split", "test")


class PaddedCases(Dataset):
    """cases: list of (T_i, C) float arrays; labels (n,) int64. Items are (x (T_i, C) float32, y)."""

    def __init__(self, cases: list[np.ndarray], labels: np.ndarray):
        self.cases = [torch.as_tensor(case, dtype=torch.float32) for case in cases]
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int):
        return self.cases[index], self.labels[index]


def pad_batch(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[(x (T_i, C), y)] → x (B, N, C) zero right-padded, mask (B, N) bool True=valid, y (B,)."""
    cases, labels = zip(*items)
    lengths = torch.tensor([len(case) for case in cases])
    x = torch.nn.utils.rnn.pad_sequence(list(cases), batch_first=True)  # (B, N, C), N = max T_i
    mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    return x, mask, torch.stack(labels)


class UEADataModule(L.LightningDataModule):
    """dataset: the conf/dataset node {name, n_train, n_test, n_channels, n_classes, max_length} (facts checked
    against the files; a missing key is not checked); data_root: a root laid out as <root>/classification/<Name>/
    (None = the data layer's default)."""

    def __init__(self, *, dataset: Mapping, data_root: str | None = None, batch_size: int = 16,
                 val_fraction: float = 0.2, validation: str = "train_split", normalisation: str = "train",
                 instance_norm: bool = False, seed: int = 0, num_workers: int = 0):
        super().__init__()
        if validation not in VALIDATIONS:
            raise ValueError(f"validation must be one of {list(VALIDATIONS)}, got {validation!r}")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {list(NORMALISATIONS)}, got {normalisation!r}")
        self.dataset = dict(dataset)
        self.data_root, self.batch_size, self.num_workers = data_root, batch_size, num_workers
        self.val_fraction, self.validation, self.normalisation = val_fraction, validation, normalisation
        self.instance_norm, self.seed = instance_norm, seed
        self.splits: dict[str, PaddedCases] = {}
        self.classes: tuple[str, ...] = ()

    def files(self) -> tuple[Path, Path]:
        from tasks.datasets.registry import locate  # the registry resolves the data root (and sktime's copy)

        name = self.dataset["name"]
        folder = locate(name, root=self.data_root)
        return folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts"

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train_file, test_file = self.files()
        train, test = read_ts(train_file), read_ts(test_file)
        self.classes = train.class_labels
        self._check_against_config(train, test)
        y_train, y_test = encode_labels(train.labels, test.labels, classes=self.classes, test_file=test_file)
        train_cases = [interpolate_missing(c, where=f"{train_file} case {i}") for i, c in enumerate(train.series)]
        test_cases = [interpolate_missing(c, where=f"{test_file} case {i}") for i, c in enumerate(test.series)]

        if self.validation == "train_split":
            fit_idx, val_idx = stratified_split(y_train, val_fraction=self.val_fraction, seed=self.seed,
                                                where=str(train_file))
        else:
            fit_idx, val_idx = np.arange(len(y_train)), None

        train_scaler = ChannelStandardiser().fit([train_cases[i] for i in fit_idx] if self.normalisation == "train"
                                                 else train_cases)
        test_scaler = train_scaler if self.normalisation == "train" else ChannelStandardiser().fit(test_cases)
        train_cases, test_cases = train_scaler.transform(train_cases), test_scaler.transform(test_cases)
        if self.instance_norm:
            train_cases = [tslib_instance_norm(c) for c in train_cases]
            test_cases = [tslib_instance_norm(c) for c in test_cases]

        test_split = PaddedCases(test_cases, y_test)
        self.splits = {"train": PaddedCases([train_cases[i] for i in fit_idx], y_train[fit_idx]), "test": test_split,
                       "val": test_split if val_idx is None else
                       PaddedCases([train_cases[i] for i in val_idx], y_train[val_idx])}

    def _check_against_config(self, train, test) -> None:
        keys = ("n_train", "n_test", "n_channels", "n_classes")
        expected = {key: self.dataset.get(key) for key in keys}
        found = dict(zip(keys, (len(train.series), len(test.series), train.series[0].shape[1], len(self.classes))))
        for key, value in expected.items():
            if value is not None and value != found[key]:
                raise ClassificationDataError(f"{train.path.parent}: the files give {key} = {found[key]}, but "
                                              f"conf/dataset/{self.dataset['name']}.yaml says {value}")
        if test.series[0].shape[1] != found["n_channels"]:
            raise ClassificationDataError(f"{test.path}: has {test.series[0].shape[1]} channels, the training file "
                                          f"{train.path} has {found['n_channels']}")
        max_length = self.dataset.get("max_length")
        longest = max(len(case) for case in train.series + test.series)
        if max_length is not None and longest > max_length:
            raise ClassificationDataError(f"{train.path.parent}: a series has {longest} steps, more than "
                                          f"max_length = {max_length} in conf/dataset/{self.dataset['name']}.yaml")

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        if not self.splits:
            raise RuntimeError("UEADataModule: call setup() before asking for a dataloader")
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(self.splits[split], batch_size=self.batch_size, shuffle=shuffle, collate_fn=pad_batch,
                          num_workers=self.num_workers, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
