"""Online classification of a growing prefix: one prediction after every observed step (paper §3.1 as an RNN).

State = (backbone state, running logits (B, K), step counter). With the Aaren backbone every part has a constant
size (per layer a ScanState (m, c, a)); the Transformer's state is its growing KV cache. Inputs are the same
standardised features the batch model sees. A padded step (mask_t False) leaves the prediction unchanged.

After the last step the prediction equals the batch prediction `ClassificationModule(x, mask)` (eval mode).
"""
from typing import NamedTuple

import torch
from torch import Tensor


class OnlineState(NamedTuple):
    backbone: list  # per layer: aaren.ScanState (constant size) or aaren.KVCache (grows)
    logits: Tensor  # (B, K) "last": the latest prediction; "flatten": the running Σ_{t valid} W_t z_t (no bias)
    position: Tensor  # () int64, the index of the next step


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
        z_t = head.features(y_t)  # (B, D)
        if head.pooling == "last":
            logits = torch.where(valid[:, None], head.proj(z_t), state.logits)
            prediction = logits
        else:
            contribution = z_t @ head.position_weight(position).T  # (B, K) = W_t z_t
            logits = state.logits + torch.where(valid[:, None], contribution, torch.zeros_like(contribution))
            prediction = logits + head.proj.bias
        return prediction, OnlineState(backbone_state, logits, state.position + 1)

    def predict_prefixes(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, N, C), mask (B, N) | None → logits after every step (B, N, K)."""
        state = self.init_state(x.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            logits_t, state = self.step(x[:, t], state, None if mask is None else mask[:, t])
            outputs.append(logits_t)
        return torch.stack(outputs, dim=1)
