"""Per-window input normalisation — the paper's "Transformer with normalized input" (Non-stationary
Transformer, Liu et al. 2022): subtract the window mean, divide by its std, restore both on the forecast.

Statistics (the `input_norm` switch, recorded in every run's protocol):
- "prefix" (default): token k is normalised with the mean/std of the window's first k observations, i.e. the
  running statistics of "the window so far". At the last token they are the whole window's statistics, so the
  forecast (read there) is restored exactly as Non-stationary Transformer restores it. Causal, hence streamable
  with a constant-size state (`RunningStats`): the online forecaster equals the batch forward.
- "window": every token with the whole window's statistics (Non-stationary Transformer's exact recipe). A new
  observation re-normalises every past token, so this cannot stream with a constant-size state.

std = sqrt(population variance + eps), eps = 1e-5 (Non-stationary Transformer's values). Moments are accumulated
about the window's first value (a shift that avoids cancellation in E[x²] − E[x]²; it changes nothing exact).
"""
import torch
from torch import Tensor

INPUT_NORMS = ("prefix", "window")


def window_stats(x: Tensor, *, mode: str, eps: float):
    """x (B, N, C) → (mean, std), each (B, N, C): the statistics token k is normalised with."""
    if mode == "window":
        mean = x.mean(dim=1, keepdim=True)  # (B, 1, C)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + eps)
        return mean.expand_as(x), std.expand_as(x)
    if mode != "prefix":
        raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {mode!r}")
    shift = x[:, :1]  # (B, 1, C)
    d = x - shift
    count = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device).view(1, -1, 1)  # (1, N, 1)
    m1, m2 = d.cumsum(dim=1) / count, (d * d).cumsum(dim=1) / count  # E[d], E[d²] over tokens ≤ k
    var = (m2 - m1 * m1).clamp_min(0.0)
    return shift + m1, torch.sqrt(var + eps)


def shifted_moments(shift: Tensor, total: Tensor, total_sq: Tensor, count, *, eps: float):
    """(mean, std) from sums of d = x − shift and d² over `count` observations; shared by the streaming forms."""
    m1, m2 = total / count, total_sq / count
    return shift + m1, torch.sqrt((m2 - m1 * m1).clamp_min(0.0) + eps)


class RunningStats:
    """The streaming form of window_stats(mode="prefix"): per channel (first value, Σd, Σd², count).

    update(x_t (B, C)) → (mean_t, std_t), each (B, C), over every observation fed so far. Constant size.
    """

    def __init__(self, *, eps: float):
        self.eps, self.count = eps, 0
        self.shift = self.sum = self.sum_sq = None

    def update(self, x_t: Tensor):
        if self.count == 0:
            self.shift = x_t.clone()
            self.sum, self.sum_sq = torch.zeros_like(x_t), torch.zeros_like(x_t)
        d = x_t - self.shift
        self.sum, self.sum_sq, self.count = self.sum + d, self.sum_sq + d * d, self.count + 1
        return shifted_moments(self.shift, self.sum, self.sum_sq, self.count, eps=self.eps)

    @property
    def nbytes(self) -> int:
        return 0 if self.count == 0 else sum(t.numel() * t.element_size() for t in (self.shift, self.sum, self.sum_sq))
