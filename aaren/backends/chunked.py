"""Chunked scan: O(N·C) work, dense C×C weights inside a chunk, a ⊕-scan over chunk summaries between chunks.

Split the N tokens into N/C chunks of C. Inside a chunk, with the per-row running max
m_k = max_{i≤k} s_i (so every row has a weight e^0 = 1 and c_k ≥ 1: no underflow, §3.1's role of m),
    W[k, i] = e^{s_i − m_k} for i ≤ k, else 0        (C × C, one matmul with V on BLAS / tensor cores)
    c_k = Σ_i W[k, i],   a_k = Σ_i W[k, i] v_i
The last row of a chunk is its summary (m, c, a). An exclusive ⊕-scan over summaries (Hillis–Steele on N/C
elements) gives the state entering each chunk, which one more ⊕ folds into every row: o_k = a_k / c_k.
"""
import torch
from torch import Tensor

from ..state import ScanState, combine_readout
from .hillis_steele import inclusive_scan

DEFAULT_CHUNK_SIZE = {"cpu": 16}  # per device type; 64 elsewhere (tensor cores like bigger tiles)
OTHER_CHUNK_SIZE = 64


def chunked_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState,
                 chunk_size: int | None = None):
    """scores (..., N), values (..., N, D), mask (..., N) | None → (o (..., N, D), final state)."""
    size = chunk_size or DEFAULT_CHUNK_SIZE.get(scores.device.type, OTHER_CHUNK_SIZE)
    *batch, n = scores.shape
    d = values.shape[-1]
    n_chunks = -(-n // size)
    pad = n_chunks * size - n
    if pad:  # padded tail positions are masked: they take no weight
        scores = torch.nn.functional.pad(scores, (0, pad))
        values = torch.nn.functional.pad(values, (0, 0, 0, pad))
        mask = torch.ones_like(scores[..., :n], dtype=torch.bool) if mask is None else mask
        mask = torch.nn.functional.pad(mask, (0, pad), value=False)

    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    if mask is not None:
        scores = torch.where(mask, scores, neg_inf)  # a masked token has e^{s} = 0
    s = scores.reshape(*batch, n_chunks, size)  # (..., K, C)
    v = values.reshape(*batch, n_chunks, size, d)  # (..., K, C, D)
    m_row = torch.cummax(s.detach(), dim=-1).values  # (..., K, C) running max inside the chunk
    m_row_safe = torch.where(torch.isfinite(m_row), m_row, torch.zeros_like(m_row))

    causal = torch.ones(size, size, dtype=torch.bool, device=s.device).tril()  # [k, i]: i ≤ k
    exponent = s.unsqueeze(-2) - m_row_safe.unsqueeze(-1)  # (..., K, C_k, C_i)
    # mask before exp: e^{+large} above the diagonal would poison the backward pass with inf·0
    weights = torch.exp(torch.where(causal, exponent, neg_inf))
    local = ScanState(m_row, weights.sum(-1), weights @ v)  # c (..., K, C), a (..., K, C, D)

    # prepend the incoming state: scanning [state, S_0, …, S_{K−1}] gives, at j, the state entering chunk j
    # (state ⊕ S_0 ⊕ … ⊕ S_{j−1}) and, at K, the final state
    summaries = ScanState(
        torch.cat([state.m.unsqueeze(-1), local.m[..., -1]], dim=-1),  # (..., K+1)
        torch.cat([state.c.unsqueeze(-1), local.c[..., -1]], dim=-1),
        torch.cat([state.a.unsqueeze(-2), local.a[..., -1, :]], dim=-2),  # (..., K+1, D)
    )
    prefix = inclusive_scan(summaries)
    entering = ScanState(prefix.m[..., :-1, None], prefix.c[..., :-1, None], prefix.a[..., :-1, None, :])
    rows = combine_readout(entering, local)  # (..., K, C, D): each row continued from the state entering its chunk
    o = rows.reshape(*batch, n_chunks * size, d)[..., :n, :]
    final = ScanState(prefix.m[..., -1], prefix.c[..., -1], prefix.a[..., -1, :])
    return o, final
