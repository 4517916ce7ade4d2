"""The two attentions compared in the paper: Aaren's (§3.3) and causal self-attention (the baseline).

Both map x (B, N, D) → (B, N, D) causally (output k sees tokens ≤ k), offer `step` for streaming, and use the
same four projections W_q, W_k, W_v, W_o. They differ only in the query: Aaren's is a learned token per
layer (input-independent), self-attention's is W_q x_k.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kv_cache import KVCache
from .scan import scan
from .state import ScanState, init_state, step


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

    Keyword-only: d_model, n_heads, bias=True, backend="auto" (see `aaren.scan`), chunk_size=None.
    forward(x (B, N, D), padding_mask (B, N) bool True=valid | None) → (B, N, D)
    step(x_t (B, D), state, mask_t (B,) | None) → (y_t (B, D), state); state = ScanState of shape (B, H).
    """

    def __init__(self, *, d_model: int, n_heads: int, bias: bool = True, backend: str = "auto",
                 chunk_size: int | None = None):
        super().__init__(d_model=d_model, n_heads=n_heads, bias=bias)
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

    def _scores_values(self, x: Tensor):
        u, beta = self._score_weights()
        s = F.linear(x, u, beta)  # (..., H)   s_i = q·k_i/√d
        return s, self.heads(self.v_proj(x))  # (..., H), (..., H, Dh)

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

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        s, v = self._scores_values(x)  # (B, N, H), (B, N, H, Dh)
        mask = None if padding_mask is None else padding_mask.unsqueeze(1).expand(-1, self.n_heads, -1)
        o = scan(s.transpose(1, 2), v.transpose(1, 2), mask, backend=self.backend,
                 chunk_size=self.chunk_size)  # (B, H, N, Dh)
        return self.out_proj(o.transpose(1, 2).flatten(-2))

    def init_state(self, batch_size: int, *, device=None, dtype=torch.float32) -> ScanState:
        return init_state((batch_size, self.n_heads), self.head_dim, device=device, dtype=dtype)

    def step(self, x_t: Tensor, state: ScanState, mask_t: Tensor | None = None):
        weight, bias = self._step_weights()
        sv = x_t @ weight if bias is None else torch.addmm(bias, x_t, weight)  # (B, H + D)
        s, v = sv[:, :self.n_heads], self.heads(sv[:, self.n_heads:])  # (B, H), (B, H, Dh)
        mask = None if mask_t is None else mask_t.unsqueeze(-1).expand_as(s)
        o, state = step(state, s, v, mask)
        return self.out_proj(o.flatten(-2)), state


class CausalSelfAttention(_Projections):
    """Multi-head causal self-attention (the Transformer baseline), SDPA in parallel, a KV cache when streaming.

    forward(x (B, N, D), padding_mask (B, N) | None) → (B, N, D); a padded query attends to itself only, so
    its (unused) output stays finite; real queries never see padded keys.
    step(x_t (B, D), cache, mask_t (B,) | None) → (y_t (B, D), cache).
    """

    def _qkv(self, x: Tensor):
        return (self.heads(p(x)).transpose(-3, -2) for p in (self.q_proj, self.k_proj, self.v_proj))

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        q, k, v = self._qkv(x)  # (B, H, N, Dh)
        if padding_mask is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            n = x.shape[1]
            eye = torch.eye(n, dtype=torch.bool, device=x.device)
            allowed = (torch.ones_like(eye).tril() & padding_mask[:, None, :]) | eye  # (B, N_q, N_k)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1))
        return self.out_proj(o.transpose(1, 2).flatten(-2))

    def init_state(self, batch_size: int, *, device=None, dtype=torch.float32) -> KVCache:
        return KVCache(batch_size=batch_size, n_heads=self.n_heads, head_dim=self.head_dim, device=device,
                       dtype=dtype)

    def step(self, x_t: Tensor, cache: KVCache, mask_t: Tensor | None = None):
        q, k, v = self._qkv(x_t.unsqueeze(1))  # (B, H, 1, Dh)
        valid_t = torch.ones(x_t.shape[0], dtype=torch.bool, device=x_t.device) if mask_t is None else mask_t
        cache.append(k[:, :, 0], v[:, :, 0], valid_t)
        keys, values, valid = cache.view()
        allowed = valid.clone()
        allowed[:, -1] = True  # the current token always sees itself, as in forward
        o = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed[:, None, None, :])
        return self.out_proj(o[:, :, 0].flatten(-2)), cache
