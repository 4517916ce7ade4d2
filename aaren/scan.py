"""`aaren.scan`: the many-to-many attention-as-RNN output of §3.2, behind one function with five backends."""
import torch
from torch import Tensor

from .backends import BACKENDS
from .state import MASK_POLARITY, ScanState, accumulation_dtype, init_state, no_autocast, valid_tokens

DENSE_MAX_LENGTH = 64  # "auto" takes the dense path up to here: faster than chunked on this project's CPU at every
# paper shape with N ≤ 64 (DT N = 60, classification N = 29), slower from N = 96 (scripts/bench_scan.py --paper)


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
            raise ValueError(f"scan: mask must be a bool tensor ({MASK_POLARITY}), got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)}")
        try:
            fits = torch.broadcast_shapes(mask.shape, scores.shape) == scores.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"scan: mask must broadcast to the shape of scores {tuple(scores.shape)} "
                             f"({MASK_POLARITY}), got {tuple(mask.shape)}")
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


def _pick(backend: str, n, state: ScanState | None) -> str:
    """"auto": dense for a short sequence from the empty state, else chunked; the name otherwise."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"scan: backend must be one of {['auto', *BACKENDS]}, got {backend!r}")
        return backend
    if isinstance(n, torch.SymInt):  # torch.export with a dynamic N: the chunked scan's chunk count guards on
        return "dense"  # N's range (export then refuses the dynamic dim); dense's shapes do not (O(N²) memory)
    return "dense" if state is None and n <= DENSE_MAX_LENGTH else "chunked"


def scan(scores: Tensor, values: Tensor, mask: Tensor | None = None, *, backend: str = "auto",
         state: ScanState | None = None, return_state: bool = False, chunk_size: int | None = None):
    """Prefix softmax attention: o_k = Σ_{i≤k} softmax(s_1..s_k)_i v_i for every k (paper §3.2).

    Args:
        scores: (..., N) attention scores s_i = q·k_i/√d of one query against N keys. A score of −inf is a
            masked token (softmax gives it weight 0). NaN or +inf at a valid token: ValueError (eager mode;
            under torch.jit.trace / torch.compile / torch.export, unchecked: outputs from it on are NaN).
        values: (..., N, D) the values v_i.
        mask: bool, broadcastable to (..., N) (e.g. (B, 1, N) for (B, H, N) scores). True = VALID token, False =
            ignored: the opposite of nn.MultiheadAttention's key_padding_mask (True = ignore there). Masked
            tokens take no part (a NaN value there does not spread); a prefix without a valid token returns 0
            (never NaN, forward or backward). Left and right padding both work.
        backend: "naive" (the sequential RNN of §3.1, the reference), "hillis_steele" (the paper's parallel
            prefix scan), "chunked" (O(N) work, dense chunks on BLAS), "dense" (one causal N×N softmax with a
            written-out backward; O(N²)), "triton" (the chunked scan fused in Triton
            kernels; CUDA, or CPU under TRITON_INTERPRET=1; needs triton; no gradient into `state`; opt-in:
            tested in Triton's interpreter, not yet measured on a GPU), or "auto" (= "dense" when there is no
            `state` and N ≤ 64, or N is symbolic (torch.export with a dynamic N), else "chunked").
        state: a ScanState to continue from (e.g. the end of the previous chunk of a stream); default: empty.
        return_state: also return the final ScanState, to continue with `scan` or `step`.
        chunk_size: chunk length C of the chunked backend (default 16 on CPU, 64 on GPU) or of the triton
            backend (a power of two ≥ 16, default 64).

    Returns:
        o: (..., N, D) in the dtype of `values`. The body runs with autocast off, in fp32 for fp16/bf16/fp32
        inputs and in fp64 for fp64; with return_state, (o, state).
    """
    _check(scores, values, mask, state)
    n, d = scores.shape[-1], values.shape[-1]
    name = _pick(backend, n, state)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"scan: chunk_size must be a positive int, got {chunk_size!r}")
    acc = accumulation_dtype(torch.promote_types(scores.dtype, values.dtype))
    batch = scores.shape[:-1]
    if state is not None:
        state = ScanState(state.m.to(acc).expand(batch), state.c.to(acc).expand(batch),
                          state.a.to(acc).expand(*batch, d))
    if not isinstance(n, torch.SymInt) and n == 0:
        state = init_state(batch, d, device=scores.device, dtype=acc) if state is None else state
        o = values.new_zeros(values.shape)
        return (o, state) if return_state else o
    with no_autocast(scores.device):
        s, v = scores.to(acc), values.to(acc)
        valid = valid_tokens(s, None if mask is None else mask.expand(scores.shape), who="scan: scores")
        if valid is not None:  # masked tokens take no part: finite scores, zero values (even where they were NaN)
            s, v = s.masked_fill(~valid, 0.0), v.masked_fill(~valid.unsqueeze(-1), 0.0)
        kwargs = ({"chunk_size": chunk_size} if name in ("chunked", "triton") else
                  {"return_state": return_state} if name == "dense" else {})
        o, final = BACKENDS[name](s, v, valid, state, **kwargs)
    o = o.to(values.dtype)
    return (o, final) if return_state else o
