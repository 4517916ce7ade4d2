"""Chunked scan: O(N·C) work as dense C×C matmuls (BLAS / tensor cores), recursing over chunk summaries.

Tokens are states too: token i is (m_i, c_i, a_i) = (s_i, 1, v_i), or the identity (−inf, 0, 0) if masked.
The inclusive ⊕-prefix of L states inside one chunk is dense: with M_k = max_{i≤k} m_i,
    E[k, i] = e^{m_i − M_k} for i ≤ k, else 0          (C × C, every exponent ≤ 0: no overflow, and
    c_k = Σ_i E[k, i] c_i,   a_k = Σ_i E[k, i] a_i       the row's own max gives weight 1: no underflow)
which is §3.2's (m, u, w) recurrence summed in closed form. Split N tokens into N/C chunks, take each chunk's
last row as its summary, get the state entering every chunk from the prefix of the summaries — the same
computation one level up, recursively — and fold it into each row with one more ⊕. The max m is a constant
(stop-gradient, see state.py): gradients reach scores through c_i = e^{s_i − sg(s_i)} and values through a_i,
so E itself needs no backward pass.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from ..state import ScanState, combine, combine_readout, safe_max, token_state

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


def chunked_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None,
                 chunk_size: int | None = None):
    """scores (..., N), values (..., N, D), mask (..., N) | None, state | None → (o (..., N, D), final state)."""
    size = chunk_size or DEFAULT_CHUNK_SIZE.get(scores.device.type, OTHER_CHUNK_SIZE)
    n = scores.shape[-1]
    states = token_state(scores, values, mask)  # (..., N)
    first = 0 if state is None else 1  # a given state goes first, as element 0: the prefix continues from it
    if state is not None:
        states = ScanState(torch.cat([state.m.unsqueeze(-1), states.m], dim=-1),  # (..., N+1)
                           torch.cat([state.c.unsqueeze(-1), states.c], dim=-1),
                           torch.cat([state.a.unsqueeze(-2), states.a], dim=-2))  # (..., N+1, D)
    local = _dense_prefix(_chunks(states, size))  # (..., K, C)
    entering = _entering(local, size)  # (..., K, 1)
    o = combine_readout(entering, local).flatten(-3, -2)[..., first:n + first, :]  # (..., N, D)
    j, r = (n + first - 1) // size, (n + first - 1) % size  # the last element's chunk and row
    final = combine(ScanState(entering.m[..., j, 0], entering.c[..., j, 0], entering.a[..., j, 0, :]),
                    ScanState(local.m[..., j, r], local.c[..., j, r], local.a[..., j, r, :]))
    return o, final
