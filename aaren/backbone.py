"""Backbone: a stack of AarenBlocks or TransformerBlocks with one interface for training and streaming."""
import torch
from torch import Tensor, nn

from .blocks import AarenBlock, TransformerBlock

KINDS = {"aaren": AarenBlock, "transformer": TransformerBlock}


class Backbone(nn.Module):
    """n_layers blocks of one kind (+ a final LayerNorm when pre-norm). No embeddings: tasks bring their own.

    forward(x (B, N, D), padding_mask (B, N) bool True=valid | None) → (B, N, D), causal for both kinds.
    init_state(batch_size) → per-layer states: Aaren's constant-size ScanStates, or the Transformer's KV caches.
    step(x_t (B, D), state, mask_t (B,) | None) → (y_t (B, D), state); equals forward position by position.
    """

    def __init__(self, *, kind: str, d_model: int, n_layers: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 norm_first: bool = True, activation: str = "gelu"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Backbone: kind must be one of {sorted(KINDS)}, got {kind!r}")
        for name, value in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads), ("d_ff", d_ff)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Backbone: {name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Backbone: dropout must be in [0, 1), got {dropout!r}")
        self.kind, self.d_model = kind, d_model
        self.blocks = nn.ModuleList(
            KINDS[kind](d_model=d_model, n_heads=n_heads, d_ff=d_ff, dropout=dropout, norm_first=norm_first,
                        activation=activation) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Backbone: x must have shape (B, N, {self.d_model}), got {tuple(x.shape)}")
        if padding_mask is not None and (padding_mask.dtype != torch.bool
                                         or padding_mask.shape != x.shape[:2]):
            raise ValueError(f"Backbone: padding_mask must be bool of shape {tuple(x.shape[:2])} (True = valid)")
        for block in self.blocks:
            x = block(x, padding_mask)
        return self.norm(x)

    def init_state(self, batch_size: int) -> list:
        p = next(self.parameters())
        return [block.init_state(batch_size, device=p.device, dtype=p.dtype) for block in self.blocks]

    def step(self, x_t: Tensor, state: list, mask_t: Tensor | None = None):
        if x_t.dim() != 2 or x_t.shape[-1] != self.d_model:
            raise ValueError(f"Backbone.step: x_t must have shape (B, {self.d_model}), got {tuple(x_t.shape)}")
        new_state = []
        for block, layer_state in zip(self.blocks, state):
            x_t, layer_state = block.step(x_t, layer_state, mask_t)
            new_state.append(layer_state)
        return self.norm(x_t), new_state
