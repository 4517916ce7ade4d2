"""OnlineForecaster: observations arrive one at a time; after each, a forecast of the next H steps.

The backbone advances with `step` (Aaren: a constant-size state per layer, §3.1; Transformer: a growing KV
cache), the per-window normalisation with RunningStats (the window is everything fed so far), and the embedding
uses the observation's index in the stream as its position. With input_norm="prefix" the forecast after t
observations equals ForecastingModule.forward on the window of those t observations (tests/test_forecasting_online.py).
`ForecastStep` is the same predictor as one pure function of flat tensors, for export (ONNX / TorchScript).
"""
import aaren
import torch
from aaren.export import OnlineStep, split_backbone
from torch import Tensor

from .module import ForecastingModule
from .normalization import RunningStats, shifted_moments
from .time_features import FEATURES_BY_FREQ


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


class ForecastStep(OnlineStep):
    """OnlineForecaster as one pure step for export: (x_t (B, C), mark_t (B, F), *state) → (forecast (B, H, C),
    *state'). State, fixed size: the backbone's m, c (L, B, H), a (L, B, H, Dh); the running statistics' first
    value, Σd, Σd² (B, C) each; position (1,) int64, the number of observations so far (shared by the streams).
    """
    observation_names = ("x_t", "mark_t")
    prediction_names = ("forecast",)
    state_names = ("m", "c", "a", "shift", "sum", "sum_sq", "position")

    def __init__(self, *, module: ForecastingModule):
        super().__init__()
        if module.input_norm != "prefix":
            raise ValueError(f"ForecastStep: input_norm={module.input_norm!r} cannot stream with a fixed-size "
                             "state; export a model trained with input_norm='prefix'")
        self.module, self.backbone = split_backbone(module)

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        weight = self.module.head.weight
        shift, total, total_sq = (weight.new_zeros(batch_size, self.module.channels) for _ in range(3))
        position = torch.zeros(1, dtype=torch.long, device=weight.device)
        return (*self.backbone.initial_state(batch_size), shift, total, total_sq, position)

    def example_observation(self, batch_size: int) -> tuple[Tensor, Tensor]:
        weight = self.module.embedding.temporal.weight  # (D, F)
        return weight.new_zeros(batch_size, self.module.channels), weight.new_zeros(batch_size, weight.shape[1])

    def forward(self, x_t, mark_t, m, c, a, shift, total, total_sq, position):
        shift = torch.where(position == 0, x_t, shift)                      # the window's first value
        d = x_t - shift
        total, total_sq = total + d, total_sq + d * d
        mean, std = shifted_moments(shift, total, total_sq, (position + 1).to(x_t.dtype),
                                    eps=self.module.norm_eps)                # (B, C) each
        e_t = self.module.embedding(((x_t - mean) / std).unsqueeze(1), mark_t.unsqueeze(1), position)[:, 0]
        h_t, m, c, a = self.backbone(e_t, m, c, a)                          # (B, D)
        forecast = self.module.forecast_from(h_t, mean, std)                 # (B, H, C)
        return forecast, m, c, a, shift, total, total_sq, position + 1


# ---- the interface scripts/export.py uses (the same in every task's online.py) ---------------------------------
def export_step(module: ForecastingModule, datamodule) -> ForecastStep:
    return ForecastStep(module=module)


def test_streams(module: ForecastingModule, datamodule, *, n_streams: int, max_steps: int) -> list:
    """The first n_streams test windows side by side, one observation at a time, through OnlineForecaster →
    [(observations [(x_t, mark_t)], predictions [(forecast,)])]."""
    datamodule.setup("test")
    x, x_mark, _ = next(iter(datamodule.test_dataloader()))            # (B, N, C), (B, N, F)
    x, x_mark = x[:n_streams], x_mark[:n_streams]
    online = OnlineForecaster(module.eval(), batch_size=x.shape[0])
    observations = [(x[:, t], x_mark[:, t]) for t in range(min(x.shape[1], max_steps))]
    return [(observations, [(online.update(*observation),) for observation in observations])]


def deploy_info(module: ForecastingModule, datamodule) -> dict:
    """What a runtime without Python needs to feed the exported step from the raw CSV (web/app.js): the channel
    order (target last), the training rows' scaler, the calendar features (time_features.py) and the test rows."""
    datamodule.setup("test")
    series, freq = datamodule.series, datamodule.dataset_config["time_feature_freq"]
    return {"columns": list(series.columns), "scaler_mean": series.scaler.mean.tolist(),
            "scaler_std": series.scaler.std.tolist(), "time_features": list(FEATURES_BY_FREQ[freq]),
            "test_rows": list(series.borders["test"]), "seq_len": module.seq_len, "horizon": module.horizon}
