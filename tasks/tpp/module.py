"""THP+ on the shared backbone (Meta-TPP's setting, which the Aaren paper follows for event forecasting).

    e_i = EventEmbedding(t_i, τ_i, m_i)                       (B, N, D)
    h   = Backbone(e, mask)                                   (B, N, D), causal: h_i sees events ≤ i
    p(τ_{i+1} | h_i) = LogNormalMixture(h_i),  p(m_{i+1} | h_i) = softmax(W h_i)

Loss: mean over target events (every event but the first of its sequence) of −log p(τ) − log p(m), in the
dataset's time unit. Aaren and the Transformer differ only in `backbone.kind`.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.common.module import TaskModule

from .embedding import EventEmbedding
from .lognormal_mixture import LogNormalMixture, LogNormalMixtureHead
from .metrics import TPPMetrics


class TPPModule(TaskModule):
    def __init__(self, *, backbone: dict, optim: dict, num_marks: int, n_components: int):
        super().__init__(backbone=backbone, optim=optim)
        d_model = self.backbone_config["d_model"]
        self.num_marks = num_marks
        self.embedding = EventEmbedding(num_marks=num_marks, d_model=d_model)
        self.time_head = LogNormalMixtureHead(d_model=d_model, n_components=n_components)
        self.mark_head = nn.Linear(d_model, num_marks) if num_marks > 1 else None
        self.metrics = {"val": TPPMetrics(num_marks=num_marks), "test": TPPMetrics(num_marks=num_marks)}

    # ---- model -------------------------------------------------------------------------------------------
    def forward(self, batch: dict) -> Tensor:
        """batch (data.collate) → histories h (B, N, D)."""
        return self.backbone(self.embedding(batch["time"], batch["tau"], batch["marks"]), batch["mask"])

    def decode(self, h: Tensor) -> tuple[LogNormalMixture, Tensor]:
        """h (..., D) → (distribution of the next τ in the rescaled unit, mark log-probabilities (..., K)).

        In float32 under mixed precision: CPU autocast keeps log_softmax / logsumexp in bf16 (≈ 3 digits)."""
        with torch.autocast(h.device.type, enabled=False):
            h = h.float() if h.dtype in (torch.float16, torch.bfloat16) else h  # float64 stays float64
            if self.mark_head is None:
                return self.time_head(h), torch.zeros(*h.shape[:-1], 1, dtype=h.dtype, device=h.device)
            return self.time_head(h), F.log_softmax(self.mark_head(h), dim=-1)

    def next_event_terms(self, batch: dict) -> dict:
        """Per-target terms (B, N − 1), times in the dataset's unit: position i predicts event i + 1."""
        target_mask = batch["mask"][:, 1:]
        scale = batch["scale"][:, None]                                         # (B, 1)
        dist, mark_log_probs = self.decode(self(batch)[:, :-1])
        tau = torch.where(target_mask, batch["tau"][:, 1:], 1.0)                # padded targets: any τ > 0
        marks = batch["marks"][:, 1:]
        return {
            "time_ll": dist.log_prob(tau) - torch.log(scale),                  # density in the dataset's unit
            "log_survival": dist.log_survival(tau),
            "mean": dist.mean() * scale,
            "tau": tau * scale,
            "mark_ll": mark_log_probs.gather(-1, marks.unsqueeze(-1)).squeeze(-1),
            "predicted_mark": mark_log_probs.argmax(-1),
            "mark": marks,
            "target_mask": target_mask,
        }

    # ---- training / evaluation ---------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.next_event_terms(batch)
        m = terms["target_mask"]
        loss = -(terms["time_ll"] + terms["mark_ll"])[m].mean()
        self.log("train/loss", loss, batch_size=int(m.sum()))
        return loss

    def _evaluate(self, split: str, batch: dict) -> None:
        terms = self.next_event_terms(batch)
        truth = {}
        if "true_time_ll" in batch:
            truth = {"true_time_ll": batch["true_time_ll"][:, 1:], "true_mark_ll": batch["true_mark_ll"][:, 1:]}
        self.metrics[split].update(**terms, **truth)

    def on_validation_epoch_start(self) -> None:
        self.metrics["val"].reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def on_validation_epoch_end(self) -> None:
        values = self.metrics["val"].compute()
        self.log("val/loss", values["nll"])
        self.log_dict({f"val/{name}": value for name, value in values.items()})

    def on_test_epoch_start(self) -> None:
        self.metrics["test"].reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def on_test_epoch_end(self) -> None:
        self.log_test_metrics(self.metrics["test"].compute())

    # ---- streaming ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, time_t: Tensor, tau_t: Tensor, mark_t: Tensor, state: list):
        """One event (B,) each, rescaled unit → (next-τ distribution, mark log-probs (B, K), state).

        With an Aaren backbone the state is constant-size (one (m, c, a) per layer, §3.1); equals forward()."""
        h, state = self.backbone.step(self.embedding(time_t, tau_t, mark_t), state)
        dist, mark_log_probs = self.decode(h)
        return dist, mark_log_probs, state


class OnlineForecaster:
    """Online next-event prediction: observe events one at a time (absolute time in the dataset's unit, mark);
    after each, forecast the next inter-event time (mixture mean) and mark probabilities. Keeps only the
    backbone state and the last event time."""

    def __init__(self, module: TPPModule, *, time_scale: float, batch_size: int = 1):
        if not time_scale > 0:
            raise ValueError(f"OnlineForecaster: time_scale must be > 0, got {time_scale}")
        module.eval()
        self.module, self.scale = module, time_scale
        self.state = module.backbone.init_state(batch_size)
        self.last_time = torch.zeros(batch_size)

    def observe(self, time: Tensor, mark: Tensor) -> dict:
        """time (B,) absolute, mark (B,) long → {expected_interval (B,) in the dataset's unit, mark_probs (B, K),
        distribution: the next τ's LogNormalMixture in the rescaled unit (τ / time_scale)}."""
        if torch.any(time < self.last_time):
            raise ValueError("OnlineForecaster.observe: event times must not decrease")
        tau = (time - self.last_time) / self.scale
        dist, mark_log_probs, self.state = self.module.step(time / self.scale, tau, mark, self.state)
        self.last_time = time.clone()
        return {"expected_interval": dist.mean() * self.scale, "mark_probs": mark_log_probs.exp(),
                "distribution": dist}
