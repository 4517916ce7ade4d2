"""TSLib's long-horizon protocol on a (T, C) series: chronological split borders and train-only scaling.

Borders (TSLib `Dataset_ETT_hour` / `Dataset_ETT_minute` / `Dataset_Custom`), as row ranges [start, end):
- `months` (ETT*): 12/4/4 months of 30 days for train/val/test, `rows_per_month` = 30·24 (hourly) or
  30·24·4 (15-min). Rows after the 20th month are not used.
- `ratio` (Weather, ECL, Traffic, Exchange): n_train = ⌊0.7 T⌋, n_test = ⌊0.2 T⌋, n_val = T − n_train − n_test.
Validation and test ranges start `seq_len` rows early, so their first window's input lies in the previous split
and every target row of the split is forecast. The scaler is fit on the training rows only.
"""
from collections.abc import Mapping

import numpy as np

from tasks.datasets.errors import DatasetFormatError

SPLITS = ("train", "val", "test")


def split_borders(n_rows: int, *, seq_len: int, horizon: int, scheme: Mapping, source) -> dict:
    """→ {"train": (start, end), "val": ..., "test": ...}, row ranges of the series read from file `source`.

    Raises DatasetFormatError naming `source` when a split cannot hold one window of seq_len + horizon rows.
    """
    kind = scheme.get("kind")
    if kind == "months":
        month = scheme["rows_per_month"]
        n_train, n_val, n_test = (scheme[f"{s}_months"] * month for s in SPLITS)
        if n_rows < n_train + n_val + n_test:
            raise DatasetFormatError(source, f"{n_rows} rows, but the split scheme {dict(scheme)} needs "
                                             f"{n_train + n_val + n_test} rows ({n_train} train + {n_val} val + "
                                             f"{n_test} test)")
    elif kind == "ratio":
        n_train, n_test = int(n_rows * scheme["train_fraction"]), int(n_rows * scheme["test_fraction"])
        n_val = n_rows - n_train - n_test
    else:
        raise ValueError(f"split scheme kind must be 'months' or 'ratio', got {kind!r} (dataset file {source})")
    ends = np.cumsum([n_train, n_val, n_test])
    borders = {"train": (0, int(ends[0])), "val": (int(ends[0]) - seq_len, int(ends[1])),
               "test": (int(ends[1]) - seq_len, int(ends[2]))}
    window = seq_len + horizon
    for split, (start, end) in borders.items():
        if start < 0 or end - start < window:
            raise DatasetFormatError(source, f"series too short: the {split} split has {end - max(start, 0)} rows "
                                             f"(of {n_rows}), fewer than one window of seq_len + horizon = "
                                             f"{seq_len} + {horizon} = {window} rows")
    return borders


class StandardScaler:
    """Per-channel (x − mean) / std with statistics of the training rows (population std, as sklearn's).

    A constant channel gets std 1 (sklearn's rule), so it maps to 0 instead of dividing by zero.
    """

    def __init__(self, train_rows: np.ndarray):  # (T_train, C)
        self.mean = train_rows.mean(axis=0)
        std = train_rows.std(axis=0)
        self.std = np.where(std == 0, 1.0, std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        return x * self.std + self.mean
