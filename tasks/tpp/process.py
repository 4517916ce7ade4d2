"""A point process whose conditional intensity is known: the generators' common interface.

Known-truth datasets (Hawkes, Sin (regenerated)) are drawn from such a process, and the exact per-event
log-densities of the test sequences give the true process's NLL beside the models' (same events, same history).
"""
from abc import ABC, abstractmethod

import numpy as np


class EventProcess(ABC):
    """times are absolute in [0, end_time], strictly increasing; marks are 0-based ints in [0, num_marks)."""

    @property
    @abstractmethod
    def num_marks(self) -> int: ...

    @abstractmethod
    def sample(self, rng: np.random.Generator, end_time: float) -> tuple[np.ndarray, np.ndarray]:
        """One realisation on [0, end_time] → (times (N,) float64, marks (N,) int64)."""

    @abstractmethod
    def next_event_log_densities(self, times: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (log p(τ_i | H_{i−1}), log p(m_i | t_i, H_{i−1})) for every event i, the history starting at 0."""
