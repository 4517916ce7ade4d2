"""Dense single-chunk scan: every prefix softmax at once as one causal N×N weight matrix, with a written-out backward.

For a sequence that fits one chunk, o_k = Σ_{i≤k} P_ki v_i with the prefix softmax of §3.2
    P_ki = e^{s_i − M_k} / Σ_{j≤k} e^{s_j − M_k}   (i ≤ k, valid i; else 0),   M_k = max_{i≤k} s_i
is one masked exp and one matmul W [v | 1] (numerators and denominators l_k = Σ_i W_ki at once, W_ki = P_ki l_k)
— what `chunked` computes for one chunk, in a handful of ops instead of the scan's bookkeeping. Backward
(δ_k = do_k·o_k; the softmax Jacobian summed over the rows k that see token i):
    dv = Pᵀ do,        ds_i = Σ_k P_ki (do_k·v_i − δ_k) = v_i·dv_i − (Pᵀ δ)_i
one matmul Wᵀ ([do | δ] / l), no N×N elementwise pass; a masked token (P_·i = 0) gets zero gradient, and an
empty prefix (a row of zeros) contributes nothing.
The final state is (M_N, c_N, c_N o_N) with c_N = Σ_i e^{s_i − M_N}: the max without gradient as in state.py.
A given initial state enters as token 0 (state.prepend_state).
"""
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..state import ScanState, no_autocast, prepend_state, safe_max


def _prefix_max(scores: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Masked scores (−inf where masked) and their safe running max M_k (lowest finite value for an empty prefix)."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores, safe_max(torch.cummax(scores, dim=-1).values)  # (..., N), (..., N)


class _DensePrefixSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, values, mask):
        """scores (..., N) finite, values (..., N, D), mask (..., N) bool | None → o (..., N, D)."""
        n = scores.shape[-1]
        masked, m_prefix = _prefix_max(scores, mask)
        later = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu(1)  # [k, i]: i > k
        weights = (masked.unsqueeze(-2) - m_prefix.unsqueeze(-1)).masked_fill_(later, float("-inf")).exp_()
        # (..., N_k, N_i) W_ki = e^{s_i − M_k} ≤ 1; the denominator l_k = Σ_i W_ki from the same matmul as W v
        num = weights @ torch.cat([values, torch.ones_like(values[..., :1])], -1)  # (..., N, D + 1)
        inv_total = num[..., -1:].clamp_min(1.0).reciprocal()  # 1/l_k: l_k ≥ 1 (the max's own term), 0 if empty
        o = num[..., :-1] * inv_total  # (..., N, D); P = W / l is never materialised
        ctx.save_for_backward(weights, values, o, inv_total)
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        weights, values, o, inv_total = ctx.saved_tensors
        with no_autocast(do.device):
            do = do.to(values.dtype)
            delta = (do * o).sum(-1, keepdim=True)  # (..., N_k, 1)  δ_k = do_k·o_k
            back = weights.transpose(-1, -2) @ (torch.cat([do, delta], -1) * inv_total)  # Pᵀ [do | δ]
            dv = back[..., :-1]  # (..., N, D)
            ds = (values * dv).sum(-1) - back[..., -1]  # ds_i = v_i·dv_i − (Pᵀδ)_i
        return ds, dv, None


def dense_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None, *,
               return_state: bool = True):
    """scores (..., N), values (..., N, D), mask (..., N) | None, state | None → (o (..., N, D), final state);
    the final state is None unless return_state (it costs a few more ops)."""
    if state is not None:  # rare (the "auto" backend sends a given state to chunked): continue through token 0
        o, final = dense_scan(*prepend_state(state, scores, values, mask), None, return_state=return_state)
        return o[..., 1:, :], final
    o = _DensePrefixSoftmax.apply(scores, values, mask)
    if not return_state:
        return o, None
    masked, m_prefix = _prefix_max(scores.detach(), mask)
    m = m_prefix[..., -1]  # (...,) M_N, the lowest finite value where nothing was valid
    c = torch.exp(scores - scores.detach() + masked - m.unsqueeze(-1)).sum(-1)  # Σ_i e^{s_i − M_N}; ∂ as state.py
    final = ScanState(torch.where(c > 0, m, float("-inf")), c, c.unsqueeze(-1) * o[..., -1, :])
    return o, final
