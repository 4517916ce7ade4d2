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
import contextlib
import copy
from typing import NamedTuple

import torch
from torch import Tensor


class ScanState(NamedTuple):
    m: Tensor  # (...,)   running max of scores, −inf where no valid token was seen
    c: Tensor  # (...,)   Σ e^{s_i − m}
    a: Tensor  # (..., D) Σ e^{s_i − m} v_i

    def detach(self) -> "ScanState":
        """The same state cut from the autograd graph (truncated back-propagation through time)."""
        return ScanState(*(x.detach() for x in self))

    def to(self, *args, **kwargs) -> "ScanState":
        """Every field through `Tensor.to(*args, **kwargs)`: a device, a dtype, or both."""
        return ScanState(*(x.to(*args, **kwargs) for x in self))

    def reset(self, streams: Tensor) -> "ScanState":
        """A new state with the streams where `streams` is True back at the identity (−inf, 0, 0).

        streams: bool of the batch shape of m, or of a leading part of it: (B,) resets every head of the
        episodes that ended in a (B, H) state. The other streams are unchanged (and keep their gradients).
        """
        batch = self.m.shape
        if not isinstance(streams, Tensor) or streams.dtype != torch.bool or streams.shape != batch[:streams.dim()]:
            got = f"{getattr(streams, 'dtype', type(streams).__name__)} {tuple(getattr(streams, 'shape', ()))}"
            raise ValueError(f"ScanState.reset: streams must be a bool tensor (True = reset that stream) of the "
                             f"state's batch shape {tuple(batch)} or a leading part of it, got {got}")
        fresh = streams.reshape(*streams.shape, *(1,) * (len(batch) - streams.dim()))  # broadcasts over (...)
        return ScanState(self.m.masked_fill(fresh, float("-inf")), self.c.masked_fill(fresh, 0.0),
                         self.a.masked_fill(fresh.unsqueeze(-1), 0.0))

    def __deepcopy__(self, memo) -> "ScanState":
        """Independent copies of the fields. torch deep-copies only graph leaves, so a state computed with
        gradients (not a leaf) is copied detached from the graph."""
        return ScanState(*(copy.deepcopy(x, memo) if x.is_leaf else x.detach().clone() for x in self))


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


def or_empty(state: ScanState | None, scores: Tensor, values: Tensor) -> ScanState:
    """`state`, or the identity state for the streams of scores (..., N) and values (..., N, D) when it is None."""
    if state is not None:
        return state
    return init_state(scores.shape[:-1], values.shape[-1], device=scores.device, dtype=scores.dtype)


def prepend_state(state: ScanState, scores: Tensor, values: Tensor, mask: Tensor | None):
    """A given state as token 0 of scores (..., N), values (..., N, D), mask (..., N) | None → N + 1 tokens and
    their mask: score m + log c and value a / c weigh every later prefix exactly as (m, c, a) does, and carry the
    gradients into c and a (m is stop-gradient)."""
    seen = (state.c > 0) & (state.m > float("-inf"))  # (...,) the identity state is a masked token
    c_safe = torch.where(seen, state.c, torch.ones_like(state.c))
    s0 = torch.where(seen, state.m.detach() + torch.log(c_safe), 0.0)
    v0 = torch.where(seen.unsqueeze(-1), state.a / c_safe.unsqueeze(-1), 0.0)  # a masked token's value is 0
    mask = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask
    return (torch.cat([s0.unsqueeze(-1), scores], -1), torch.cat([v0.unsqueeze(-2), values], -2),
            torch.cat([seen.unsqueeze(-1), mask], -1))


def safe_max(m: Tensor) -> Tensor:
    """m with −inf (an empty prefix) raised to the dtype's lowest finite value: e^{−inf − safe_max(m)} = 0, no NaN.

    One clamp where `where(isfinite(m), m, 0)` took three ops; m is never +inf (scan and step refuse it).
    """
    return m.clamp_min(torch.finfo(m.dtype).min)


