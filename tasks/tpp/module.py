"""THP+ on the shared backbone (Meta-TPP's setting, which the Aaren paper follows for event forecasting).

    e_i = EventEmbedding(t_i, τ_i, m_i)                       (B, N, D)
    h   = Backbone(e, mask)                                   (B, N, D), causal: h_i sees events ≤ i
    p(τ_{i+1} | h_i) = LogNormalMixture(h_i),  p(m_{i+1} | h_i) = softmax(W h_i)

Loss (`loss`, a protocol switch), targets = every event but the first of its sequence, dataset's time unit:
- "mean_per_event" (ours): mean over target events of −log p(τ) − log p(m); regularised by Adam's weight decay.
- "metatpp_sum" (Meta-TPP's tpp_module.py): −Σ over the batch's targets of Meta-TPP's log-likelihood (the last
  target of each sequence by its survival, metrics.metatpp_log_likelihood), not divided by anything.
`l2_penalty` λ adds λ/2 · Σ θ² over every parameter to the training loss (Meta-TPP: λ = its weight decay 1e-4, with
Adam's own weight decay 0). Aaren and the Transformer differ only in `backbone.kind`.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.errors import ConfigError
from tasks.base.module import TaskModule

from .model import EventEmbedding
from .lognormal_mixture import LogNormalMixture, LogNormalMixtureHead
from .mark_likelihood import mark_terms
from .metrics import TPPMetrics, metatpp_log_likelihood

LOSSES = ("mean_per_event", "metatpp_sum")


class TPPModule(TaskModule):
    def __init__(self, *, backbone: dict, optim: dict, num_marks: int, n_components: int,
                 loss: str = "mean_per_event", l2_penalty: float = 0.0):
        if loss not in LOSSES:
            raise ConfigError(f"task.module.loss must be one of {list(LOSSES)}, got {loss!r}")
        if isinstance(l2_penalty, bool) or not isinstance(l2_penalty, (int, float)) or l2_penalty < 0:
            raise ConfigError(f"task.module.l2_penalty must be a number >= 0, got {l2_penalty!r}")
        super().__init__(backbone=backbone, optim=optim)
        self.backbone = self.build_backbone()
        self.loss, self.l2_penalty = loss, float(l2_penalty)
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
        h = self(batch)[:, :-1]                                                 # (B, N − 1, D)
        dist = self.time_head(h)
        tau = torch.where(target_mask, batch["tau"][:, 1:], 1.0)                # padded targets: any τ > 0
        marks = batch["marks"][:, 1:]
        if self.mark_head is None:
            mark_ll, predicted_mark = torch.zeros_like(tau), torch.zeros_like(marks)
        else:                       # logits of the valid targets only, never their log_softmax (mark_likelihood.py)
            mark_ll, predicted_mark = mark_terms(self.mark_head, h, marks, target_mask)
        return {
            "time_ll": dist.log_prob(tau) - torch.log(scale),                  # density in the dataset's unit
            "log_survival": dist.log_survival(tau),
            "mean": dist.mean() * scale,
            "tau": tau * scale,
            "mark_ll": mark_ll,
            "predicted_mark": predicted_mark,
            "mark": marks,
            "target_mask": target_mask,
        }

    # ---- training / evaluation ---------------------------------------------------------------------------
    def training_loss(self, terms: dict) -> Tensor:
        """Per-target terms (next_event_terms) → the scalar training loss chosen by `loss` and `l2_penalty`."""
        m = terms["target_mask"]
        if self.loss == "mean_per_event":
            loss = -(terms["time_ll"] + terms["mark_ll"])[m].mean()
        else:
            loss = -metatpp_log_likelihood(time_ll=terms["time_ll"], mark_ll=terms["mark_ll"],
                                           log_survival=terms["log_survival"], target_mask=m).sum()
        if self.l2_penalty:
            loss = loss + 0.5 * self.l2_penalty * sum(p.pow(2).sum() for p in self.parameters())
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.next_event_terms(batch)
        loss = self.training_loss(terms)
        self.log("train/loss", loss, batch_size=int(terms["target_mask"].sum()))
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

