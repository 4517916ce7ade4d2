"""Event-forecasting metrics, accumulated over a split (sums + counts, so batching does not change them).

A "target event" is every event but the first of its sequence: position i's history (events ≤ i) predicts event
i + 1, so a sequence of N events has N − 1 targets. All times are in the dataset's own unit. Every metric is
defined by name in conf/task/tpp.yaml (`report.metrics`), which is recorded with each result (`report`).
"""
import math

import torch
from torch import Tensor

def metatpp_log_likelihood(*, time_ll: Tensor, mark_ll: Tensor, log_survival: Tensor, target_mask: Tensor) -> Tensor:
    """Meta-TPP's per-target log-likelihood (B, N − 1), 0 at padding: the last target of each sequence enters by
    its survival log S(τ) instead of its density (src/models/tpp/prob_dists.py), every target's mark by log p(m).
    Summed, it is Meta-TPP's training loss (tpp_module.py: loss = −Σ(event_ll + surv_ll)) and its NLL's numerator."""
    n_targets = target_mask.sum(-1)                                              # (B,)
    is_last = torch.arange(target_mask.shape[-1], device=target_mask.device) == (n_targets - 1).unsqueeze(-1)
    return torch.where(target_mask, torch.where(is_last, log_survival, time_ll) + mark_ll, 0.0)


class TPPMetrics:
    """Accumulate per-target terms; `compute()` → {metric name: float}."""

    def __init__(self, *, num_marks: int):
        self.num_marks = num_marks
        self.reset()

    def reset(self) -> None:
        self.sums = dict.fromkeys(("time_ll", "mark_ll", "sq_err", "seq_err_sq", "correct", "true_time_ll",
                                   "true_mark_ll", "metatpp_ll"), 0.0)
        self.counts = dict.fromkeys(("targets", "true_targets", "events"), 0)

    @torch.no_grad()
    def update(self, *, time_ll: Tensor, mark_ll: Tensor, log_survival: Tensor, mean: Tensor, tau: Tensor,
               predicted_mark: Tensor, mark: Tensor, target_mask: Tensor, true_time_ll: Tensor | None = None,
               true_mark_ll: Tensor | None = None) -> None:
        """All (B, N − 1) aligned with the targets; target_mask bool True = a real target event."""
        m = target_mask
        w = m.to(time_ll.dtype)
        error = (mean - tau) * w
        self.sums["time_ll"] += float((time_ll * w).sum())
        self.sums["mark_ll"] += float((mark_ll * w).sum())
        self.sums["sq_err"] += float((error ** 2).sum())
        self.sums["seq_err_sq"] += float((error.sum(-1) ** 2).sum())
        self.sums["correct"] += float(((predicted_mark == mark) & m).sum())
        self.counts["targets"] += int(m.sum())
        self.sums["metatpp_ll"] += float(metatpp_log_likelihood(time_ll=time_ll, mark_ll=mark_ll,
                                                                log_survival=log_survival, target_mask=m).sum())
        self.counts["events"] += int((m.sum(-1) + 1).sum())                     # every sequence has >= 1 event
        if true_time_ll is not None:
            self.sums["true_time_ll"] += float(torch.where(m, true_time_ll, 0.0).sum())
            self.sums["true_mark_ll"] += float(torch.where(m, true_mark_ll, 0.0).sum())
            self.counts["true_targets"] += int(m.sum())

    def compute(self) -> dict[str, float]:
        n = self.counts["targets"]
        if n == 0:
            raise ValueError("TPPMetrics: no target events were seen (every sequence has fewer than 2 events)")
        out = {"nll_time": -self.sums["time_ll"] / n}
        if self.num_marks > 1:
            out["nll_mark"] = -self.sums["mark_ll"] / n
            out["accuracy"] = self.sums["correct"] / n
        out["nll"] = out["nll_time"] + out.get("nll_mark", 0.0)
        out["rmse"] = math.sqrt(self.sums["sq_err"] / n)
        out["rmse_metatpp"] = math.sqrt(self.sums["seq_err_sq"] / n)
        out["nll_metatpp"] = -self.sums["metatpp_ll"] / self.counts["events"]
        if self.counts["true_targets"]:
            out["true_nll_time"] = -self.sums["true_time_ll"] / self.counts["true_targets"]
            if self.num_marks > 1:
                out["true_nll_mark"] = -self.sums["true_mark_ll"] / self.counts["true_targets"]
            out["true_nll"] = out["true_nll_time"] + out.get("true_nll_mark", 0.0)
        return out
