"""Readers for the marked temporal point process (TPP) formats the paper's 8 TPP datasets exist in.

Every format is converted to one output: `TppData(sequences, num_marks)`, where each sequence is a dict
{"times": (L,) float64 absolute event times, "marks": (L,) int64 in [0, num_marks)} (marks always 0-based).
Formats (`fmt`):
- "meta_tpp_npz": Meta-TPP (Bae et al. 2023) `data/{real,synthetic}/<name>.npz`: padded 2-D arrays `times`
  (S, L_max) holding INTER-EVENT times τ (its models feed `times[:, 1:]` to the log-normal mixture as the
  target; τ_1 counts from the window start 0, so absolute times = cumsum τ), optional `marks` (1-based,
  0 = padding, "original dataset uses 1-index" in its code; absent = unmarked) and `masks` (nonzero = valid).
- "ifl_tpp_npz": ifl-tpp (Shchur et al. 2020) `.npz`: `arrival_times` (object array of sequences, or a 2-D
  array), optional `marks` (0-based) in the same layout.
- "rmtpp_text": RMTPP (Du et al. 2016) text: `path` is the times file (`time*.txt`, one sequence per line);
  marks come from the `event*.txt` file beside it (1-based types).
- "thp_pickle": THP / Neural Hawkes (Zuo et al. 2020; Mei & Eisner 2017) pickle: dict with `dim_process` and a
  split key (`train`/`dev`/`test`) holding sequences of event dicts with `time_since_start` and `type_event`
  (0-based).
Pickled content (THP files, the object arrays of ifl-tpp `.npz`) is loaded by `_safe_load`'s allow-listing
unpickler (plain values + numpy arrays/scalars): a file that names any other callable is refused, never run.
Validation (DatasetFormatError naming the file): no sequences, an empty sequence, non-finite or negative times,
times that decrease (ties are kept: Meta-TPP's own sanity check only rejects decreases), marks out of range,
arrays of the wrong shape or kind (complex, dates, records, string masks), and any file that is not a readable
archive / pickle (garbage, truncated, bad CRC).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetFormatError
from ._common import require_file
from ._safe_load import read_npz, restricted_load

TPP_FORMATS = ("meta_tpp_npz", "ifl_tpp_npz", "rmtpp_text", "thp_pickle")


@dataclass(frozen=True)
class TppData:
    path: Path
    sequences: list[dict[str, np.ndarray]]  # {"times": (L,) float64, "marks": (L,) int64}
    num_marks: int


def read_tpp(path: Path | str, fmt: str, *, num_marks: int | None = None) -> TppData:
    """Read one TPP file. `num_marks`, when given, is the declared mark count every mark must lie below;
    otherwise it comes from the file (THP `dim_process`) or is inferred as max mark + 1 (1 if unmarked)."""
    path = require_file(path)
    readers = {"meta_tpp_npz": _meta_tpp, "ifl_tpp_npz": _ifl_tpp, "rmtpp_text": _rmtpp, "thp_pickle": _thp}
    if fmt not in readers:
        raise ValueError(f"unknown TPP format {fmt!r}; expected one of {TPP_FORMATS}")
    sequences, file_num_marks = readers[fmt](path)
    if not sequences:
        raise DatasetFormatError(path, "no sequences")
    if num_marks is None:
        num_marks = file_num_marks or 1 + max((int(s["marks"].max()) for s in sequences if len(s["marks"])),
                                              default=0)
    for i, seq in enumerate(sequences):
        _validate_sequence(path, i, seq, num_marks)
    return TppData(path=path, sequences=sequences, num_marks=int(num_marks))


def _validate_sequence(path: Path, i: int, seq: dict[str, np.ndarray], num_marks: int) -> None:
    times, marks = seq["times"], seq["marks"]
    if len(times) == 0:
        raise DatasetFormatError(path, f"sequence {i} is empty")
    if len(marks) != len(times):
        raise DatasetFormatError(path, f"sequence {i}: {len(times)} times but {len(marks)} marks")
    if not np.isfinite(times).all():
        raise DatasetFormatError(path, f"sequence {i}: non-finite event time")
    if times[0] < 0:
        raise DatasetFormatError(path, f"sequence {i}: negative event time {times[0]}")
    drops = np.flatnonzero(np.diff(times) < 0)
    if drops.size:
        j = int(drops[0]) + 1
        raise DatasetFormatError(path, f"sequence {i}: event times decrease at event {j} "
                                       f"({times[j - 1]} -> {times[j]})")
    bad = np.flatnonzero((marks < 0) | (marks >= num_marks))
    if bad.size:
        raise DatasetFormatError(path, f"sequence {i}: mark {marks[bad[0]]} at event {bad[0]} "
                                       f"is out of range [0, {num_marks})")


def _as_float_sequence(path: Path, raw, what: str) -> np.ndarray:
    """(L,) float64 from a 1-D sequence of numbers (or number strings: the text formats, object arrays)."""
    array = np.asarray(raw)
    if array.ndim != 1:
        raise DatasetFormatError(path, f"{what} has shape {array.shape}, expected a 1-D sequence")
    if array.dtype.kind not in "iufOUS":  # bool, complex, dates, structured records: not event data
        raise DatasetFormatError(path, f"{what} is not numeric (dtype {array.dtype})")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise DatasetFormatError(path, f"{what} is not numeric") from None


def _as_int_sequence(path: Path, raw, what: str) -> np.ndarray:
    """(L,) int64 marks from integers, or floats / strings that hold integers."""
    array = np.asarray(raw)
    if array.dtype.kind in "iu" and array.ndim == 1:
        return array.astype(np.int64)
    as_float = _as_float_sequence(path, raw, what)
    if not np.array_equal(as_float, np.round(as_float)):  # NaN and inf fail too
        raise DatasetFormatError(path, f"{what} holds non-integer marks")
    if as_float.size and np.abs(as_float).max() > 2 ** 53:
        raise DatasetFormatError(path, f"{what} holds mark {np.abs(as_float).max():g}, beyond any mark count")
    return as_float.astype(np.int64)


def _meta_tpp(path: Path) -> tuple[list[dict[str, np.ndarray]], int | None]:
    arrays = read_npz(path)
    if "times" not in arrays:
        raise DatasetFormatError(path, f"no 'times' array (Meta-TPP layout); arrays are {sorted(arrays)}")
    times = arrays["times"]
    if times.ndim != 2:
        raise DatasetFormatError(path, f"'times' has shape {times.shape}, expected (sequences, max_len)")
    for key in ("marks", "masks"):
        if key in arrays and arrays[key].shape != times.shape:
            raise DatasetFormatError(path, f"{key!r} has shape {arrays[key].shape}, 'times' has {times.shape}")
    if "masks" in arrays and arrays["masks"].dtype.kind not in "iufb":
        raise DatasetFormatError(path, f"'masks' must hold numbers, not dtype {arrays['masks'].dtype}")
    valid = arrays["masks"] != 0 if "masks" in arrays else np.ones(times.shape, dtype=bool)  # (S, L) True=valid
    sequences = []
    for i in range(times.shape[0]):
        n = int(valid[i].sum())
        if not valid[i, :n].all():
            raise DatasetFormatError(path, f"sequence {i}: mask has gaps (valid events must come first)")
        gaps = _as_float_sequence(path, times[i, :n], f"'times' row {i}")  # (n,) τ
        if (gaps < 0).any():
            j = int(np.flatnonzero(gaps < 0)[0])
            raise DatasetFormatError(path, f"sequence {i}: negative inter-event time {gaps[j]} at event {j}")
        seq_times = np.cumsum(gaps)  # (n,) absolute times
        if "marks" in arrays:
            one_based = _as_int_sequence(path, arrays["marks"][i, :n], f"'marks' row {i}")
            if (one_based == 0).any():
                raise DatasetFormatError(path, f"sequence {i}: mark 0 at a valid event (Meta-TPP marks are "
                                               "1-based; 0 is padding)")
            seq_marks = one_based - 1
        else:
            seq_marks = np.zeros(n, dtype=np.int64)
        sequences.append({"times": seq_times, "marks": seq_marks})
    return sequences, None if "marks" in arrays else 1


def _ifl_tpp(path: Path) -> tuple[list[dict[str, np.ndarray]], int | None]:
    arrays = read_npz(path)
    if "arrival_times" not in arrays:
        raise DatasetFormatError(path, f"no 'arrival_times' array (ifl-tpp layout); arrays are {sorted(arrays)}")
    for key in ("arrival_times", "marks"):
        if key in arrays and arrays[key].ndim not in (1, 2):
            raise DatasetFormatError(path, f"{key!r} has shape {arrays[key].shape}, expected one entry per "
                                           "sequence (an object array, or (sequences, length))")
    all_times = list(arrays["arrival_times"])
    all_marks = list(arrays["marks"]) if "marks" in arrays else None
    if all_marks is not None and len(all_marks) != len(all_times):
        raise DatasetFormatError(path, f"{len(all_times)} time sequences but {len(all_marks)} mark sequences")
    sequences = []
    for i, raw_times in enumerate(all_times):
        seq_times = _as_float_sequence(path, raw_times, f"'arrival_times'[{i}]")
        seq_marks = (np.zeros(len(seq_times), dtype=np.int64) if all_marks is None
                     else _as_int_sequence(path, all_marks[i], f"'marks'[{i}]"))
        sequences.append({"times": seq_times, "marks": seq_marks})
    return sequences, None if all_marks is not None else 1


def _rmtpp(path: Path) -> tuple[list[dict[str, np.ndarray]], int | None]:
    if "time" not in path.name:
        raise DatasetFormatError(path, "RMTPP times file name must contain 'time' (its marks file: 'event')")
    marks_path = path.with_name(path.name.replace("time", "event", 1))
    if not marks_path.is_file():
        raise DatasetFormatError(path, f"RMTPP marks file {marks_path} is missing")
    time_lines = _text_lines(path)
    mark_lines = _text_lines(marks_path)
    if len(time_lines) != len(mark_lines):
        raise DatasetFormatError(path, f"{len(time_lines)} lines but {marks_path.name} has {len(mark_lines)}")
    sequences = []
    for i, (t_line, m_line) in enumerate(zip(time_lines, mark_lines)):
        seq_times = _as_float_sequence(path, t_line.split(), f"line {i + 1}")
        seq_marks = _as_int_sequence(marks_path, m_line.split(), f"line {i + 1}") - 1  # 1-based types
        if len(seq_marks) != len(seq_times):
            raise DatasetFormatError(path, f"line {i + 1}: {len(seq_times)} times but {len(seq_marks)} marks "
                                           f"in {marks_path.name}")
        sequences.append({"times": seq_times, "marks": seq_marks})
    return sequences, None


def _text_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetFormatError(path, f"not UTF-8 text ({error})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _thp(path: Path) -> tuple[list[dict[str, np.ndarray]], int | None]:
    with path.open("rb") as handle:
        content = restricted_load(handle, path)
    if not isinstance(content, dict) or "dim_process" not in content:
        raise DatasetFormatError(path, "expected a dict with 'dim_process' and a train/dev/test split")
    num_marks = content["dim_process"]
    if isinstance(num_marks, (bool, np.bool_)) or not isinstance(num_marks, (int, np.integer)) or num_marks < 1:
        raise DatasetFormatError(path, f"'dim_process' (the number of event types) must be a positive integer, "
                                       f"got {num_marks!r}")
    splits = {k: content[k] for k in ("train", "dev", "test") if k in content}
    for key, value in splits.items():
        if not isinstance(value, (list, tuple)):
            raise DatasetFormatError(path, f"split {key!r} must be a list of sequences, got {type(value).__name__}")
    filled = [k for k, value in splits.items() if value]
    split = path.stem if path.stem in filled else (filled[0] if len(filled) == 1 else None)
    if split is None:
        raise DatasetFormatError(path, f"cannot tell which split to read: non-empty splits {filled}")
    sequences = []
    for i, events in enumerate(content[split]):
        try:
            seq_times = np.array([e["time_since_start"] for e in events], dtype=np.float64)
            seq_marks = np.array([e["type_event"] for e in events], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetFormatError(path, f"{split} sequence {i}: bad event record ({error!r})") from None
        sequences.append({"times": seq_times, "marks": seq_marks})
    return sequences, int(num_marks)
