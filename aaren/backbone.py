"""Backbone: a stack of AarenBlocks or TransformerBlocks with one interface for training and streaming."""
import torch
from torch import Tensor, nn

from .attention import expand_padding_mask
from .blocks import AarenBlock, TransformerBlock
from .kv_cache import KVCache
from .state import ScanState

KINDS = {"aaren": AarenBlock, "transformer": TransformerBlock}


class Backbone(nn.Module):
    """n_layers blocks of one kind (+ a final LayerNorm when pre-norm). No embeddings: tasks bring their own.

    Keyword-only: kind ("aaren" | "transformer"), d_model, n_layers, n_heads, d_ff, dropout=0.1, norm_first=True,
    activation="gelu", backend="auto" and chunk_size=None (Aaren's scan, see `aaren.scan`; Transformer: SDPA).

    forward(x (B, N, D), padding_mask (B, N) | None, *, state=None, return_state=False) → (B, N, D) [, state]
        causal for both kinds. padding_mask is bool with True = VALID token (the opposite of
        nn.MultiheadAttention's key_padding_mask, where True = ignore); (1, N) and (B, 1) broadcast.
        state / return_state: a prefill. Continue from `state` (default: empty) and also return the state after
        these N tokens, to go on with `step` or another `forward` — equal to stepping token by token.
    init_state(batch_size) → per-layer states: Aaren's constant-size ScanStates, or the Transformer's KV caches.
    step(x_t (B, D), state, mask_t (B,) | None) → (y_t (B, D), state'); equals forward position by position.

    States are values, for both kinds: forward/step return a new state and never change the one given, so a state
    can be reused (branching, beam search) and stepped under autograd. A KV cache appends in place only while no
    other state derived from the same one has (copy-on-write, see aaren.KVCache), so a linear stream stays
    amortised O(1) per token (under autograd, with keys that require grad, it concatenates instead: stream under
    torch.no_grad() / inference_mode when no gradient is wanted). `state_detach(state)` cuts the autograd history
    (truncated backprop through time); `state_reset(state, streams)` starts some streams over.
    """

    def __init__(self, *, kind: str, d_model: int, n_layers: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 norm_first: bool = True, activation: str = "gelu", backend: str = "auto",
                 chunk_size: int | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Backbone: kind must be one of {sorted(KINDS)}, got {kind!r}")
        for name, value in (("d_model", d_model), ("n_layers", n_layers), ("n_heads", n_heads), ("d_ff", d_ff)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Backbone: {name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Backbone: dropout must be in [0, 1), got {dropout!r}")
        scan = {}
        if kind == "aaren":
            scan = {"backend": backend, "chunk_size": chunk_size}
        elif backend != "auto" or chunk_size is not None:
            raise ValueError(f"Backbone: backend and chunk_size choose Aaren's scan; kind='transformer' runs SDPA, "
                             f"so leave them at 'auto' / None (got backend={backend!r}, chunk_size={chunk_size!r})")
        self.kind, self.d_model = kind, d_model
        self.blocks = nn.ModuleList(
            KINDS[kind](d_model=d_model, n_heads=n_heads, d_ff=d_ff, dropout=dropout, norm_first=norm_first,
                        activation=activation, **scan) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, *, state: list | None = None,
                return_state: bool = False):
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Backbone: x must have shape (B, N, {self.d_model}), got {_shape(x)}")
        mask = expand_padding_mask(padding_mask, x.shape[:2], name="padding_mask", where="Backbone")
        if state is None and not return_state:
            for block in self.blocks:
                x = block(x, mask)
            return self.norm(x)
        states = [None] * len(self.blocks) if state is None else self._check_state(state, x, "Backbone")
        new_state = []
        for block, layer_state in zip(self.blocks, states):
            x, layer_state = block(x, mask, state=layer_state, return_state=True)
            new_state.append(layer_state)
        return (self.norm(x), new_state) if return_state else self.norm(x)

    def init_state(self, batch_size: int) -> list:
        p = next(self.parameters())
        return [block.init_state(batch_size, device=p.device, dtype=p.dtype) for block in self.blocks]

    def step(self, x_t: Tensor, state: list, mask_t: Tensor | None = None):
        if not isinstance(x_t, Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.d_model:
            raise ValueError(f"Backbone.step: x_t must have shape (B, {self.d_model}), got {_shape(x_t)}")
        mask_t = expand_padding_mask(mask_t, x_t.shape[:1], name="mask_t", where="Backbone.step")
        new_state = []
        for block, layer_state in zip(self.blocks, self._check_state(state, x_t, "Backbone.step")):
            x_t, layer_state = block.step(x_t, layer_state, mask_t)
            new_state.append(layer_state)
        return self.norm(x_t), new_state

    def _check_state(self, state, x: Tensor, where: str) -> list:
        """`state` if it is one fitting state per layer for input x (batch, device, dtype); else a ValueError."""
        if not isinstance(state, (list, tuple)) or len(state) != len(self.blocks):
            got = f"{len(state)} entries" if isinstance(state, (list, tuple)) else type(state).__name__
            raise ValueError(f"{where}: state must be a list of one state per layer ({len(self.blocks)} layers, "
                             f"from init_state or a previous call), got {got}")
        dtype = self.blocks[0].norm1.weight.dtype  # the parameters' dtype (next(self.parameters()) costs 3 µs)
        for i, (block, layer_state) in enumerate(zip(self.blocks, state)):
            problem = block.attention.state_problem(layer_state, batch_size=x.shape[0], device=x.device, dtype=dtype)
            if problem:
                raise ValueError(f"{where}: the state of layer {i} does not fit the input (batch {x.shape[0]}): "
                                 f"{problem}")
        return state


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


def state_detach(state):
    """A Backbone state (list of ScanStates / KVCaches) without autograd history: same values, shared memory."""
    return [layer.detach() if isinstance(layer, KVCache) else ScanState(*(t.detach() for t in layer))
            for layer in state]


def state_reset(state, streams: Tensor) -> list:
    """A Backbone state in which the streams where `streams` (B,) bool is True start over (as from init_state);
    the others keep their history. E.g. the episodes that ended in a batch of environments."""
    if not isinstance(streams, Tensor) or streams.dtype != torch.bool or streams.dim() != 1:
        raise ValueError(f"state_reset: streams must be a (B,) bool tensor, True = start over; got {_shape(streams)}")
    out = []
    for layer in state:
        if isinstance(layer, KVCache):
            out.append(layer.reset_streams(streams))
            continue
        reset = streams.view(-1, *[1] * (layer.m.dim() - 1))  # (B, 1): over the heads
        out.append(ScanState(torch.where(reset, float("-inf"), layer.m), torch.where(reset, 0.0, layer.c),
                             torch.where(reset[..., None], 0.0, layer.a)))  # the identity (−inf, 0, 0)
    return out
