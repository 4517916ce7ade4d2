"""TPP data: load a dataset's splits, rescale time, and batch variable-length sequences with padding masks.

A batch (B sequences, N = the longest) holds, right-padded, with mask (B, N) bool True = valid event:
    time  (B, N) absolute times / s,  tau (B, N) inter-event times / s (τ_1 = t_1 − 0),  marks (B, N) long,
    scale (B,) the time scale s (metrics convert back to the dataset's unit),
    true_time_ll / true_mark_ll (B, N) exact log-densities of the generating process (known-truth datasets only).
s is fixed on the training split (`time_scale: mean_train_interval` = mean τ over training target events) or
given as a number; it only conditions the inputs and the decoder's starting point, every metric is in the
dataset's own time unit.
"""
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .generate import build_process, generate
from .sequences import EventSequences, split_by_order, split_train_val

TIME_SCALES = ("mean_train_interval",)


def _read(folder: Path, relative: str, fmt: str, num_marks: int) -> EventSequences:
    """read_tpp (which validates the file) + this task's extra rule: times strictly increase, since a tie is a
    zero inter-event time, where the log-normal decoder has no density."""
    from tasks.datasets.readers import DatasetFormatError, read_tpp

    data = read_tpp(folder / relative, fmt, num_marks=num_marks)
    for i, seq in enumerate(data.sequences):
        ties = np.flatnonzero(np.diff(seq["times"]) <= 0)
        if ties.size:
            j = int(ties[0]) + 1
            raise DatasetFormatError(data.path, f"sequence {i}: event times do not strictly increase at event {j} "
                                                f"({seq['times'][j - 1]} -> {seq['times'][j]}); a zero "
                                                "inter-event time has no log-normal density")
    return EventSequences([s["times"] for s in data.sequences], [s["marks"] for s in data.sequences],
                          data.num_marks, str(data.path))


def load_splits(dataset: dict, data_root: str | Path | None = None) -> dict:
    """dataset config → {train, val, test: EventSequences}.

    generator: {process, ..., n_sequences, end_time, seed, sampler} → drawn in memory, split by order.
    files: {all: <file>} + split {train, val} (fractions, or counts as Meta-TPP's so_fold1) → split by order;
    files: {train: <file>, test: <file>} + split {val_fraction} → last part of train validates (RMTPP folds).
    """
    name, split = dataset["name"], dict(dataset["split"])
    if "generator" in dataset:
        spec = dict(dataset["generator"])
        draw = {k: spec.pop(k) for k in ("n_sequences", "end_time", "seed", "sampler")}
        sequences = generate(build_process(spec), name=name, **draw)
        return split_by_order(sequences, **split)
    from tasks.datasets.registry import locate

    folder = Path(locate(name, root=data_root))
    files, fmt, num_marks = dataset["files"], dataset["format"], dataset["num_marks"]
    if "all" in files:
        return split_by_order(_read(folder, files["all"], fmt, num_marks), **split)
    train, test = (_read(folder, files[k], fmt, num_marks) for k in ("train", "test"))
    return split_train_val(train, test, **split)


def mean_target_interval(sequences: EventSequences) -> float:
    """Mean τ over target events (every event but the first of its sequence)."""
    gaps = np.concatenate([np.diff(t) for t in sequences.times])
    if gaps.size == 0 or not gaps.mean() > 0:
        raise ValueError(f"{sequences.source}: no positive inter-event time to fix the time scale")
    return float(gaps.mean())


class SequenceDataset(Dataset):
    """One item per sequence: float32 arrays in the rescaled unit, marks, optional true log-densities."""

    def __init__(self, sequences: EventSequences, scale: float):
        self.sequences, self.scale = sequences, scale
        self.taus = sequences.inter_event_times()

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict:
        seq = self.sequences
        item = {"time": seq.times[i] / self.scale, "tau": self.taus[i] / self.scale, "marks": seq.marks[i]}
        if seq.true_time_ll is not None:
            item["true_time_ll"], item["true_mark_ll"] = seq.true_time_ll[i], seq.true_mark_ll[i]
        return item


def collate(items: list[dict], scale: float) -> dict:
    """Right-pad to the longest sequence; mask (B, N) bool True = valid event."""
    lengths = torch.tensor([len(item["marks"]) for item in items])
    n, b = int(lengths.max()), len(items)
    batch = {"mask": torch.arange(n)[None, :] < lengths[:, None], "scale": torch.full((b,), scale)}
    for key in items[0]:
        dtype = torch.long if key == "marks" else torch.float32
        padded = torch.zeros(b, n, dtype=dtype)
        for row, item in enumerate(items):
            padded[row, :len(item[key])] = torch.as_tensor(item[key], dtype=dtype)
        batch[key] = padded
    return batch


class LengthBucketBatches(Sampler):
    """Batches of similar-length sequences (less padding: Wiki's lengths run 84..1936). Each pass ranks the
    sequences by length with ties broken at random, cuts consecutive batches and, when shuffling, draws their
    order from torch's global generator (seeded by the harness)."""

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool):
        self.lengths, self.batch_size, self.shuffle = torch.tensor(lengths), batch_size, shuffle

    def _batches(self) -> list:
        order = torch.randperm(len(self.lengths)) if self.shuffle else torch.arange(len(self.lengths))
        order = order[torch.argsort(self.lengths[order], stable=True)]
        return list(order.split(self.batch_size))

    def __iter__(self):
        batches = self._batches()
        picks = torch.randperm(len(batches)) if self.shuffle else range(len(batches))
        for b in picks:
            yield batches[b].tolist()

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


class TPPDataModule(L.LightningDataModule):
    def __init__(self, *, dataset: dict, data_root: str | None = None, batch_size: int, eval_batch_size: int,
                 time_scale: str | float = "mean_train_interval", bucket_by_length: bool = True,
                 num_workers: int = 0):
        super().__init__()
        if not (isinstance(time_scale, (int, float)) and time_scale > 0) and time_scale not in TIME_SCALES:
            raise ValueError(f"time_scale must be a positive number or one of {TIME_SCALES}, got {time_scale!r}")
        self.dataset, self.data_root = dict(dataset), data_root
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.time_scale_rule, self.bucket_by_length = time_scale, bucket_by_length
        self.splits, self.time_scale = None, None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.splits = load_splits(self.dataset, self.data_root)
        for split, sequences in self.splits.items():
            if sequences.num_marks != self.dataset["num_marks"]:
                raise ValueError(f"{sequences.source}: {sequences.num_marks} marks, but dataset "
                                 f"{self.dataset['name']} declares num_marks={self.dataset['num_marks']}")
        rule = self.time_scale_rule
        self.time_scale = mean_target_interval(self.splits["train"]) if isinstance(rule, str) else float(rule)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        scale, sequences = self.time_scale, self.splits[split]
        batching = {"batch_size": batch_size, "shuffle": shuffle}
        if self.bucket_by_length:
            batching = {"batch_sampler": LengthBucketBatches([len(t) for t in sequences.times], batch_size, shuffle)}
        return DataLoader(SequenceDataset(sequences, scale), num_workers=self.num_workers,
                          collate_fn=partial(collate, scale=scale), **batching)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
