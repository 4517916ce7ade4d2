"""The recurrent state of attention-as-an-RNN (paper §3.1) and the associative operator ⊕ of §3.2.

For scores s_i = q·k_i/√d and values v_i, the state after k tokens is (m_k, c_k, a_k):
    m_k = max_{i≤k} s_i                        running max (−inf before any valid token)
    c_k = Σ_{i≤k} e^{s_i − m_k}                 denominator
    a_k = Σ_{i≤k} e^{s_i − m_k} v_i             numerator
and the output is o_k = a_k / c_k. Two partial states combine with
    (m_A,c_A,a_A) ⊕ (m_B,c_B,a_B) = (m, c_A e^{m_A−m} + c_B e^{m_B−m}, a_A e^{m_A−m} + a_B e^{m_B−m}),
    m = max(m_A, m_B)
and the identity element is (−inf, 0, 0).

The max m only keeps exponents ≤ 0; the output is invariant to it, so m is carried without gradient
(the same stop-gradient FlashAttention uses). Gradients flow through c and a exactly.
"""
from typing import NamedTuple

import torch
from torch import Tensor


class ScanState(NamedTuple):
    m: Tensor  # (...,)   running max of scores, −inf where no valid token was seen
    c: Tensor  # (...,)   Σ e^{s_i − m}
    a: Tensor  # (..., D) Σ e^{s_i − m} v_i


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp16/bf16 inputs accumulate in fp32; fp32 and fp64 keep their precision."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def init_state(batch_shape, d: int, *, device=None, dtype=torch.float32) -> ScanState:
    """The identity state (m=−inf, c=0, a=0) for streams of shape `batch_shape` and value width `d`."""
    batch_shape = tuple(torch.Size(batch_shape) if not isinstance(batch_shape, int) else (batch_shape,))
    if not isinstance(d, int) or d < 1:
        raise ValueError(f"init_state: d must be a positive int, got {d!r}")
    dtype = accumulation_dtype(dtype)
    return ScanState(
        m=torch.full(batch_shape, float("-inf"), device=device, dtype=dtype),
        c=torch.zeros(batch_shape, device=device, dtype=dtype),
        a=torch.zeros(*batch_shape, d, device=device, dtype=dtype),
    )


def rescale(m_from: Tensor, m_to: Tensor) -> Tensor:
    """e^{m_from − m_to}, taken as 0 where m_from = −inf (also when m_to = −inf: an empty prefix)."""
    m_to_safe = torch.where(torch.isfinite(m_to), m_to, torch.zeros_like(m_to))
    return torch.exp(m_from - m_to_safe)


def combine(left: ScanState, right: ScanState) -> ScanState:
    """The associative (and commutative) operator ⊕ of §3.2; broadcasts over leading dims."""
    m = torch.maximum(left.m, right.m)
    w_left, w_right = rescale(left.m, m), rescale(right.m, m)
    c = left.c * w_left + right.c * w_right
    a = left.a * w_left.unsqueeze(-1) + right.a * w_right.unsqueeze(-1)
    return ScanState(m, c, a)


def combine_readout(left: ScanState, right: ScanState) -> Tensor:
    """readout(left ⊕ right) without materialising the combined numerator: a_L (w_L/c) + a_R (w_R/c).

    The fast paths use it for their last step: one multiply-add on the big (..., D) tensors, no division.
    """
    m = torch.maximum(left.m, right.m)
    w_left, w_right = rescale(left.m, m), rescale(right.m, m)
    c = left.c * w_left + right.c * w_right
    inv_c = torch.where(c > 0, c, torch.ones_like(c)).reciprocal()  # empty prefix: a = 0, so o = 0
    return left.a * (w_left * inv_c).unsqueeze(-1) + right.a * (w_right * inv_c).unsqueeze(-1)


def token_state(scores: Tensor, values: Tensor, mask: Tensor | None) -> ScanState:
    """One token as a state: (s, 1, v) — or the identity (−inf, 0, 0) where masked.

    scores (...), values (..., D), mask (...) bool or None. c = e^{s − sg(s)} equals 1 but carries ∂/∂s.
    """
    s_const = scores.detach()
    c = torch.exp(scores - s_const)
    m = s_const
    if mask is not None:
        m = torch.where(mask, s_const, torch.full_like(s_const, float("-inf")))
        c = torch.where(mask, c, torch.zeros_like(c))
    return ScanState(m, c, c.unsqueeze(-1) * values)


def readout(state: ScanState) -> Tensor:
    """o = a / c, and 0 for an empty prefix (c = 0) — never NaN, in forward or backward."""
    c_safe = torch.where(state.c > 0, state.c, torch.ones_like(state.c))
    return state.a / c_safe.unsqueeze(-1)


def step(state: ScanState, s_t: Tensor, v_t: Tensor, mask_t: Tensor | None = None):
    """One RNN step of §3.1: fold token (s_t, v_t) into `state`; returns (o_t, new_state).

    state: ScanState with m, c (...), a (..., D); s_t (...); v_t (..., D); mask_t (...) bool, True = valid.
    A masked step leaves the state unchanged and returns the current output.
    """
    if s_t.shape != state.m.shape or v_t.shape != state.a.shape:
        raise ValueError(
            f"step: s_t {tuple(s_t.shape)} / v_t {tuple(v_t.shape)} do not match the state "
            f"(m {tuple(state.m.shape)}, a {tuple(state.a.shape)})")
    if mask_t is not None and (mask_t.dtype != torch.bool or mask_t.shape != s_t.shape):
        raise ValueError(f"step: mask_t must be a bool tensor of shape {tuple(s_t.shape)}")
    acc = state.a.dtype
    s_t, v_out = s_t.to(acc), v_t
    if mask_t is not None:
        s_t = torch.where(mask_t, s_t, float("-inf"))  # a masked token takes no weight
    # combine(state, token_state(s_t, v_t, mask_t)) fused for the hot streaming loop (same values and gradients,
    # ~1/3 of the ops): m is a constant (stop-gradient), so e^{s_t − m} carries ∂/∂s_t as token_state's c does
    m = torch.maximum(state.m, s_t.detach())
    m_safe = torch.where(m == float("-inf"), 0.0, m)  # empty prefix and masked token: both weights 0
    w_state, w_token = torch.exp(state.m - m_safe), torch.exp(s_t - m_safe)
    c = state.c * w_state + w_token
    a = state.a * w_state.unsqueeze(-1) + w_token.unsqueeze(-1) * v_t.to(acc)
    state = ScanState(m, c, a)
    return readout(state).to(v_out.dtype), state


def state_nbytes(state) -> int:
    """Bytes held by a state: a ScanState, a KV cache, or any nesting of lists/tuples/dicts of them."""
    if isinstance(state, Tensor):
        return state.numel() * state.element_size()
    if hasattr(state, "nbytes") and not isinstance(state, (tuple, list, dict)):
        return int(state.nbytes)
    if isinstance(state, dict):
        return sum(state_nbytes(v) for v in state.values())
    if isinstance(state, (tuple, list)):
        return sum(state_nbytes(v) for v in state)
    if state is None:
        return 0
    raise TypeError(f"state_nbytes: cannot size an object of type {type(state).__name__}")
