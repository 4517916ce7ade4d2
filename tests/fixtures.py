"""Small generated files in every real dataset format, for tests (no download, no ../shared needed).

Each `make_*` writes a deterministic file (from `seed`) at the given path in the exact on-disk layout of the
real datasets and returns the path(s). The four TPP writers store the same sequences (`toy_tpp_sequences`),
so a test can check that every TPP reader returns identical output. `SHARED_ROOT`: the team's real copies
(../shared/datasets, same layout), absent on a user's clone; tests needing them skip.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SHARED_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def make_tslib_csv(path: Path | str, *, n_rows: int = 96, n_channels: int = 3, freq: str = "h",
                   seed: int = 0) -> Path:
    """A TSLib CSV: `date` + channels `x0..x{C-2}` + target `OT` last, hourly (or `freq`) timestamps."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    steps = np.arange(n_rows)[:, None]  # (T, 1)
    values = np.sin(2 * np.pi * steps / 24 + np.arange(n_channels)) + 0.1 * rng.standard_normal((n_rows, n_channels))
    frame = pd.DataFrame(values.round(6), columns=[f"x{j}" for j in range(n_channels - 1)] + ["OT"])
    frame.insert(0, "date", pd.date_range("2016-07-01", periods=n_rows, freq=freq).strftime("%Y-%m-%d %H:%M:%S"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_ts(path: Path | str, *, problem_name: str, series: list[np.ndarray], labels: list[str],
             class_labels: list[str]) -> Path:
    """Write cases `series` (each (T_i, C)) with `labels` as a UEA `.ts` file with a complete header."""
    lengths = {s.shape[0] for s in series}
    header = [
        f"@problemName {problem_name}", "@timeStamps false", "@missing false",
        f"@univariate {'true' if series[0].shape[1] == 1 else 'false'}", f"@dimensions {series[0].shape[1]}",
        f"@equalLength {'true' if len(lengths) == 1 else 'false'}",
        *([f"@seriesLength {lengths.pop()}"] if len(lengths) == 1 else []),
        f"@classLabel true {' '.join(class_labels)}", "@data",
    ]
    rows = [":".join(",".join(f"{v:.6f}" for v in case[:, c]) for c in range(case.shape[1])) + f":{label}"
            for case, label in zip(series, labels)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    return path


def make_ts_pair(folder: Path | str, name: str = "ToyUEA", *, n_train: int = 6, n_test: int = 4, n_dims: int = 2,
                 lengths: tuple[int, int] = (8, 8), n_classes: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """`<folder>/<name>_TRAIN.ts` and `_TEST.ts`; lengths drawn from [lengths[0], lengths[1]] (equal if same).
    Class k's series is a sine of frequency k+1 plus noise, so the classes are learnable."""
    rng = np.random.default_rng(seed)
    class_labels = [str(k + 1) for k in range(n_classes)]
    paths = []
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        ks = np.arange(n) % n_classes
        series = []
        for k in ks:
            t = np.linspace(0, 1, int(rng.integers(lengths[0], lengths[1] + 1)))[:, None]  # (T, 1)
            series.append(np.sin(2 * np.pi * (k + 1) * t + np.arange(n_dims)) + 0.05 * rng.standard_normal(
                (t.shape[0], n_dims)))
        paths.append(write_ts(Path(folder) / f"{name}_{split}.ts", problem_name=name, series=series,
                              labels=[class_labels[k] for k in ks], class_labels=class_labels))
    return paths[0], paths[1]


def make_d4rl_hdf5(path: Path | str, *, n_episodes: int = 3, episode_len: int = 10, obs_dim: int = 4,
                   act_dim: int = 2, seed: int = 0) -> Path:
    """A D4RL-style HDF5 with the five keys; the last episode ends by timeout, the others by termination."""
    import h5py

    rng = np.random.default_rng(seed)
    n = n_episodes * episode_len
    ends = np.arange(episode_len - 1, n, episode_len)
    terminals, timeouts = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    terminals[ends[:-1]] = True
    timeouts[ends[-1]] = True
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["observations"] = rng.standard_normal((n, obs_dim)).astype(np.float32)
        handle["next_observations"] = rng.standard_normal((n, obs_dim)).astype(np.float32)
        handle["actions"] = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
        handle["rewards"] = rng.standard_normal(n).astype(np.float32)
        handle["terminals"] = terminals
        handle["timeouts"] = timeouts
    return path


def toy_tpp_sequences(*, n_sequences: int = 5, num_marks: int = 3, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Sequences of 3..9 events: absolute times from the window start 0, strictly increasing (gaps ~ Exp(1)
    plus 0.001, rounded to 1e-3 so text formats store them exactly), 0-based marks in [0, num_marks)."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(n_sequences):
        n = int(rng.integers(3, 10))
        gaps = np.round(rng.exponential(1.0, n), 3) + 0.001
        sequences.append({"times": np.round(np.cumsum(gaps), 3),
                          "marks": rng.integers(0, num_marks, n).astype(np.int64)})
    return sequences


def make_meta_tpp_npz(path: Path | str, sequences: list[dict[str, np.ndarray]]) -> Path:
    """Meta-TPP layout: padded (S, L_max) inter-event `times` τ (τ_1 from 0), 1-based `marks` (0 = padding) and
    `masks` (1 = valid)."""
    max_len = max(len(s["times"]) for s in sequences)
    times = np.zeros((len(sequences), max_len))
    marks = np.zeros((len(sequences), max_len), dtype=np.int64)
    for i, s in enumerate(sequences):
        times[i, : len(s["times"])] = np.diff(s["times"], prepend=0.0)
        marks[i, : len(s["marks"])] = s["marks"] + 1
    path = _parent_made(path)
    np.savez(path, times=times, marks=marks, masks=(marks > 0).astype(np.float32))
    return path


def make_ifl_tpp_npz(path: Path | str, sequences: list[dict[str, np.ndarray]]) -> Path:
    """ifl-tpp layout: object arrays `arrival_times` and 0-based `marks`, one entry per sequence."""
    arrival_times = np.empty(len(sequences), dtype=object)
    marks = np.empty(len(sequences), dtype=object)
    for i, s in enumerate(sequences):
        arrival_times[i], marks[i] = list(s["times"]), list(s["marks"])
    path = _parent_made(path)
    np.savez(path, arrival_times=arrival_times, marks=marks)
    return path


def make_rmtpp_text(times_path: Path | str, sequences: list[dict[str, np.ndarray]]) -> Path:
    """RMTPP layout: `time*.txt` (one sequence per line) and the `event*.txt` beside it with 1-based types."""
    times_path = _parent_made(times_path)
    times_path.write_text("".join(" ".join(f"{t:g}" for t in s["times"]) + " \n" for s in sequences))
    marks_path = times_path.with_name(times_path.name.replace("time", "event", 1))
    marks_path.write_text("".join(" ".join(str(m + 1) for m in s["marks"]) + " \n" for s in sequences))
    return times_path


def make_thp_pickle(path: Path | str, sequences: list[dict[str, np.ndarray]], *, num_marks: int) -> Path:
    """THP layout: {'dim_process': K, '<split>': [[{time_since_start, time_since_last_event, type_event}]]},
    the split named by the file stem (train/dev/test); numpy scalars as in the released files."""
    path = _parent_made(path)
    split = []
    for s in sequences:
        previous = np.concatenate([[s["times"][0]], s["times"][:-1]])
        split.append([{"time_since_start": np.float32(t), "time_since_last_event": float(t - p),
                       "type_event": np.int32(m)} for t, p, m in zip(s["times"], previous, s["marks"])])
    with path.open("wb") as handle:
        pickle.dump({"dim_process": np.int32(num_marks), path.stem: split}, handle, protocol=2)
    return path


def _parent_made(path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
