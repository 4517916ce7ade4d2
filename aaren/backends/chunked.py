"""Chunked scan: O(N·C) work as dense C×C matmuls (BLAS / tensor cores), recursing over chunk summaries.

Tokens are states too: token i is (m_i, c_i, a_i) = (s_i, 1, v_i), or the identity (−inf, 0, 0) if masked.
The inclusive ⊕-prefix of L states inside one chunk is dense: with M_k = max_{i≤k} m_i,
    E[k, i] = e^{m_i − M_k} for i ≤ k, else 0          (C × C, every exponent ≤ 0: no overflow, and
    c_k = Σ_i E[k, i] c_i,   a_k = Σ_i E[k, i] a_i       the row's own max gives weight 1: no underflow)
which is §3.2's (m, u, w) recurrence summed in closed form. Split N tokens into N/C chunks, take each chunk's
last row as its summary, get the state entering every chunk from the prefix of the summaries — the same
computation one level up, recursively — and fold it into each row with one more ⊕.

Backward, written out (as the Triton kernels' derivation in triton_scan.py), with lse_k = m_k + log c_k of row k
(non-decreasing in k), p_j = e^{s_j − lse_j} and δ_k = do_k·o_k:
    G_j = Σ_{k≥j} e^{lse_j − lse_k} do_k,   H_j = Σ_{k≥j} e^{lse_j − lse_k} δ_k,
    dv_j = p_j G_j,                         ds_j = v_j·dv_j − p_j H_j.
G and H are a ⊕-prefix of the reversed sequence with scores −lse_k, values do_k and "denominators" δ_k: the same
chunked scan (its max is −lse_j, so every weight is ≤ 1), one pass instead of autograd's replay of the forward.
The final state's gradients enter as one more element k = N: values c_N ∂L/∂a_N, denominator −c_N ∂L/∂c_N
(m is stop-gradient, as in state.py). A given initial state enters as token 0 (state.prepend_state).
"""
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..state import ScanState, combine, combine_readout, no_autocast, prepend_state, rescale, safe_max

DEFAULT_CHUNK_SIZE = {"cpu": 16}  # per device type; 64 elsewhere (tensor cores like bigger tiles)
OTHER_CHUNK_SIZE = 64


def _dense_prefix(states: ScanState) -> ScanState:
    """Inclusive ⊕-prefix along the last axis by one L×L matmul. m, c (..., L); a (..., L, D)."""
    length = states.m.shape[-1]
    m_prefix = torch.cummax(states.m, dim=-1).values  # (..., L)   M_k
    later = torch.ones(length, length, dtype=torch.bool, device=states.m.device).triu(1)  # [k, i]: i > k
    exponent = states.m.unsqueeze(-2) - safe_max(m_prefix).unsqueeze(-1)  # (..., L_k, L_i)
    weights = torch.exp(exponent.masked_fill(later, float("-inf")))  # E
    c = (weights @ states.c.unsqueeze(-1)).squeeze(-1)  # (..., L)
    return ScanState(m_prefix, c, weights @ states.a)  # a (..., L, D)


def _chunks(states: ScanState, size: int) -> ScanState:
    """Pad the last axis with identities to a multiple of `size` and fold it to (..., K, size)."""
    pad = -states.m.shape[-1] % size
    m = F.pad(states.m, (0, pad), value=float("-inf"))
    c, a = F.pad(states.c, (0, pad)), F.pad(states.a, (0, 0, 0, pad))
    return ScanState(m.unflatten(-1, (-1, size)), c.unflatten(-1, (-1, size)), a.unflatten(-2, (-1, size)))


def _entering(local: ScanState, size: int) -> ScanState:
    """The state entering each chunk (exclusive prefix of the chunk summaries), shaped to broadcast on rows."""
    summaries = ScanState(local.m[..., -1], local.c[..., -1], local.a[..., -1, :])  # (..., K)
    inclusive = prefix_scan(summaries, size)
    m = F.pad(inclusive.m[..., :-1], (1, 0), value=float("-inf"))  # chunk 0 starts from the identity
    c, a = F.pad(inclusive.c[..., :-1], (1, 0)), F.pad(inclusive.a[..., :-1, :], (0, 0, 1, 0))
    return ScanState(m.unsqueeze(-1), c.unsqueeze(-1), a.unsqueeze(-2))


