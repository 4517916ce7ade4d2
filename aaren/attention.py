"""The two attentions compared in the paper: Aaren's (§3.3) and causal self-attention (the baseline).

Both map x (B, N, D) → (B, N, D) causally (output k sees tokens ≤ k), offer `step` for streaming, and use the
same four projections W_q, W_k, W_v, W_o. They differ only in the query: Aaren's is a learned token per
layer (input-independent), self-attention's is W_q x_k.
"""
import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backends import BACKENDS
from .kv_cache import KVCache
from .scan import scan
from .state import MASK_POLARITY, ScanState, accumulation_dtype, init_state, no_autocast, step

BACKEND_NAMES = ("auto", *BACKENDS)


def expand_padding_mask(mask: Tensor | None, shape: tuple, *, name: str, where: str) -> Tensor | None:
    """A bool mask, True = valid, of shape `shape` or broadcastable to it with size-1 dims: (B, N), (1, N), (B, 1)."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"dtype {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{where}: {name} must be a bool tensor, {MASK_POLARITY}; got {got}")
    if mask.dim() != len(shape) or any(m not in (1, s) for m, s in zip(mask.shape, shape)):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)} (size-1 dims broadcast), {MASK_POLARITY}; "
                         f"got {tuple(mask.shape)}")
    return mask.expand(shape)


def fp32_core(x: Tensor):
    """(context, cast) for the attention core (scores, scan / SDPA): on CPU under autocast, autocast off and fp32.

    Under torch.autocast("cpu", bf16) the projections run in bf16, but PyTorch's CPU SDPA in bf16 is 2-6x slower
    than fp32 at head sizes 16-64, and bf16 scores (8-bit mantissa) would shift the exp() weights by up to ~1 %;
    so on CPU both kinds cast the core's inputs to fp32 and run it with autocast disabled. Elsewhere nothing
    changes (on GPUs FlashAttention in bf16 is the fast path).
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return no_autocast(x.device), Tensor.float
    return contextlib.nullcontext(), _same


