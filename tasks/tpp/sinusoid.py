"""Sin (regenerated): an inhomogeneous Poisson process with a sinusoidal intensity, one mark.

    λ(t) = b + a · sin(2π t / P + φ),   0 ≤ a ≤ b   (so λ ≥ 0, bounded by b + a)

Meta-TPP's `sin.npz` is not available, so this documented process stands in for it (results are labelled
"Sin (regenerated)"). Sampled by thinning (Lewis & Shedler 1979) with the constant bound b + a. Being Poisson, the
next-event density given the history depends only on the previous time:
    log p(τ_i | H_{i−1}) = log λ(t_i) − Λ(t_{i−1}, t_i),
    Λ(s, t) = b (t − s) − a P / (2π) · [cos(2π t / P + φ) − cos(2π s / P + φ)].
"""
import math
from dataclasses import dataclass

import numpy as np

from .process import EventProcess


@dataclass(frozen=True)
class SinusoidalPoisson(EventProcess):
    """base rate b, amplitude a, period P, phase φ (the same for every sequence: the truth is attainable)."""
    base_rate: float
    amplitude: float
    period: float
    phase: float = 0.0

    def __post_init__(self):
        if not 0 <= self.amplitude <= self.base_rate or self.base_rate <= 0:
            raise ValueError(f"SinusoidalPoisson: need 0 <= amplitude <= base_rate and base_rate > 0, got "
                             f"amplitude={self.amplitude}, base_rate={self.base_rate}")
        if not self.period > 0:
            raise ValueError(f"SinusoidalPoisson: period must be > 0, got {self.period}")

    @property
    def num_marks(self) -> int:
        return 1

    def rate(self, t: np.ndarray) -> np.ndarray:
        return self.base_rate + self.amplitude * np.sin(2 * math.pi * t / self.period + self.phase)

    def compensator(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        w = 2 * math.pi / self.period
        return (self.base_rate * (t - s)
                - self.amplitude / w * (np.cos(w * t + self.phase) - np.cos(w * s + self.phase)))

    def sample(self, rng: np.random.Generator, end_time: float):
        bound = self.base_rate + self.amplitude
        count = rng.poisson(bound * end_time)
        candidates = np.sort(rng.uniform(0.0, end_time, size=count))
        keep = rng.uniform(0.0, bound, size=count) <= self.rate(candidates)
        times = candidates[keep]
        return times.astype(np.float64), np.zeros(len(times), dtype=np.int64)

    def next_event_log_densities(self, times: np.ndarray, marks: np.ndarray):
        previous = np.concatenate([[0.0], times[:-1]])
        time_ll = np.log(self.rate(times)) - self.compensator(previous, times)
        return time_ll, np.zeros(len(times))
