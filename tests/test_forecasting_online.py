"""OnlineForecaster: one observation at a time, a forecast after each, equal to the batch forecast of the
window that covers the whole stream so far; Aaren's state stays constant in size."""
import pytest
import torch

from tasks.forecasting.module import ForecastingModule
from tasks.forecasting.online import OnlineForecaster

C, N, H, F = 3, 24, 5, 4


def make_module(kind, input_norm="prefix"):
    torch.manual_seed(0)
    return ForecastingModule(
        backbone={"kind": kind, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "dropout": 0.1},
        optim={"name": "adam", "lr": 1e-3}, channels=C, time_feature_freq="h", seq_len=N, horizon=H,
        input_norm=input_norm)


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_online_forecast_equals_batch_forecast_at_every_step(kind):
    module = make_module(kind).double().eval()
    g = torch.Generator().manual_seed(3)
    # a non-stationary stream: a trend and a level jump, so the running statistics move every step
    t = torch.arange(N, dtype=torch.float64)
    stream = torch.randn(2, N, C, generator=g, dtype=torch.float64) + 0.5 * t[None, :, None]
    stream[:, N // 2:] += 10.0
    marks = torch.rand(2, N, F, generator=g, dtype=torch.float64) - 0.5
    online = OnlineForecaster(module, batch_size=2)
    forecasts = [online.update(stream[:, k], marks[:, k]) for k in range(N)]
    with torch.no_grad():
        for k in (0, 1, 2, N // 2, N - 1):
            batch = module(stream[:, :k + 1], marks[:, :k + 1])  # the window = the whole stream so far
            torch.testing.assert_close(forecasts[k], batch, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(forecasts[N // 2 - 1], forecasts[N // 2])  # the level jump moves the forecast


def test_aaren_state_is_constant_in_size_transformer_state_grows():
    x, marks = torch.randn(1, C), torch.zeros(1, F)
    sizes = {}
    for kind in ("aaren", "transformer"):
        online = OnlineForecaster(make_module(kind).eval(), batch_size=1)
        online.update(x, marks)
        first = online.state_nbytes
        for _ in range(199):
            online.update(x, marks)
        sizes[kind] = (first, online.state_nbytes)
    assert sizes["aaren"][0] == sizes["aaren"][1] > 0
    assert sizes["transformer"][1] > 8 * sizes["transformer"][0]


def test_online_refuses_window_norm_and_training_mode():
    with pytest.raises(ValueError, match="input_norm='prefix'"):
        OnlineForecaster(make_module("aaren", input_norm="window").eval(), batch_size=1)
    with pytest.raises(ValueError, match="eval"):
        OnlineForecaster(make_module("aaren").train(), batch_size=1)