class _Projections(nn.Module):
    def __init__(self, *, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def heads(self, x: Tensor) -> Tensor:
        """(..., D) → (..., H, Dh)"""
        return x.unflatten(-1, (self.n_heads, self.head_dim))


class Aaren(_Projections):
    """Aaren attention (§3.3): o_k = Attention(q, x_{1:k}) with q a learned parameter, computed by `scan`.

    Keyword-only: d_model, n_heads, bias=True, backend="auto" (one of BACKEND_NAMES, see `aaren.scan`),
    chunk_size=None (the scan's chunk length).
    forward(x (B, N, D), padding_mask (B, N) bool | None, *, state=None, return_state=False) → (B, N, D)
        [, state]; padding_mask: True = valid token; state: a ScanState (B, H) to continue from (a prefill).
    step(x_t (B, D), state, mask_t (B,) | None) → (y_t (B, D), state); state = ScanState of shape (B, H).

    k_proj.bias is kept for the paper's parameter count (§4: 3,152,896 for one layer), but it has no effect:
    with one query per head, b_k shifts every score of a head by the same b_k·q/√d, which softmax ignores
    (its gradient is 0 up to rounding, ~1e-16).
    """

    def __init__(self, *, d_model: int, n_heads: int, bias: bool = True, backend: str = "auto",
                 chunk_size: int | None = None):
        super().__init__(d_model=d_model, n_heads=n_heads, bias=bias)
        if backend not in BACKEND_NAMES:
            raise ValueError(f"Aaren: backend must be one of {list(BACKEND_NAMES)}, got {backend!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                       or chunk_size < 1):
            raise ValueError(f"Aaren: chunk_size must be a positive int or None, got {chunk_size!r}")
        self.query = nn.Parameter(torch.randn(d_model) * 0.02)  # the learned query token
        self.backend, self.chunk_size = backend, chunk_size
        self._step_weights_cache = None  # (key, weight, bias); see _step_weights

    def _score_weights(self):
        """The learned query folded into W_k: s = x U^T + β with U (H, D), β (H,) — no per-token key needed.

        s_h = q_h·(W_k x + b_k)_h/√d = x·(W_k,hᵀ q_h)/√d + b_k,h·q_h/√d, since q is input-independent (§3.3).
        """
        q = self.heads(self.q_proj(self.query)) / math.sqrt(self.head_dim)  # (H, Dh)
        w_k = self.heads(self.k_proj.weight.t()).permute(1, 2, 0)  # (H, Dh, D)
        u = torch.einsum("hd,hde->he", q, w_k)  # (H, D)
        beta = None if self.k_proj.bias is None else (self.heads(self.k_proj.bias) * q).sum(-1)  # (H,)
        return u, beta

    def _step_weights(self):
        """One matmul for a token's scores and values: [s | v] = x W + b, W (D, H + D), b (H + D,) | None.

        In eager inference (no gradients) they are cached, keyed on every parameter they read (storage and
        version counter: optimiser steps, load_state_dict and .to() all invalidate). With gradients, while
        tracing or exporting (where the computation belongs in the graph), and for parameters created under
        torch.inference_mode (no version counter), they are recomputed.
        """
        cacheable = not (torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling()
                         or torch.compiler.is_exporting())
        params = [p for p in (self.query, self.q_proj.weight, self.q_proj.bias, self.k_proj.weight,
                              self.k_proj.bias, self.v_proj.weight, self.v_proj.bias) if p is not None]
        cacheable = cacheable and not any(p.is_inference() for p in params)  # those have no version counter
        if cacheable:
            key = tuple((p.data_ptr(), p._version) for p in params)
            cache = self._step_weights_cache
            if cache is not None and cache[0] == key:
                return cache[1], cache[2]
        u, beta = self._score_weights()
        weight = torch.cat([u, self.v_proj.weight]).t()  # (D, H + D)
        bias = None if beta is None else torch.cat([beta, self.v_proj.bias])
        if cacheable:
            self._step_weights_cache = (key, weight.contiguous(), bias)
        return weight, bias

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, *, state: ScanState | None = None,
                return_state: bool = False):
        mask = expand_padding_mask(padding_mask, x.shape[:2], name="padding_mask", where="Aaren")
        v = self.heads(self.v_proj(x))  # (B, N, H, Dh); bf16 under autocast
        core, cast = fp32_core(x)
        with core:
            u, beta = self._score_weights()
            s = F.linear(cast(x), u, beta)  # (B, N, H)   s_i = q·k_i/√d, in fp32 under CPU autocast
            mask = None if mask is None else mask.unsqueeze(1).expand(-1, self.n_heads, -1)  # (B, H, N)
            kwargs = {"state": state, "return_state": True} if state is not None or return_state else {}
            out = scan(s.transpose(1, 2), v.transpose(1, 2), mask, backend=self.backend,
                       chunk_size=self.chunk_size, **kwargs)  # (B, H, N, Dh) [, ScanState (B, H)]
        o, state = out if kwargs else (out, None)
        y = self.out_proj(o.transpose(1, 2).flatten(-2))
        return (y, state) if return_state else y

    def init_state(self, batch_size: int, *, device=None, dtype=torch.float32) -> ScanState:
        return init_state((batch_size, self.n_heads), self.head_dim, device=device, dtype=dtype)

    def state_problem(self, state, *, batch_size: int, device, dtype) -> str | None:
        """Why `state` cannot continue `batch_size` streams of this layer on device/dtype, or None if it can."""
        if not isinstance(state, ScanState):
            return f"expected an aaren.ScanState (m, c, a), got {type(state).__name__}"
        want = (batch_size, self.n_heads)
        got = (tuple(state.m.shape), tuple(state.c.shape), tuple(state.a.shape))
        if got != (want, want, (*want, self.head_dim)):
            return (f"m, c, a have shapes {got}, want {(want, want, (*want, self.head_dim))} "
                    f"(batch {batch_size}, heads {self.n_heads}, head width {self.head_dim})")
        return _device_dtype_problem(state, device=device, dtype=accumulation_dtype(dtype))

    def step(self, x_t: Tensor, state: ScanState, mask_t: Tensor | None = None):
        core, cast = fp32_core(x_t)
        with core:
            weight, bias = self._step_weights()
            x_t = cast(x_t)
            sv = x_t @ weight if bias is None else torch.addmm(bias, x_t, weight)  # (B, H + D)
            s, v = sv[:, :self.n_heads], self.heads(sv[:, self.n_heads:])  # (B, H), (B, H, Dh)
            mask = None if mask_t is None else mask_t.unsqueeze(-1).expand_as(s)
            o, state = step(state, s, v, mask)
        return self.out_proj(o.flatten(-2)), state


class CausalSelfAttention(_Projections):
    """Multi-head causal self-attention (the Transformer baseline), SDPA in parallel, a KV cache when streaming.

    forward(x (B, N, D), padding_mask (B, N) bool | None, *, state=None, return_state=False) → (B, N, D)
        [, cache]; padding_mask: True = valid token. A padded query attends to itself only, so its (unused)
        output stays finite; real queries never see padded keys. state: a KVCache of earlier tokens (a prefill
        continues it; the returned cache holds them and these N, the given one is left unchanged).
    step(x_t (B, D), cache, mask_t (B,) | None) → (y_t (B, D), cache'); `cache` itself is left unchanged.
    """

    def _qkv(self, x: Tensor):
        return (self.heads(p(x)).transpose(-3, -2) for p in (self.q_proj, self.k_proj, self.v_proj))

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, *, state: KVCache | None = None,
                return_state: bool = False):
        b, n = x.shape[:2]
        mask = expand_padding_mask(padding_mask, (b, n), name="padding_mask", where="CausalSelfAttention")
        q, k, v = self._qkv(x)  # (B, H, N, Dh); bf16 under autocast
        core, cast = fp32_core(x)
        with core:
            q, k, v = cast(q), cast(k), cast(v)
            if mask is None and state is None:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                eye = torch.eye(n, dtype=torch.bool, device=x.device)
                allowed = torch.ones_like(eye).tril().expand(b, n, n)  # (B, N_q, N_k)
                if mask is not None:
                    allowed = allowed & mask[:, None, :]
                allowed = allowed | eye
                keys, values = k, v
                if state is not None:  # the prefix: every query sees its valid tokens
                    past_k, past_v, past_valid = state.view()
                    allowed = torch.cat([past_valid[:, None, :].expand(-1, n, -1), allowed], -1)
                    keys, values = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
                o = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed.unsqueeze(1))
        y = self.out_proj(o.transpose(1, 2).flatten(-2))
        if not return_state:
            return y
        valid = torch.ones(b, n, dtype=torch.bool, device=x.device) if mask is None else mask
        if state is None:  # a cache in the parameters' dtype, as init_state makes (also under GPU autocast)
            dtype = self.k_proj.weight.dtype
            return y, KVCache.from_tokens(k.to(dtype), v.to(dtype), valid)
        return y, state.extend(k, v, valid)

    def init_state(self, batch_size: int, *, device=None, dtype=torch.float32) -> KVCache:
        return KVCache(batch_size=batch_size, n_heads=self.n_heads, head_dim=self.head_dim, device=device,
                       dtype=dtype)

    def state_problem(self, state, *, batch_size: int, device, dtype) -> str | None:
        """Why `state` cannot continue `batch_size` streams of this layer on device/dtype, or None if it can."""
        if not isinstance(state, KVCache):
            return f"expected an aaren.KVCache, got {type(state).__name__}"
        got, want = (state.batch_size, state.n_heads, state.head_dim), (batch_size, self.n_heads, self.head_dim)
        if got != want:
            return f"(batch, heads, head width) = {got}, want {want}"
        return _device_dtype_problem(state, device=device, dtype=dtype)

    def step(self, x_t: Tensor, cache: KVCache, mask_t: Tensor | None = None):
        q, k, v = self._qkv(x_t.unsqueeze(1))  # (B, H, 1, Dh)
        valid_t = torch.ones(x_t.shape[0], dtype=torch.bool, device=x_t.device) if mask_t is None else mask_t
        core, cast = fp32_core(x_t)
        with core:
            cache = cache.append(k[:, :, 0], v[:, :, 0], valid_t)  # a new cache; the given one is unchanged
            keys, values, valid = cache.view()
            allowed = valid.clone()
            allowed[:, -1] = True  # the current token always sees itself, as in forward
            o = F.scaled_dot_product_attention(cast(q), keys, values, attn_mask=allowed[:, None, None, :])
        return self.out_proj(o[:, :, 0].flatten(-2)), cache


def _same(x: Tensor) -> Tensor:
    return x


def _device_dtype_problem(state, *, device, dtype) -> str | None:
    tensors = state if isinstance(state, ScanState) else (state.k, state.v)
    for t in tensors:
        if t.device != device:
            return f"is on {t.device}, the input on {device}"
        if t.dtype != dtype:
            return f"has dtype {t.dtype}, want {dtype} (init_state of the model as it is now)"
    return None