def prefix_scan(states: ScanState, size: int) -> ScanState:
    """Inclusive ⊕-prefix along the last axis, O(L·size) work in log_size(L) levels."""
    length, size = states.m.shape[-1], max(size, 2)  # size 1 would never shrink the problem
    if length <= size:
        return _dense_prefix(states)
    local = _dense_prefix(_chunks(states, size))  # (..., K, size)
    rows = combine(_entering(local, size), local)
    return ScanState(rows.m.flatten(-2)[..., :length], rows.c.flatten(-2)[..., :length],
                     rows.a.flatten(-3, -2)[..., :length, :])


def _rows(tokens: ScanState, size: int):
    """Every row's output and (m, c): tokens (..., N) → o (..., N, D), m, c (..., N)."""
    n = tokens.m.shape[-1]
    local = _dense_prefix(_chunks(tokens, size))  # (..., K, C)
    entering = _entering(local, size)  # (..., K, 1)
    o = combine_readout(entering, local).flatten(-3, -2)[..., :n, :]
    m = torch.maximum(entering.m, local.m)  # the rows' (m, c) of entering ⊕ local, without their (..., D) part
    c = entering.c * rescale(entering.m, m) + local.c * rescale(local.m, m)
    return o, m.flatten(-2)[..., :n], c.flatten(-2)[..., :n]


class _ChunkedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, values, mask, size):
        """scores (..., N) finite, values (..., N, D) zero where masked, mask (..., N) | None → o, final m, c, a."""
        masked = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
        ones = torch.ones_like(scores) if mask is None else mask.to(scores.dtype)
        o, m, c = _rows(ScanState(masked, ones, values), size)  # tokens (s_i, 1, v_i), the identity if masked
        lse = m + torch.log(c)  # (..., N), −inf on an empty prefix
        final_m, final_c = m[..., -1], c[..., -1]
        ctx.save_for_backward(masked, values, o, lse, final_c)
        ctx.size = size
        ctx.mark_non_differentiable(final_m)
        ctx.set_materialize_grads(False)  # None for unused outputs: no final-state element to append then
        return o, final_m, final_c, final_c.unsqueeze(-1) * o[..., -1, :]

    @staticmethod
    @once_differentiable
    def backward(ctx, do, _dm, dc, da):
        masked, values, o, lse, final_c = ctx.saved_tensors
        with no_autocast(lse.device):
            do = torch.zeros_like(o) if do is None else do
            empty = lse == float("-inf")  # an empty prefix: nothing before it is valid either, p = 0 there
            key = (-lse).masked_fill(empty, float("-inf"))  # (..., N)
            g, h = do.masked_fill(empty.unsqueeze(-1), 0.0), (do * o).sum(-1).masked_fill(empty, 0.0)
            if dc is not None or da is not None:  # the final state's gradients, as element N
                da = torch.zeros_like(o[..., -1, :]) if da is None else da
                dc = torch.zeros_like(final_c) if dc is None else dc
                key = torch.cat([key, key[..., -1:]], -1)
                g = torch.cat([g, (final_c.unsqueeze(-1) * da).unsqueeze(-2)], -2)
                h = torch.cat([h, (-final_c * dc).unsqueeze(-1)], -1)
            suffix = prefix_scan(ScanState(key.flip(-1), h.flip(-1), g.flip(-2)), ctx.size)  # reversed ⊕-prefix
            n = lse.shape[-1]
            scale = torch.exp(lse + suffix.m.flip(-1)[..., :n]).masked_fill(empty, 0.0)  # e^{lse_j − max_k −lse_k}
            big_g = suffix.a.flip(-2)[..., :n, :] * scale.unsqueeze(-1)  # (..., N, D)  G_j
            big_h = suffix.c.flip(-1)[..., :n] * scale  # (..., N)  H_j
            p = torch.exp(masked - lse.masked_fill(empty, 0.0))  # (..., N) e^{s_j − lse_j}; 0 where masked
            dv = p.unsqueeze(-1) * big_g
            ds = (values * dv).sum(-1) - p * big_h
        return ds, dv, None, None


def chunked_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None,
                 chunk_size: int | None = None):
    """scores (..., N), values (..., N, D), mask (..., N) | None, state | None → (o (..., N, D), final state)."""
    size = chunk_size or DEFAULT_CHUNK_SIZE.get(scores.device.type, OTHER_CHUNK_SIZE)
    if state is not None:  # continue from it: it becomes token 0
        o, final = chunked_scan(*prepend_state(state, scores, values, mask), None, chunk_size=size)
        return o[..., 1:, :], final
    o, m, c, a = _ChunkedScan.apply(scores, values, mask, size)
    return o, ScanState(m, c, a)