def no_autocast(device: torch.device):
    """A context that switches autocast off on `device`: the scan accumulates in its own dtype (fp32 or fp64)."""
    kind = device.type
    return torch.autocast(kind, enabled=False) if torch.amp.is_autocast_available(kind) else contextlib.nullcontext()


def tracing() -> bool:
    """True while torch.jit.trace, torch.compile or torch.export record the computation (no data-dependent checks)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


MASK_POLARITY = ("True = valid token (False = ignored: the opposite of nn.MultiheadAttention's key_padding_mask, "
                 "where True = ignore)")


def valid_tokens(scores: Tensor, mask: Tensor | None, *, who: str) -> Tensor | None:
    """The tokens that take part: `mask` (True = valid) without the −inf scores, which softmax gives weight 0.

    scores (...), mask (...) bool | None → (...) bool, or None when every token is valid. A NaN or +inf score at
    a valid position has no softmax weight: ValueError naming `who` (in eager mode; while tracing, compiling or
    exporting there is no data-dependent check, and such a score makes outputs NaN: from it on, as softmax's,
    and with the chunked backend possibly earlier ones of its chunk too).
    """
    if tracing():
        finite_or_masked = scores != float("-inf")
        return finite_or_masked if mask is None else finite_or_masked & mask
    finite = torch.isfinite(scores)
    if bool(finite.all()):
        return mask
    valid = scores != float("-inf")  # NaN and +inf stay "valid": they are the errors
    if mask is not None:
        valid = valid & mask
    bad = valid & ~finite
    if bool(bad.any()):
        index = tuple(bad.nonzero()[0].tolist())
        raise ValueError(f"{who} must be finite or −inf (= a masked token) where the mask is True, got "
                         f"{scores[index].item()} at index {index}; mask that token ({MASK_POLARITY}) or give it "
                         f"the score −inf")
    return valid


def rescale(m_from: Tensor, m_to: Tensor) -> Tensor:
    """e^{m_from − m_to}, taken as 0 where m_from = −inf (also when m_to = −inf: an empty prefix)."""
    return torch.exp(m_from - safe_max(m_to))


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

    state: ScanState with m, c (...), a (..., D); s_t (...); v_t (..., D); mask_t (...) bool, True = valid token
    (the opposite of nn.MultiheadAttention's key_padding_mask). A masked step, or one with s_t = −inf, leaves the
    state unchanged and returns the current output; its v_t takes no part (even NaN). A NaN or +inf s_t at a
    valid step raises ValueError (eager mode).
    """
    if s_t.shape != state.m.shape or v_t.shape != state.a.shape:
        raise ValueError(
            f"step: s_t {tuple(s_t.shape)} / v_t {tuple(v_t.shape)} do not match the state "
            f"(m {tuple(state.m.shape)}, a {tuple(state.a.shape)})")
    if mask_t is not None and (mask_t.dtype != torch.bool or mask_t.shape != s_t.shape):
        raise ValueError(f"step: mask_t must be a bool tensor of shape {tuple(s_t.shape)}, {MASK_POLARITY}")
    acc, out_dtype = state.a.dtype, v_t.dtype
    s_t, v_t = s_t.to(acc), v_t.to(acc)
    valid = valid_tokens(s_t, mask_t, who="step: s_t")
    if valid is not None:  # a masked (or −inf) token takes no weight, and its value no part (even a NaN)
        s_t, v_t = s_t.masked_fill(~valid, float("-inf")), v_t.masked_fill(~valid.unsqueeze(-1), 0.0)
    # combine(state, token_state(s_t, v_t, mask_t)) fused for the hot streaming loop (same values and gradients,
    # ~1/3 of the ops): m is a constant (stop-gradient), so e^{s_t − m} carries ∂/∂s_t as token_state's c does
    m = torch.maximum(state.m, s_t.detach())
    m_safe = safe_max(m)  # empty prefix and masked token: both weights 0
    w_state, w_token = torch.exp(state.m - m_safe), torch.exp(s_t - m_safe)
    c = state.c * w_state + w_token
    a = state.a * w_state.unsqueeze(-1) + w_token.unsqueeze(-1) * v_t
    state = ScanState(m, c, a)
    return readout(state).to(out_dtype), state


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
