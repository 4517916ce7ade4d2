"""Mixture of log-normals for the next inter-event time τ (Shchur et al. 2020, "Intensity-Free Learning of TPPs").

    p(τ | h) = Σ_k w_k · LogNormal(τ; μ_k, σ_k),   (w, μ, σ) = decoder(h)
    log p(τ)  = logsumexp_k [log w_k + log N(log τ; μ_k, σ_k)] − log τ
    log S(τ)  = logsumexp_k [log w_k + log Φ(−(log τ − μ_k) / σ_k)]      (survival, 1 − CDF)
    E[τ]      = Σ_k w_k exp(μ_k + σ_k² / 2)                           (the point prediction used for RMSE)

The decoder is Meta-TPP's: an MLP D → D (tanh) → 3K, weights by softmax, σ by softplus (no log-time
standardisation; tasks rescale time before the model instead).
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class LogNormalMixture:
    """Parameters (..., K): log_weights (normalised), loc μ, scale σ > 0. Methods take τ (...) > 0."""

    def __init__(self, log_weights: Tensor, loc: Tensor, scale: Tensor):
        self.log_weights, self.loc, self.scale = log_weights, loc, scale

    def _standardised(self, tau: Tensor) -> Tensor:
        return (torch.log(tau).unsqueeze(-1) - self.loc) / self.scale           # (..., K)

    def log_prob(self, tau: Tensor) -> Tensor:
        z = self._standardised(tau)
        log_normal = -0.5 * z ** 2 - torch.log(self.scale) - LOG_SQRT_2PI      # density of log τ, (..., K)
        return torch.logsumexp(self.log_weights + log_normal, dim=-1) - torch.log(tau)

    def log_survival(self, tau: Tensor) -> Tensor:
        return torch.logsumexp(self.log_weights + torch.special.log_ndtr(-self._standardised(tau)), dim=-1)

    def mean(self) -> Tensor:
        return torch.exp(torch.logsumexp(self.log_weights + self.loc + 0.5 * self.scale ** 2, dim=-1))

    def cdf(self, tau: Tensor) -> Tensor:
        return (self.log_weights.exp() * torch.special.ndtr(self._standardised(tau))).sum(-1)


class LogNormalMixtureHead(nn.Module):
    """h (..., D) → LogNormalMixture with K components (Meta-TPP's decoder: Linear, tanh, Linear)."""

    def __init__(self, *, d_model: int, n_components: int):
        super().__init__()
        if n_components < 1:
            raise ValueError(f"LogNormalMixtureHead: n_components must be >= 1, got {n_components}")
        self.n_components = n_components
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, 3 * n_components))

    def forward(self, h: Tensor) -> LogNormalMixture:
        weight_logits, loc, scale_raw = self.mlp(h).chunk(3, dim=-1)            # each (..., K)
        return LogNormalMixture(F.log_softmax(weight_logits, dim=-1), loc, F.softplus(scale_raw))
