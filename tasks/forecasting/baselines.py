"""Sanity baselines for forecasting: model-free forecasts scored on the models' own test windows and scale.

Every window of the split, every (step, channel) of its horizon, on the StandardScaler's scale — exactly what the
models' test/mse and test/mae average (module.py):
- repeat_last_value: ŷ_{t+h} = x_t for every h ("naive" persistence; hard to beat on random-walk-like series
  such as exchange rates).
- train_mean: ŷ = 0 on the scaled data, i.e. each channel's training mean.
"""
import torch

from .data import ForecastingWindows

BASELINES = ("repeat_last_value", "train_mean")


def _forecasts(x: torch.Tensor, horizon: int) -> dict:
    """x (B, N, C) → {name: ŷ (B, H, C)}."""
    return {"repeat_last_value": x[:, -1:, :].expand(-1, horizon, -1), "train_mean": x.new_zeros(x.shape[0],
                                                                                                 horizon, x.shape[2])}


def sanity_baselines(windows: ForecastingWindows, *, batch_size: int = 512) -> dict:
    """{name: {mse, mae}} over every window of `windows` (sums in float64, so the order of windows does not
    matter)."""
    squared = {name: torch.zeros((), dtype=torch.float64) for name in BASELINES}
    absolute = {name: torch.zeros((), dtype=torch.float64) for name in BASELINES}
    count = 0
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size, shuffle=False)
    for x, _, y in loader:                                                  # x (B, N, C), y (B, H, C)
        for name, forecast in _forecasts(x, y.shape[1]).items():
            error = (forecast - y).double()
            squared[name] += error.square().sum()
            absolute[name] += error.abs().sum()
        count += y.numel()
    if count == 0:
        raise ValueError("sanity_baselines: the split has no window")
    return {name: {"mse": float(squared[name] / count), "mae": float(absolute[name] / count)} for name in BASELINES}
