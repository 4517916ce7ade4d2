"""The forecaster's network around the backbone (the task's `model.py`): its token embedding, value + temporal +
positional, then dropout (TSLib `DataEmbedding`, embed=timeF), made causal so the backbone's streaming `step` can
consume one observation at a time.

- value: a pointwise Linear(C, D) without bias. TSLib's TokenEmbedding is a circular Conv1d of kernel 3: it mixes
  in the next observation and wraps the window's last observation onto its first, so it is not causal.
- temporal: Linear(F, D) without bias of the calendar features (TSLib `TimeFeatureEmbedding`).
- positional: the fixed sinusoid of the token's index in the window (Vaswani et al. 2017), for any index.
"""
from torch import Tensor, nn

from tasks.base.positional import sinusoid


class ForecastEmbedding(nn.Module):
    """forward(z (B, N, C), marks (B, N, F), positions (N,) long) → (B, N, D)."""

    def __init__(self, *, n_channels: int, n_time_features: int, d_model: int, dropout: float):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"ForecastEmbedding: d_model must be even for the sinusoid, got {d_model}")
        self.d_model = d_model
        self.value = nn.Linear(n_channels, d_model, bias=False)
        self.temporal = nn.Linear(n_time_features, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: Tensor, marks: Tensor, positions: Tensor) -> Tensor:
        pe = sinusoid(positions, self.d_model).to(z.dtype)  # (N, D)
        return self.dropout(self.value(z) + self.temporal(marks) + pe)
