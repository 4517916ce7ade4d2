"""OnlineForecaster: observations arrive one at a time; after each, a forecast of the next H steps.

The backbone advances with `step` (Aaren: a constant-size state per layer, §3.1; Transformer: a growing KV
cache), the per-window normalisation with RunningStats (the window is everything fed so far), and the embedding
uses the observation's index in the stream as its position. With input_norm="prefix" the forecast after t
observations equals ForecastingModule.forward on the window of those t observations (tests/test_forecasting_online.py).
"""
import aaren
import torch
from torch import Tensor

from .module import ForecastingModule
from .normalization import RunningStats


class OnlineForecaster:
    """update(x_t (B, C), mark_t (B, F)) → forecast (B, H, C). The module must be in eval mode."""

    def __init__(self, module: ForecastingModule, *, batch_size: int):
        if module.input_norm != "prefix":
            raise ValueError(f"OnlineForecaster: input_norm={module.input_norm!r} re-normalises every past token "
                             "when a new one arrives; streaming needs input_norm='prefix'")
        if module.training:
            raise ValueError("OnlineForecaster: call module.eval() first (dropout would make forecasts random)")
        self.module = module
        self.state = module.backbone.init_state(batch_size)
        self.stats = RunningStats(eps=module.norm_eps)
        self.position = 0

    @torch.no_grad()
    def update(self, x_t: Tensor, mark_t: Tensor) -> Tensor:
        mean, std = self.stats.update(x_t)  # (B, C) each, over the stream so far
        position = torch.tensor([self.position], device=x_t.device)
        e_t = self.module.embedding(((x_t - mean) / std).unsqueeze(1), mark_t.unsqueeze(1), position)[:, 0]
        h_t, self.state = self.module.backbone.step(e_t, self.state)  # (B, D)
        self.position += 1
        return self.module.forecast_from(h_t, mean, std)

    @property
    def state_nbytes(self) -> int:
        """Bytes of everything carried between updates: backbone state + running statistics."""
        return aaren.state_nbytes(self.state) + self.stats.nbytes
