"""Multivariate Hawkes process with exponential kernels: known intensity, exact log-likelihood, samplers.

    λ_k(t) = μ_k + Σ_{t_j < t} α_{k, m_j} · β · exp(−β (t − t_j))          (k = 0..K−1 marks)

α_{k,j} is the expected number of mark-k children of one mark-j event (tick's `adjacency[k, j]`, kernel
`HawkesKernelExp(intensity=α, decay=β)`); one decay β is shared by every pair. Stationary iff the spectral
radius of α is < 1.

With the recursive state R_j(t) = Σ_{t_l < t, m_l = j} exp(−β (t − t_l)) the intensity is
λ(t) = μ + β α R(t), and between two events s < t (no event inside) the compensator is exact:
    Λ_k(s, t) = ∫_s^t λ_k = μ_k (t − s) + Σ_j α_{k,j} R_j(s⁺) (1 − exp(−β (t − s))).

The per-event conditional log-density of the next event given the history (used as the known truth) is
    log p(τ_i, m_i | H_{i−1}) = log λ_{m_i}(t_i) − Σ_k Λ_k(t_{i−1}, t_i)     (t_0 = 0, the window start)
split into a time part   log λ_g(t_i) − Λ_g(t_{i−1}, t_i)   (λ_g = Σ_k λ_k, the ground intensity)
and a mark part          log λ_{m_i}(t_i) − log λ_g(t_i)    (= log p(m_i | t_i, H_{i−1})).
"""
from dataclasses import dataclass

import numpy as np

from .process import EventProcess


