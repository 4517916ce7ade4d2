"""Format readers of the data layer: each validates its file and raises DatasetFormatError (a ValueError)
naming the file and the problem (garbage and truncated files included). No reader runs code from a file: pickled
content goes through `_safe_load`'s allow-list, HDF5 / CSV / .ts are parsed as data. Outputs (see each module):
- read_csv_series(path) -> SeriesTable(dates (T,), columns (C names), values (T, C) float64)   TSLib CSV
- read_ts(path) -> LabelledSeries(series [n x (T_i, C) float32], labels (n,) str, class_labels)  UEA .ts
- read_d4rl_hdf5(path) -> {observations, actions, rewards, terminals, timeouts}                 D4RL HDF5
- read_tpp(path, fmt) -> TppData(sequences [{"times", "marks"}], num_marks)                      TPP formats
"""
from ..errors import DatasetFormatError, DatasetMissingError
from .d4rl import D4RL_KEYS, read_d4rl_hdf5
from .series import SeriesTable, read_csv_series
from .tpp import TPP_FORMATS, TppData, read_tpp
from .uea import LabelledSeries, read_ts

__all__ = [
    "DatasetFormatError", "DatasetMissingError", "D4RL_KEYS", "read_d4rl_hdf5", "SeriesTable", "read_csv_series",
    "TPP_FORMATS", "TppData", "read_tpp", "LabelledSeries", "read_ts",
]
