"""The paper's parallel prefix scan (§3.2): Hillis–Steele over (m, u, w) with the operator ⊕.

log2(N) rounds; round r combines every element with the one 2^r places earlier. O(N log N) work.
"""
import torch
from torch import Tensor

from ..state import ScanState, combine, combine_readout, or_empty, token_state


def inclusive_scan(elements: ScanState) -> ScanState:
    """Inclusive ⊕-prefix over the last axis of m, c (..., N) and the second-to-last of a (..., N, D)."""
    m, c, a = elements
    n, offset = m.shape[-1], 1
    while offset < n:
        # shifted[k] = elements[k − offset], the identity (−inf, 0, 0) where k < offset
        shifted = ScanState(
            torch.cat([torch.full_like(m[..., :offset], float("-inf")), m[..., :-offset]], dim=-1),
            torch.cat([torch.zeros_like(c[..., :offset]), c[..., :-offset]], dim=-1),
            torch.cat([torch.zeros_like(a[..., :offset, :]), a[..., :-offset, :]], dim=-2),
        )
        m, c, a = combine(shifted, ScanState(m, c, a))
        offset *= 2
    return ScanState(m, c, a)


def hillis_steele_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None):
    """scores (..., N), values (..., N, D), mask (..., N) | None → (o (..., N, D), final state)."""
    state = or_empty(state, scores, values)
    prefix = inclusive_scan(token_state(scores, values, mask))
    start = ScanState(state.m.unsqueeze(-1), state.c.unsqueeze(-1), state.a.unsqueeze(-2))
    last = ScanState(prefix.m[..., -1:], prefix.c[..., -1:], prefix.a[..., -1:, :])
    final = combine(start, last)  # continue from the given state
    final = ScanState(final.m[..., 0], final.c[..., 0], final.a[..., 0, :])
    return combine_readout(start, prefix), final
