"""EventSequences: the task's in-memory form of a TPP dataset, and the split protocols.

Every sequence is (absolute times (N,) float64 strictly increasing and >= 0, marks (N,) int64 in [0, num_marks)),
starting from time 0. Known-truth datasets also carry the generating process's exact per-event log-densities.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class EventSequences:
    times: list            # [(N_s,) float64 absolute times]
    marks: list            # [(N_s,) int64 marks, 0-based]
    num_marks: int
    source: str            # where the sequences came from (file path or generator), for messages
    true_time_ll: list | None = None   # [(N_s,)] log p*(τ_i | H_{i−1}) of the generating process
    true_mark_ll: list | None = None   # [(N_s,)] log p*(m_i | t_i, H_{i−1})
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.times) != len(self.marks):
            raise ValueError(f"{self.source}: {len(self.times)} time sequences but {len(self.marks)} mark sequences")

    def __len__(self) -> int:
        return len(self.times)

    def subset(self, start: int, stop: int) -> "EventSequences":
        pick = (lambda xs: None if xs is None else xs[start:stop])
        return EventSequences(self.times[start:stop], self.marks[start:stop], self.num_marks,
                              f"{self.source}[{start}:{stop}]", pick(self.true_time_ll), pick(self.true_mark_ll),
                              dict(self.info))

    def inter_event_times(self) -> list:
        """τ_i = t_i − t_{i−1} with t_0 = 0 (the window start) → [(N_s,)]."""
        return [np.diff(t, prepend=0.0) for t in self.times]

    def num_events(self) -> int:
        return int(sum(len(t) for t in self.times))


def split_by_order(sequences: EventSequences, *, train: float | int, val: float | int) -> dict:
    """Meta-TPP's split by sequence order → {train, val, test}: fractions (first ⌊n·train⌋ sequences, next
    ⌊n·val⌋, the rest) or, as for its so_fold1, counts (ints: first `train`, next `val`, the rest)."""
    n = len(sequences)
    if isinstance(train, int) and isinstance(val, int) and train >= 1 and val >= 1:
        n_train, n_val = train, val
    elif 0 < train < 1 and 0 < val < 1 and train + val < 1:
        n_train, n_val = int(n * train), int(n * val)
    else:
        raise ValueError(f"split: train/val must be fractions in (0, 1) summing below 1, or positive counts; "
                         f"got train={train!r}, val={val!r}")
    if n_train == 0 or n_val == 0 or n - n_train - n_val <= 0:
        raise ValueError(f"{sequences.source}: {n} sequences are too few for a train={train}/val={val} split")
    return {"train": sequences.subset(0, n_train), "val": sequences.subset(n_train, n_train + n_val),
            "test": sequences.subset(n_train + n_val, n)}


def split_train_val(train: EventSequences, test: EventSequences, *, val_fraction: float) -> dict:
    """Given train/test files (RMTPP folds), the last ⌊n·val_fraction⌋ training sequences become validation.

    For MIMIC fold 1 (585 training sequences, fraction 0.1) this reproduces THP's train 527 / dev 58 split.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(train)
    n_val = int(n * val_fraction)
    if n_val == 0 or n_val == n:
        raise ValueError(f"{train.source}: {n} sequences are too few for a validation fraction of {val_fraction}")
    return {"train": train.subset(0, n - n_val), "val": train.subset(n - n_val, n), "test": test}
