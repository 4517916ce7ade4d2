"""Online classification of a growing prefix: one prediction after every observed step (paper §3.1 as an RNN).

State = (backbone state, running logits (B, K), step counter). With the Aaren backbone every part has a constant
size (per layer a ScanState (m, c, a)); the Transformer's state is its growing KV cache. Inputs are the same
standardised features the batch model sees. A padded step (mask_t False) leaves the prediction unchanged.

After the last step the prediction equals the batch prediction `ClassificationModule(x, mask)` (eval mode).
`ClassifyStep` is the same predictor (every step valid) as one pure function of flat tensors, for export.
"""
from typing import NamedTuple

import torch
from aaren.export import OnlineStep, split_backbone
from torch import Tensor


class OnlineState(NamedTuple):
    backbone: list  # per layer: aaren.ScanState (constant size) or aaren.KVCache (grows)
    logits: Tensor  # (B, K) "last": the latest prediction; "flatten": the running Σ_{t valid} W_t z_t (no bias)
    position: Tensor  # () int64, the index of the next step


def pool_step(head, y_t: Tensor, logits: Tensor, position: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """The head on one new backbone output y_t (B, D) at step `position` (() int64), valid (B,) bool →
    (prediction (B, K), running logits (B, K)); shared by OnlineClassifier and ClassifyStep."""
    z_t = head.features(y_t)  # (B, D)
    if head.pooling == "last":
        logits = torch.where(valid[:, None], head.proj(z_t), logits)
        return logits, logits
    contribution = z_t @ head.position_weight(position).T  # (B, K) = W_t z_t
    logits = logits + torch.where(valid[:, None], contribution, torch.zeros_like(contribution))
    return logits + head.proj.bias, logits


class OnlineClassifier:
    """Wraps a trained ClassificationModule (put in eval mode) for step-by-step prediction."""

    def __init__(self, module):
        self.module = module.eval()

    @torch.no_grad()
    def init_state(self, batch_size: int) -> OnlineState:
        head = self.module.head
        p = head.proj.weight
        return OnlineState(backbone=self.module.backbone.init_state(batch_size),
                           logits=torch.zeros(batch_size, head.proj.out_features, device=p.device, dtype=p.dtype),
                           position=torch.zeros((), dtype=torch.long, device=p.device))

    @torch.no_grad()
    def step(self, x_t: Tensor, state: OnlineState, mask_t: Tensor | None = None) -> tuple[Tensor, OnlineState]:
        """x_t (B, C), mask_t (B,) bool True=valid | None → (logits_t (B, K), state)."""
        module, head = self.module, self.module.head
        position = int(state.position)
        if head.pooling == "flatten" and position >= head.max_length:
            raise ValueError(f"flatten pooling reads at most {head.max_length} steps; step {position + 1} given")
        valid = torch.ones(x_t.shape[0], dtype=torch.bool, device=x_t.device) if mask_t is None else mask_t
        y_t, backbone_state = module.backbone.step(module.embedding.step(x_t, state.position), state.backbone,
                                                   mask_t)
        prediction, logits = pool_step(head, y_t, state.logits, state.position, valid)
        return prediction, OnlineState(backbone_state, logits, state.position + 1)

    def predict_prefixes(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, N, C), mask (B, N) | None → logits after every step (B, N, K)."""
        state = self.init_state(x.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            logits_t, state = self.step(x[:, t], state, None if mask is None else mask[:, t])
            outputs.append(logits_t)
        return torch.stack(outputs, dim=1)


class ClassifyStep(OnlineStep):
    """OnlineClassifier as one pure step for export: (x_t (B, C), *state) → (class probabilities so far (B, K),
    *state'). State, fixed size: the backbone's m, c (L, B, H), a (L, B, H, Dh); the running logits (B, K);
    position () int64, the index of the next step. With flatten pooling a stream has at most max_steps =
    head.max_length steps (onnxruntime fails on the index beyond)."""
    observation_names = ("x_t",)
    prediction_names = ("probabilities",)
    state_names = ("m", "c", "a", "logits", "position")

    def __init__(self, *, module):
        super().__init__()
        self.module, self.backbone = split_backbone(module)
        self.max_steps = module.head.max_length if module.head.pooling == "flatten" else None

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        proj = self.module.head.proj
        return (*self.backbone.initial_state(batch_size), proj.weight.new_zeros(batch_size, proj.out_features),
                torch.zeros((), dtype=torch.long, device=proj.weight.device))

    def example_observation(self, batch_size: int) -> tuple[Tensor]:
        value = self.module.embedding.value  # Linear(C, D)
        return (value.weight.new_zeros(batch_size, value.in_features),)

    def forward(self, x_t, m, c, a, logits, position):
        h_t, m, c, a = self.backbone(self.module.embedding.step(x_t, position), m, c, a)   # (B, D)
        valid = torch.ones(x_t.shape[0], dtype=torch.bool, device=x_t.device)
        prediction, logits = pool_step(self.module.head, h_t, logits, position, valid)
        return prediction.softmax(dim=-1), m, c, a, logits, position + 1


# ---- the interface scripts/export.py uses (the same in every task's online.py) ---------------------------------
def export_step(module, datamodule) -> ClassifyStep:
    return ClassifyStep(module=module)


def test_streams(module, datamodule, *, n_streams: int, max_steps: int) -> list:
    """The first n_streams test series, each its own stream over its valid steps, through OnlineClassifier →
    [(observations [(x_t,)], predictions [(probabilities,)])] per series."""
    datamodule.setup("test")
    x, mask, _ = next(iter(datamodule.test_dataloader()))              # (B, N, C), (B, N)
    online, streams = OnlineClassifier(module), []
    for series, valid in zip(x[:n_streams], mask[:n_streams]):
        observations = [(x_t[None],) for x_t in series[valid][:max_steps]]
        state, predictions = online.init_state(1), []
        for (x_t,) in observations:
            logits, state = online.step(x_t, state)
            predictions.append((logits.softmax(dim=-1),))
        streams.append((observations, predictions))
    return streams
