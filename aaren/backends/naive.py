"""The reference: the sequential RNN of §3.1, one token at a time. O(N) steps, O(1) state."""
import torch
from torch import Tensor

from ..state import ScanState, combine, or_empty, readout, token_state


def naive_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None):
    """scores (..., N), values (..., N, D), mask (..., N) | None → (o (..., N, D), final state)."""
    state = or_empty(state, scores, values)
    outputs = []
    for k in range(scores.shape[-1]):
        mask_k = None if mask is None else mask[..., k]
        state = combine(state, token_state(scores[..., k], values[..., k, :], mask_k))
        outputs.append(readout(state))  # o_k = a_k / c_k
    return torch.stack(outputs, dim=-2), state
