"""ForecastingModule: shapes, per-window normalisation, scale/shift equivariance, Aaren vs Transformer differ only
in the backbone, a tiny fit, and exact test metrics over every window."""
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tasks.forecasting.module import ForecastingModule
from tasks.forecasting.normalization import window_stats

C, N, H, F = 3, 16, 6, 4


def make_module(kind="aaren", *, input_norm="prefix", d_model=16, lr=1e-3, norm_eps=1e-5):
    torch.manual_seed(0)
    return ForecastingModule(
        backbone={"kind": kind, "d_model": d_model, "n_layers": 2, "n_heads": 2, "d_ff": 32, "dropout": 0.1},
        optim={"name": "adam", "lr": lr, "schedule": {"name": "halve_each_epoch"}},
        channels=C, time_feature_freq="h", seq_len=N, horizon=H, input_norm=input_norm, norm_eps=norm_eps)


def _batch(b=4, *, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, N, C, generator=g) * 4 + 7
    return x, torch.rand(b, N, F, generator=g) - 0.5


def test_prefix_stats_are_the_statistics_of_the_window_so_far():
    x, _ = _batch()
    mean, std = window_stats(x.double(), mode="prefix", eps=1e-5)
    for k in (1, 2, 9, N):
        head = x[:, :k].double()
        torch.testing.assert_close(mean[:, k - 1], head.mean(1))
        torch.testing.assert_close(std[:, k - 1], (head.var(1, unbiased=False) + 1e-5).sqrt())
    w_mean, w_std = window_stats(x.double(), mode="window", eps=1e-5)
    torch.testing.assert_close(w_mean, mean[:, -1:].expand_as(x))  # last prefix = whole window
    torch.testing.assert_close(w_std, std[:, -1:].expand_as(x))
    with pytest.raises(ValueError, match="input_norm"):
        window_stats(x, mode="global", eps=1e-5)


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
@pytest.mark.parametrize("input_norm", ["prefix", "window"])
def test_forecast_is_scale_and_shift_equivariant(kind, input_norm):
    """Per-window normalisation + restoration: forecast(a·x + b) = a·forecast(x) + b, per channel (a > 0)."""
    module = make_module(kind, input_norm=input_norm, norm_eps=1e-12).double().eval()  # eps ≪ var: exact
    x, marks = _batch()
    x, marks = x.double(), marks.double()
    a, b = torch.tensor([0.5, 3.0, 20.0]).double(), torch.tensor([-4.0, 100.0, 0.3]).double()
    with torch.no_grad():
        out = module(x, marks)
        out_affine = module(a * x + b, marks)
    assert out.shape == (4, H, C)
    torch.testing.assert_close(out_affine, a * out + b, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(out[0], out[1])  # different windows, different forecasts


def test_models_differ_only_in_the_backbone():
    aaren, transformer = make_module("aaren"), make_module("transformer")
    outside = lambda m: {k: v.shape for k, v in m.state_dict().items() if not k.startswith("backbone.")}
    assert outside(aaren) == outside(transformer) and len(outside(aaren)) > 0
    assert aaren.backbone.kind == "aaren" and transformer.backbone.kind == "transformer"


def test_bad_constructor_values_are_named():
    with pytest.raises(ValueError, match="input_norm"):
        make_module(input_norm="global")
    with pytest.raises(ValueError, match="x must be"):
        make_module()(torch.zeros(2, N, C + 1), torch.zeros(2, N, F))


@pytest.mark.parametrize("kind", ["aaren", "transformer"])
def test_a_few_steps_fit_a_periodic_signal(kind):
    """The forecast must learn: 60 Adam steps on a clean periodic series cut the MSE well below its start."""
    torch.manual_seed(0)
    t = torch.arange(200).float()
    series = torch.stack([torch.sin(2 * torch.pi * t / 12 + j) * (j + 1) for j in range(C)], -1)  # (400, C)
    starts = torch.arange(0, 200 - N - H)
    x = torch.stack([series[s:s + N] for s in starts])
    y = torch.stack([series[s + N:s + N + H] for s in starts])
    marks = torch.zeros(len(starts), N, F)
    module = make_module(kind, lr=1e-2)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for step in range(60):
        idx = torch.randint(0, len(starts), (16,))
        loss = torch.nn.functional.mse_loss(module(x[idx], marks[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.1 * sum(losses[:10]) / 10


def test_test_metrics_cover_every_window_exactly():
    """test/mse, test/mae = means over ALL windows × horizon × channels, even with a ragged last batch."""
    module = make_module().eval()
    x, marks = _batch(b=11, seed=1)
    y = torch.randn(11, H, C)
    with torch.no_grad():
        forecast = module(x, marks)
    loader = DataLoader(TensorDataset(x, marks, y), batch_size=4)  # batches of 4, 4, 3
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, loader, verbose=False)
    metrics = trainer.callback_metrics
    torch.testing.assert_close(metrics["test/mse"], ((forecast - y) ** 2).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["test/mae"], (forecast - y).abs().mean(), rtol=1e-5, atol=1e-6)