@dataclass(frozen=True)
class ExpHawkes(EventProcess):
    """baseline μ (K,), adjacency α (K, K) with α[k, j] = effect of mark j on mark k, scalar decay β."""
    baseline: tuple
    adjacency: tuple
    decay: float

    def __post_init__(self):
        mu, alpha = self.mu, self.alpha
        if mu.ndim != 1 or mu.size < 1 or np.any(mu <= 0):
            raise ValueError(f"ExpHawkes: baseline must be a non-empty vector of positive rates, got {self.baseline}")
        if alpha.shape != (mu.size, mu.size) or np.any(alpha < 0):
            raise ValueError(f"ExpHawkes: adjacency must be a non-negative {mu.size}x{mu.size} matrix, "
                             f"got {self.adjacency}")
        if not self.decay > 0:
            raise ValueError(f"ExpHawkes: decay must be > 0, got {self.decay}")
        if np.max(np.abs(np.linalg.eigvals(alpha))) >= 1:
            raise ValueError(f"ExpHawkes: spectral radius of adjacency must be < 1 (stationarity), got "
                             f"{np.max(np.abs(np.linalg.eigvals(alpha))):.3f}")

    @property
    def mu(self) -> np.ndarray:
        return np.asarray(self.baseline, dtype=np.float64)

    @property
    def alpha(self) -> np.ndarray:
        return np.asarray(self.adjacency, dtype=np.float64)

    @property
    def num_marks(self) -> int:
        return self.mu.size

    def stationary_rate(self) -> np.ndarray:
        """Mean event rate per mark in the stationary regime: (I − α)⁻¹ μ."""
        return np.linalg.solve(np.eye(self.num_marks) - self.alpha, self.mu)

    # ---- exact intensity and compensator -------------------------------------------------------------
    def intensity_at_events(self, times: np.ndarray, marks: np.ndarray):
        """Left-limit intensities at each event and the compensator of each inter-event gap.

        times (N,) increasing, marks (N,) in [0, K) → (lam (N, K) = λ(t_i⁻), comp (N, K) = Λ(t_{i−1}, t_i) with
        t_0 = 0, state (K,) = R(t_N⁺)).
        """
        mu, alpha, beta = self.mu, self.alpha, self.decay
        lam = np.empty((len(times), self.num_marks))
        comp = np.empty((len(times), self.num_marks))
        state = np.zeros(self.num_marks)  # R(t⁺) just after the previous event
        prev = 0.0
        for i, (t, m) in enumerate(zip(times, marks)):
            gap = t - prev
            comp[i] = mu * gap + alpha @ state * (1.0 - np.exp(-beta * gap))
            state = state * np.exp(-beta * gap)
            lam[i] = mu + beta * alpha @ state
            state[m] += 1.0
            prev = t
        return lam, comp, state

    def intensity(self, grid: np.ndarray, times: np.ndarray, marks: np.ndarray) -> np.ndarray:
        """Direct (non-recursive) λ(t) on a grid: grid (G,) → (G, K). The naive reference of the recursion."""
        lag = grid[:, None] - times[None, :]                                    # (G, N)
        kernel = np.where(lag > 0, self.decay * np.exp(-self.decay * np.clip(lag, 0, None)), 0.0)
        onehot = np.eye(self.num_marks)[marks]                                  # (N, K)
        return self.mu[None, :] + (kernel @ onehot) @ self.alpha.T

    def next_event_log_densities(self, times: np.ndarray, marks: np.ndarray):
        """Exact log p(τ_i | H_{i−1}) (time part) and log p(m_i | t_i, H_{i−1}) (mark part) for every event.

        times (N,), marks (N,) → (time_ll (N,), mark_ll (N,)). Entry 0 conditions on the empty history from 0.
        """
        lam, comp, _ = self.intensity_at_events(times, marks)
        ground = lam.sum(axis=1)
        time_ll = np.log(ground) - comp.sum(axis=1)
        mark_ll = np.log(lam[np.arange(len(marks)), marks]) - np.log(ground)
        return time_ll, mark_ll

    def log_likelihood(self, times: np.ndarray, marks: np.ndarray, end_time: float) -> float:
        """Full log-likelihood on [0, end_time]: Σ_i log λ_{m_i}(t_i) − Σ_k Λ_k(0, end_time)."""
        lam, comp, state = self.intensity_at_events(times, marks)
        last = times[-1] if len(times) else 0.0
        tail = self.mu * (end_time - last) + self.alpha @ state * (1.0 - np.exp(-self.decay * (end_time - last)))
        return float(np.log(lam[np.arange(len(marks)), marks]).sum() - comp.sum() - tail.sum())

    # ---- samplers ------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, end_time: float):
        """Ogata's thinning on [0, end_time] → (times (N,), marks (N,)). Between events λ only decays, so the
        intensity just after the current point bounds it until the next event."""
        mu, alpha, beta = self.mu, self.alpha, self.decay
        state, t = np.zeros(self.num_marks), 0.0
        times, marks = [], []
        while True:
            bound = (mu + beta * alpha @ state).sum()
            gap = rng.exponential(1.0 / bound)
            t += gap
            if t > end_time:
                break
            state = state * np.exp(-beta * gap)
            lam = mu + beta * alpha @ state
            if rng.uniform() * bound <= lam.sum():
                m = int(rng.choice(self.num_marks, p=lam / lam.sum()))
                times.append(t)
                marks.append(m)
                state[m] += 1.0
        return np.asarray(times, dtype=np.float64), np.asarray(marks, dtype=np.int64)

    def sample_tick(self, seed: int, end_time: float):
        """The same process simulated by tick (`SimuHawkesExpKernels`) → (times (N,), marks (N,))."""
        from tick.hawkes import SimuHawkesExpKernels

        simu = SimuHawkesExpKernels(adjacency=self.alpha, decays=self.decay, baseline=self.mu,
                                    end_time=end_time, seed=seed, verbose=False)
        simu.simulate()
        times = np.concatenate(simu.timestamps)
        marks = np.concatenate([np.full(len(ts), k) for k, ts in enumerate(simu.timestamps)])
        order = np.argsort(times, kind="stable")
        return times[order].astype(np.float64), marks[order].astype(np.int64)
