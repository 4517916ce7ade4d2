"""The classifier around the shared backbone: a causal input embedding and a head over the valid positions.

    x (B, N, C) → SeriesEmbedding → (B, N, D) → aaren.Backbone (causal) → h (B, N, D) → ClassificationHead → (B, K)

TSLib's Transformer classifier (models/Transformer.py) embeds with a circular Conv1d over time (it looks at t+1
and wraps around, so it is not causal) plus sinusoidal positions; ours is a per-step linear map plus the same
sinusoidal positions, so the output at step t depends on x_{≤t} only and can be computed online.

Pooling (ClassificationHead), both over valid positions only, after TSLib's GELU and dropout:
- "flatten" (TSLib's head, the default): zero the padded steps, flatten (max_length · D) and project to K logits.
  It is a sum over positions, logits = b + Σ_{t valid} W_t z_t, so online it is a running sum (constant size) and
  the prediction after step t is exactly the batch prediction for the prefix x_{≤t} as a padded series.
- "last": project the output at the last valid step (for a causal backbone, the summary of the whole series).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.base.positional import sinusoid

POOLINGS = ("flatten", "last")


class SeriesEmbedding(nn.Module):
    """x_t (C) → W x_t + PE(t), then dropout. Per step, so causal and streamable."""

    def __init__(self, *, n_channels: int, d_model: int, dropout: float):
        super().__init__()
        self.value = nn.Linear(n_channels, d_model, bias=False)  # TSLib's token embedding has no bias either
        self.dropout = nn.Dropout(dropout)
        self.d_model = d_model

    def forward(self, x: Tensor) -> Tensor:
        """x (B, N, C) → (B, N, D)"""
        positions = torch.arange(x.shape[1], device=x.device)
        return self.dropout(self.value(x) + sinusoid(positions, self.d_model).to(x.dtype))

    def step(self, x_t: Tensor, position: Tensor) -> Tensor:
        """x_t (B, C), position () int → (B, D)"""
        return self.dropout(self.value(x_t) + sinusoid(position, self.d_model).to(x_t.dtype))


def check_right_padded(mask: Tensor) -> Tensor:
    """mask (B, N) bool True=valid, each row a non-empty prefix → lengths (B,)."""
    lengths = mask.sum(dim=1)
    prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if (lengths < 1).any() or not torch.equal(prefix, mask):
        raise ValueError("padding_mask must mark a non-empty prefix of each row valid (right padding)")
    return lengths


class ClassificationHead(nn.Module):
    """h (B, N, D) + mask (B, N) → logits (B, K): GELU → dropout → pool the valid positions → linear."""

    def __init__(self, *, d_model: int, n_classes: int, pooling: str, max_length: int, dropout: float):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        self.pooling, self.max_length, self.d_model = pooling, max_length, d_model
        self.dropout = nn.Dropout(dropout)
        in_features = max_length * d_model if pooling == "flatten" else d_model
        self.proj = nn.Linear(in_features, n_classes)

    def features(self, h: Tensor) -> Tensor:
        return self.dropout(F.gelu(h))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        batch, n, _ = h.shape
        lengths = check_right_padded(mask)
        z = self.features(h)  # (B, N, D)
        if self.pooling == "last":
            return self.proj(z[torch.arange(batch, device=h.device), lengths - 1])  # (B, K)
        if n > self.max_length:
            raise ValueError(f"flatten pooling was built for max_length {self.max_length}; got {n} steps")
        z = F.pad(z * mask[..., None], (0, 0, 0, self.max_length - n))  # (B, max_length, D), padded steps = 0
        return self.proj(z.flatten(1))

    def position_weight(self, position: int) -> Tensor:
        """Flatten pooling: the (K, D) block of the projection that reads step `position`."""
        return self.proj.weight.view(-1, self.max_length, self.d_model)[:, position]
