"""Reader for the Time-Series-Library CSV layout (ETT*, Weather, Exchange, Traffic, ECL).

Layout: a header line, then one row per time step; the column named `date` holds timestamps and every other
column is a numeric channel, in file order (TSLib puts the forecasting target `OT` last). Values are kept exactly
as float64 (the loader normalises them; no silent casting here). Sentinels such as Weather's -9999 are data,
not errors; duplicate timestamps (also in Weather) are kept as in the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetFormatError
from ._common import require_file


@dataclass(frozen=True)
class SeriesTable:
    """A multivariate series read from one CSV file."""

    path: Path
    dates: np.ndarray  # (T,) datetime64[s]
    columns: tuple[str, ...]  # C channel names, file order, `date` excluded
    values: np.ndarray  # (T, C) float64


def read_csv_series(path: Path | str, *, date_column: str = "date") -> SeriesTable:
    """Read and validate a TSLib CSV; every problem raises DatasetFormatError naming the file, line and column."""
    path = require_file(path)
    n_fields = _check_field_counts(path)
    try:
        frame = pd.read_csv(path, dtype={date_column: str}, encoding="utf-8", skip_blank_lines=False)
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DatasetFormatError(path, f"not a readable CSV file ({error})") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if date_column not in frame.columns:
        raise DatasetFormatError(path, f"no {date_column!r} column; header is {list(frame.columns)}")
    if n_fields < 2:
        raise DatasetFormatError(path, "needs a date column and at least one value column")
    if len(frame) == 0:
        raise DatasetFormatError(path, "header only, no data rows")

    raw_dates = frame[date_column]
    dates = pd.to_datetime(raw_dates, errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DatasetFormatError(path, f"line {row + 2}: unparseable date {raw_dates.iloc[row]!r}")

    channels = [c for c in frame.columns if c != date_column]
    values = np.empty((len(frame), len(channels)), dtype=np.float64)
    for j, name in enumerate(channels):
        column = frame[name]
        numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numeric)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raw = column.iloc[row]
            what = "empty or NaN value" if pd.isna(raw) or str(raw).strip().lower() in ("", "nan") else (
                f"non-numeric value {raw!r}")
            raise DatasetFormatError(path, f"line {row + 2}, column {name!r}: {what}")
        values[:, j] = numeric
    return SeriesTable(
        path=path,
        dates=dates.to_numpy().astype("datetime64[s]"),
        columns=tuple(channels),
        values=values,
    )


def _check_field_counts(path: Path) -> int:
    """Every line must have as many comma-separated fields as the header (a cut-off last line does not)."""
    with path.open("rb") as handle:
        header = handle.readline()
        if not header.strip():
            raise DatasetFormatError(path, "empty file (no header line)")
        expected = header.count(b",") + 1
        for line_number, line in enumerate(handle, start=2):
            got = line.count(b",") + 1
            if got != expected:
                hint = " (file truncated?)" if not line.endswith(b"\n") else ""
                raise DatasetFormatError(
                    path, f"line {line_number} has {got} fields, the header has {expected}{hint}")
    return expected
