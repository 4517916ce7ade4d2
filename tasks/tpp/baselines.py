"""Sanity baselines for event forecasting: model-free predictors scored on a split's target events.

Targets are the model's (every event but the first of its sequence) and every number goes through TPPMetrics,
so a baseline's `accuracy`, `nll_mark`, `rmse`, `rmse_metatpp` mean exactly what a model's do:
- repeat_previous_mark: predict m_{i+1} = m_i → accuracy.
- train_mark_frequencies: p(m) = (n_m + 1) / (N + K), the add-one smoothed frequencies of the training split's
  target marks (every mark gets a finite NLL) → nll_mark, accuracy (always the most frequent training mark).
- uniform_marks: p(m) = 1 / K → nll_mark = log K (what a mark head that learned nothing scores).
- train_mean_interevent: E[τ] = the training split's mean target τ for every event → rmse, rmse_metatpp.
- true_process (known-truth sets only): the generating process's exact log-densities → nll, nll_time, nll_mark.
"""
import math

import numpy as np
import torch

from .data import SequenceDataset, collate, mean_target_interval
from .metrics import TPPMetrics
from .sequences import EventSequences


def target_batch(sequences: EventSequences) -> dict:
    """Every sequence of a split as one padded batch (dataset unit), cut to the targets: (S, N − 1) each."""
    items = SequenceDataset(sequences, scale=1.0)
    batch = collate([items[i] for i in range(len(items))], scale=1.0)
    targets = {key: value[:, 1:] for key, value in batch.items() if key != "scale"}
    targets["previous_mark"] = batch["marks"][:, :-1]
    return targets


def train_mark_frequencies(train: EventSequences) -> np.ndarray:
    """(K,) add-one smoothed frequencies of the training target marks (the first event of a sequence is input)."""
    counts = np.bincount(np.concatenate([m[1:] for m in train.marks]), minlength=train.num_marks)
    return (counts + 1.0) / (counts.sum() + train.num_marks)


def _score(targets: dict, num_marks: int, *, mean=None, mark_log_probs=None, predicted_mark=None,
           truth: bool = False) -> dict:
    """TPPMetrics on constant or rule-based predictions; unused terms are zeros (their metrics are dropped)."""
    zeros = torch.zeros_like(targets["tau"])
    metrics = TPPMetrics(num_marks=num_marks)
    marks = targets["marks"]
    metrics.update(
        time_ll=zeros, log_survival=zeros, tau=targets["tau"], mark=marks, target_mask=targets["mask"],
        mean=zeros if mean is None else torch.full_like(zeros, mean),
        mark_ll=zeros if mark_log_probs is None else mark_log_probs[marks],
        predicted_mark=torch.zeros_like(marks) if predicted_mark is None else predicted_mark,
        **({"true_time_ll": targets["true_time_ll"], "true_mark_ll": targets["true_mark_ll"]} if truth else {}))
    return metrics.compute()


def sanity_baselines(splits: dict, *, split: str = "test") -> dict:
    """{train, val, test: EventSequences} → {baseline name: {metric: float}} on `split`'s target events."""
    train, evaluated = splits["train"], splits[split]
    k = evaluated.num_marks
    targets = target_batch(evaluated)
    out = {}
    if k > 1:
        repeat = _score(targets, k, predicted_mark=targets["previous_mark"])
        out["repeat_previous_mark"] = {"accuracy": repeat["accuracy"]}
        log_freq = torch.as_tensor(np.log(train_mark_frequencies(train)), dtype=torch.float32)
        freq = _score(targets, k, mark_log_probs=log_freq,
                      predicted_mark=torch.full_like(targets["marks"], int(log_freq.argmax())))
        out["train_mark_frequencies"] = {"nll_mark": freq["nll_mark"], "accuracy": freq["accuracy"]}
        out["uniform_marks"] = {"nll_mark": math.log(k)}
    mean = _score(targets, k, mean=mean_target_interval(train))
    out["train_mean_interevent"] = {"rmse": mean["rmse"], "rmse_metatpp": mean["rmse_metatpp"]}
    if evaluated.true_time_ll is not None:
        truth = _score(targets, k, truth=True)
        out["true_process"] = {"nll": truth["true_nll"], "nll_time": truth["true_nll_time"],
                               **({"nll_mark": truth["true_nll_mark"]} if k > 1 else {})}
    return out
