"""Online next-event prediction: events arrive one at a time (absolute time in the dataset's unit, mark); after
each, the distribution of the next inter-event time τ, its expectation and the next mark's probabilities.

With an Aaren backbone the state is constant-size (one (m, c, a) per layer, §3.1) plus the last event time; the
forecasts equal TPPModule's batch forward. `OnlineEventForecaster` is the Python object (any backbone);
`NextEventStep` the same predictor as one pure function of flat tensors, for export (ONNX / TorchScript).
"""
import torch
from aaren.export import OnlineStep, split_backbone
from torch import Tensor

from .module import TPPModule
class OnlineEventForecaster:
    """Online next-event prediction: observe events one at a time (absolute time in the dataset's unit, mark);
    after each, forecast the next inter-event time (mixture mean) and mark probabilities. Keeps only the
    backbone state and the last event time."""

    def __init__(self, module: TPPModule, *, time_scale: float, batch_size: int = 1):
        if not time_scale > 0:
            raise ValueError(f"OnlineEventForecaster: time_scale must be > 0, got {time_scale}")
        module.eval()
        self.module, self.scale = module, time_scale
        self.state = module.backbone.init_state(batch_size)
        self.last_time = torch.zeros(batch_size)

    def observe(self, time: Tensor, mark: Tensor) -> dict:
        """time (B,) absolute, mark (B,) long → {expected_interval (B,) in the dataset's unit, mark_probs (B, K),
        distribution: the next τ's LogNormalMixture in the rescaled unit (τ / time_scale)}."""
        if torch.any(time < self.last_time):
            raise ValueError("OnlineEventForecaster.observe: event times must not decrease")
        tau = (time - self.last_time) / self.scale
        dist, mark_log_probs, self.state = self.module.step(time / self.scale, tau, mark, self.state)
        self.last_time = time.clone()
        return {"expected_interval": dist.mean() * self.scale, "mark_probs": mark_log_probs.exp(),
                "distribution": dist}


class NextEventStep(OnlineStep):
    """OnlineEventForecaster as one pure step for export: (time (B,) absolute in the dataset's unit, mark (B,)
    int64, *state) → (expected_interval (B,) in the dataset's unit, mark_probs (B, K), and the next τ's
    log-normal mixture in the rescaled unit τ / time_scale: log_weights, loc, scale (B, M) each; *state').
    State, fixed size: the backbone's m, c (L, B, H), a (L, B, H, Dh) and the last event time (B,)."""
    observation_names = ("time", "mark")
    prediction_names = ("expected_interval", "mark_probs", "log_weights", "loc", "scale")
    state_names = ("m", "c", "a", "last_time")

    def __init__(self, *, module: TPPModule, time_scale: float):
        super().__init__()
        if not time_scale > 0:
            raise ValueError(f"NextEventStep: time_scale must be > 0, got {time_scale}")
        self.module, self.backbone = split_backbone(module)
        self.time_scale = float(time_scale)

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        m, c, a = self.backbone.initial_state(batch_size)
        return m, c, a, m.new_zeros(batch_size)

    def example_observation(self, batch_size: int) -> tuple[Tensor, Tensor]:
        p = next(self.parameters())
        return p.new_zeros(batch_size), torch.zeros(batch_size, dtype=torch.long, device=p.device)

    def forward(self, time, mark, m, c, a, last_time):
        tau = (time - last_time) / self.time_scale
        h, m, c, a = self.backbone(self.module.embedding(time / self.time_scale, tau, mark), m, c, a)  # (B, D)
        dist, mark_log_probs = self.module.decode(h)
        return (dist.mean() * self.time_scale, mark_log_probs.exp(), dist.log_weights, dist.loc, dist.scale,
                m, c, a, time)


# ---- the interface scripts/export.py uses (the same in every task's online.py) ---------------------------------
def export_step(module: TPPModule, datamodule) -> NextEventStep:
    datamodule.setup("test")  # loads every split, fixes the time scale on the training one
    return NextEventStep(module=module, time_scale=datamodule.time_scale)


def test_streams(module: TPPModule, datamodule, *, n_streams: int, max_steps: int) -> list:
    """The first n_streams test sequences, each its own stream of events, through OnlineEventForecaster →
    [(observations [(time, mark)], predictions [(expected_interval, mark_probs, log_weights, loc, scale)])]."""
    datamodule.setup("test")
    batch, scale = next(iter(datamodule.test_dataloader())), datamodule.time_scale
    streams = []
    for time, marks, valid in zip(batch["time"][:n_streams], batch["marks"][:n_streams], batch["mask"][:n_streams]):
        online = OnlineEventForecaster(module, time_scale=scale)
        observations = [(t[None] * scale, m[None]) for t, m in zip(time[valid][:max_steps], marks[valid][:max_steps])]
        predictions = []
        for observation in observations:
            out = online.observe(*observation)
            dist = out["distribution"]
            predictions.append((out["expected_interval"], out["mark_probs"], dist.log_weights, dist.loc, dist.scale))
        streams.append((observations, predictions))
    return streams
