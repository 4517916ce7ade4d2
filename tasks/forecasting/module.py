"""ForecastingModule: the paper's "Transformer with normalized input" for long-horizon forecasting, with the
shared causal backbone (Aaren or Transformer — nothing else differs).

    x (B, N, C) ──per-window normalisation──► z (B, N, C)         (normalization.py; stats μ, σ (B, N, C))
    z, calendar marks, positions ──embedding──► e (B, N, D)         (model.py)
    e ──aaren.Backbone (causal)──► h (B, N, D)
    h[:, -1] ──Linear(D, H·C)──► ŷ (B, H, C) · σ_N + μ_N           (the forecast, restored to the input scale)

How the causal backbone produces the horizon: from its LAST position only. The output at the last token has
attended to the whole window (for Aaren it is the learned query's attention over all N tokens, §3.3, the
many-to-one output), and a linear head maps it to all H × C future values at once (direct multi-step, no
decoder, no autoregression). Because the head reads one position, the same head gives a forecast after every
observation when streaming (online.py): forecast_t = head(h_t), with the Aaren state constant in size.

Loss: MSE on the train-scaled data (TSLib). Logged: train/loss, val/loss (MSE over every validation window),
test/mse and test/mae over every test window (torchmetrics sums, exact over the set, DDP-safe).
"""
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from tasks.base.module import TaskModule

from .model import ForecastEmbedding
from .normalization import INPUT_NORMS, window_stats
from .time_features import n_time_features


class ForecastingModule(TaskModule):
    """Keyword-only: backbone, optim (TaskModule); channels C; time_feature_freq (its F calendar features);
    seq_len N, the window length it is trained on (kept in the checkpoint's hyperparameters; forward and streaming
    accept any length); horizon H; input_norm "prefix" | "window" and norm_eps (normalization.py)."""

    def __init__(self, *, backbone: Mapping, optim: Mapping, channels: int, time_feature_freq: str, seq_len: int,
                 horizon: int, input_norm: str = "prefix", norm_eps: float = 1e-5):
        super().__init__(backbone=backbone, optim=optim)
        self.backbone = self.build_backbone()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"ForecastingModule: input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        for name, value in (("channels", channels), ("seq_len", seq_len), ("horizon", horizon)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ForecastingModule: {name} must be a positive int, got {value!r}")
        self.save_hyperparameters()
        self.channels, self.seq_len, self.horizon = channels, seq_len, horizon
        self.input_norm, self.norm_eps = input_norm, norm_eps
        d_model = self.backbone_config["d_model"]
        self.embedding = ForecastEmbedding(n_channels=channels, d_model=d_model,
                                           n_time_features=n_time_features(time_feature_freq),
                                           dropout=self.backbone_config.get("dropout", 0.1))
        self.head = nn.Linear(d_model, horizon * channels)
        self.val_mse = MeanSquaredError()
        self.test_mse, self.test_mae = MeanSquaredError(), MeanAbsoluteError()

    def forecast_from(self, h: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """h (B, D), mean/std (B, C) of the window → forecast (B, H, C) on the input's scale."""
        y = self.head(h).unflatten(-1, (self.horizon, self.channels))  # (B, H, C)
        return y * std.unsqueeze(1) + mean.unsqueeze(1)

    def forward(self, x: Tensor, x_mark: Tensor) -> Tensor:
        """x (B, N, C), x_mark (B, N, F) → forecast (B, H, C)."""
        if x.dim() != 3 or x.shape[-1] != self.channels:
            raise ValueError(f"ForecastingModule: x must be (B, N, {self.channels}), got {tuple(x.shape)}")
        mean, std = window_stats(x, mode=self.input_norm, eps=self.norm_eps)  # (B, N, C) each
        positions = torch.arange(x.shape[1], device=x.device)
        h = self.backbone(self.embedding((x - mean) / std, x_mark, positions))  # (B, N, D)
        return self.forecast_from(h[:, -1], mean[:, -1], std[:, -1])

    def training_step(self, batch, batch_idx):
        x, x_mark, y = batch
        loss = F.mse_loss(self(x, x_mark), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        x, x_mark, y = batch
        self.val_mse(self(x, x_mark), y)
        self.log("val/loss", self.val_mse, prog_bar=True, on_epoch=True, batch_size=x.shape[0])

    def test_step(self, batch, batch_idx):
        x, x_mark, y = batch
        forecast = self(x, x_mark)
        self.test_mse(forecast, y)
        self.test_mae(forecast, y)
        self.log_test_metrics({"mse": self.test_mse, "mae": self.test_mae}, on_epoch=True, batch_size=x.shape[0])
