"""`aaren.scan`: the many-to-many attention-as-RNN output of §3.2, behind one function with four backends."""
import torch
from torch import Tensor

from .backends import BACKENDS
from .state import ScanState, accumulation_dtype, init_state


def _check(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None) -> None:
    for name, x in (("scores", scores), ("values", values)):
        if not isinstance(x, Tensor):
            raise ValueError(f"scan: {name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"scan: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if scores.dim() < 1:
        raise ValueError("scan: scores must have shape (..., N), got a 0-d tensor")
    if values.dim() != scores.dim() + 1 or values.shape[:-1] != scores.shape:
        raise ValueError(f"scan: values must have shape scores.shape + (D,) = {tuple(scores.shape)} + (D,), "
                         f"got {tuple(values.shape)}")
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise ValueError("scan: mask must be a bool tensor (True = valid token)")
        if mask.shape != scores.shape:
            raise ValueError(f"scan: mask must have the shape of scores {tuple(scores.shape)}, "
                             f"got {tuple(mask.shape)}")
    if state is not None:
        batch, d = scores.shape[:-1], values.shape[-1]
        if not isinstance(state, ScanState):
            raise ValueError("scan: state must be an aaren.ScanState (m, c, a)")
        try:
            torch.broadcast_shapes(state.m.shape, batch)
            torch.broadcast_shapes(state.a.shape, (*batch, d))
        except RuntimeError:
            raise ValueError(f"scan: state (m {tuple(state.m.shape)}, a {tuple(state.a.shape)}) does not fit "
                             f"batch shape {tuple(batch)} and value width {d}") from None


def scan(scores: Tensor, values: Tensor, mask: Tensor | None = None, *, backend: str = "auto",
         state: ScanState | None = None, return_state: bool = False, chunk_size: int | None = None):
    """Prefix softmax attention: o_k = Σ_{i≤k} softmax(s_1..s_k)_i v_i for every k (paper §3.2).

    Args:
        scores: (..., N) attention scores s_i = q·k_i/√d of one query against N keys.
        values: (..., N, D) the values v_i.
        mask: (..., N) bool, True = valid token; masked tokens take no weight. A prefix without a valid
            token returns 0 (never NaN, forward or backward). Left and right padding both work.
        backend: "naive" (the sequential RNN of §3.1, the reference), "hillis_steele" (the paper's parallel
            prefix scan), "chunked" (O(N) work, dense chunks on BLAS), "triton" (the chunked scan fused in
            Triton kernels; CUDA, or CPU under TRITON_INTERPRET=1; needs triton; no gradient into `state`;
            opt-in: tested in Triton's interpreter, not yet measured on a GPU), or "auto" (= "chunked").
        state: a ScanState to continue from (e.g. the end of the previous chunk of a stream); default: empty.
        return_state: also return the final ScanState, to continue with `scan` or `step`.
        chunk_size: chunk length C of the chunked backend (default 16 on CPU, 64 on GPU) or of the triton
            backend (a power of two ≥ 16, default 64).

    Returns:
        o: (..., N, D) in the dtype of `values` (fp16/bf16 accumulate in fp32); with return_state, (o, state).
    """
    _check(scores, values, mask, state)
    name = "chunked" if backend == "auto" else backend
    if name not in BACKENDS:
        raise ValueError(f"scan: backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"scan: chunk_size must be a positive int, got {chunk_size!r}")
    acc = accumulation_dtype(torch.promote_types(scores.dtype, values.dtype))
    batch, d = scores.shape[:-1], values.shape[-1]
    if state is None:
        state = init_state(batch, d, device=scores.device, dtype=acc)
    else:
        state = ScanState(state.m.to(acc).expand(batch), state.c.to(acc).expand(batch),
                          state.a.to(acc).expand(*batch, d))
    if scores.shape[-1] == 0:
        o = values.new_zeros(values.shape)
        return (o, state) if return_state else o
    kwargs = {"chunk_size": chunk_size} if name in ("chunked", "triton") else {}
    o, final = BACKENDS[name](scores.to(acc), values.to(acc), mask, state, **kwargs)
    o = o.to(values.dtype)
    return (o, final) if return_state else o
