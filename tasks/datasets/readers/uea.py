"""Reader for the UEA/UCR `.ts` format (the 10 UEA multivariate classification sets).

A `.ts` file is a header of `@tag value` lines, then `@data`, then one case per line: the C dimensions separated
by `:`, each a comma-separated series, the class label last. Parsing is delegated to sktime's
`load_from_tsfile_to_dataframe`; this module checks what sktime does not (header vs. data: dimension count,
equal length, declared labels, missing values) and wraps every failure in a DatasetFormatError naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetFormatError
from ._common import require_file


@dataclass(frozen=True)
class LabelledSeries:
    """The cases of one `.ts` file (one split)."""

    path: Path
    problem_name: str
    series: list[np.ndarray]  # n arrays (T_i, C) float32; T_i may vary (e.g. JapaneseVowels, SpokenArabicDigits)
    labels: np.ndarray  # (n,) str, each one of class_labels
    class_labels: tuple[str, ...]  # as declared by @classLabel (fixes the label -> index map across splits)


def read_ts(path: Path | str) -> LabelledSeries:
    """Read and validate one `.ts` file; see LabelledSeries for the output."""
    path = require_file(path)
    header = _read_header(path)
    class_line = header.get("classlabel", "").split()
    if not class_line or class_line[0].lower() != "true" or len(class_line) < 2:
        raise DatasetFormatError(path, "header has no '@classLabel true <labels...>' line")
    class_labels = tuple(class_line[1:])

    from sktime.datasets import load_from_tsfile_to_dataframe  # deferred: importing sktime takes ~1 s

    try:
        frame, labels = load_from_tsfile_to_dataframe(str(path), replace_missing_vals_with="NaN")
    except Exception as error:  # sktime raises OSError/TypeError/ValueError/IndexError for malformed files
        raise DatasetFormatError(path, f"malformed .ts data ({type(error).__name__}: {error})") from None

    n_dims = frame.shape[1]
    declared_dims = 1 if header.get("univariate", "").lower() == "true" else header.get("dimensions")
    if declared_dims is not None and int(declared_dims) != n_dims:
        raise DatasetFormatError(path, f"header declares {declared_dims} dimensions, data has {n_dims}")

    series = []
    for i in range(frame.shape[0]):
        dims = [np.asarray(frame.iat[i, j], dtype=np.float64) for j in range(n_dims)]
        lengths = {len(d) for d in dims}
        if len(lengths) != 1:
            raise DatasetFormatError(path, f"case {i}: dimensions have different lengths {sorted(lengths)}")
        if lengths == {0}:
            raise DatasetFormatError(path, f"case {i}: empty series")
        series.append(np.stack(dims, axis=-1).astype(np.float32))  # (T_i, C)

    _check_lengths(path, header, series)
    if header.get("missing", "false").lower() == "false":
        for i, case in enumerate(series):
            if not np.isfinite(case).all():
                raise DatasetFormatError(path, f"case {i}: missing/non-finite values but header says @missing false")
    labels = np.asarray(labels, dtype=str)
    unknown = sorted(set(labels.tolist()) - set(class_labels))
    if unknown:
        raise DatasetFormatError(path, f"labels {unknown} are not declared in @classLabel {list(class_labels)}")
    return LabelledSeries(path=path, problem_name=header.get("problemname", path.stem), series=series,
                          labels=labels, class_labels=class_labels)


def _read_header(path: Path) -> dict[str, str]:
    """The `@tag value` lines before `@data`, tags lower-cased; '#' comment lines are skipped."""
    header: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if not line.startswith("@"):
                    raise DatasetFormatError(path, f"expected a '@tag' header line before @data, got {line[:40]!r}")
                tag, _, value = line[1:].partition(" ")
                if tag.lower() == "data":
                    return header
                header[tag.lower()] = value.strip()
    except UnicodeDecodeError as error:
        raise DatasetFormatError(path, f"not UTF-8 text ({error})") from None
    raise DatasetFormatError(path, "no '@data' line: header incomplete or file truncated")


def _check_lengths(path: Path, header: dict[str, str], series: list[np.ndarray]) -> None:
    if header.get("equallength", "").lower() != "true":
        return
    lengths = sorted({case.shape[0] for case in series})
    if len(lengths) > 1:
        raise DatasetFormatError(path, f"header says @equalLength true but lengths vary: {lengths[:5]}...")
    declared = header.get("serieslength")
    if declared is not None and lengths and int(declared) != lengths[0]:
        raise DatasetFormatError(path, f"header declares @seriesLength {declared}, data has length {lengths[0]}")
