"""Triton backend: the chunked scan of §3.2 fused into one forward and one backward kernel (optional: needs triton).

Forward, one program per (stream r, block of D): walk the N tokens in chunks of C, carrying the state (m, c, a)
of §3.1 in registers. Inside a chunk, with M_i = max(m, max_{j≤i} s_j) (exact per-row stabilisation),
    W_ij = e^{s_j − M_i} (j ≤ i),   o_i = (a e^{m−M_i} + (W @ v)_i) / (c e^{m−M_i} + Σ_j W_ij)        (tl.dot)
and save lse_i = log(c e^m + Σ_{j≤i} e^{s_j}) (−inf for an empty prefix) for the backward, as its two terms M_i
and log(denominator_i): lse rounded to fp32 would cost e^{s − lse} a relative 1e−3 where |s| ~ 1e4.
Backward, with p_ij = e^{s_j − lse_i} (j ≤ i) and lse non-decreasing in i, in reverse over the chunks:
    G_j = Σ_{i≥j} e^{lse_j − lse_i} do_i,   H_j = Σ_{i≥j} e^{lse_j − lse_i} (do_i·o_i)    (every weight ≤ 1)
    dv_j = e^{s_j − lse_j} G_j,             ds_j = v_j·dv_j − e^{s_j − lse_j} H_j
dense C×C inside a chunk, plus the carry e^{lse_j − lse_k} G_k from the first row k of the next chunk. Gradients
of the final state (c, a) enter as that carry at k = N: G = c_N ∂L/∂a_N, H = −c_N ∂L/∂c_N (m is stop-gradient,
as in state.py). Masked tokens are s = −inf; every e^{−inf − (−inf)} is taken as 0 (safe max = 0). The initial
state gets no gradient: one that requires grad is refused (backend="chunked" back-propagates into it).

Kernels run compiled on CUDA tensors, or in Triton's interpreter on any device (how the tests run them on CPU)
when TRITON_INTERPRET=1 was set before triton was first imported: triton reads it at import, and so does this
module's @triton.jit.
"""
import contextlib

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..state import ScanState, or_empty

DEFAULT_CHUNK_SIZE = 64
PRECISIONS = ("ieee", "tf32x3", "tf32")  # of tl.dot on fp32; "ieee" (exact fp32) is the default


@triton.jit
def _forward_kernel(S, V, M0, C0, A0, OUT, MX, LD, MF, CF, AF, N, D,
                    C: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    """S (R, N), V (R, N, D), state M0, C0 (R,), A0 (R, D) → OUT (R, N, D), lse = MX + LD (R, N), final MF, CF, AF"""
    row, pid_d = tl.program_id(0).to(tl.int64), tl.program_id(1)
    rows = tl.arange(0, C)  # (C,) position i in the chunk
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)  # (BD,)
    col_ok = cols < D
    causal = rows[:, None] >= rows[None, :]  # (C_i, C_j): j ≤ i
    lead = tl.full([C], pid_d, tl.int32) == 0  # (C,) D-block 0 stores lse (a block: the interpreter mistypes
    # `block_mask & scalar_mask` as int32)
    m = tl.load(M0 + row)
    c = tl.load(C0 + row)
    a = tl.load(A0 + row * D + cols, mask=col_ok, other=0.0)  # (BD,)
    for start in range(0, N, C):
        t = start + rows
        ok = t < N
        s = tl.load(S + row * N + t, mask=ok, other=float("-inf"))  # (C,)
        v = tl.load(V + (row * N + t)[:, None] * D + cols[None, :], mask=ok[:, None] & col_ok[None, :], other=0.0)
        big = tl.maximum(tl.max(tl.where(causal, s[None, :], float("-inf")), axis=1), m)  # (C,) M_i
        big_safe = tl.where(big == float("-inf"), 0.0, big)
        w = tl.exp(tl.where(causal, s[None, :] - big_safe[:, None], float("-inf")))  # (C, C) W_ij ≤ 1
        scale = tl.exp(m - big_safe)  # (C,) e^{m − M_i}, 0 for an empty prefix
        num = a[None, :] * scale[:, None] + tl.dot(w, v, input_precision=PRECISION)  # (C, BD)
        den = c * scale + tl.sum(w, axis=1)  # (C,)
        den_safe = tl.where(den > 0, den, 1.0)
        tl.store(OUT + (row * N + t)[:, None] * D + cols[None, :], num / den_safe[:, None],
                 mask=ok[:, None] & col_ok[None, :])
        tl.store(MX + row * N + t, big_safe, mask=ok & lead)
        tl.store(LD + row * N + t, tl.where(den > 0, tl.log(den_safe), float("-inf")), mask=ok & lead)
        last = rows == C - 1  # padded rows repeat the last token's state, so row C−1 is the state after the chunk
        m = tl.max(big, axis=0)
        c = tl.sum(tl.where(last, den, 0.0), axis=0)
        a = tl.sum(tl.where(last[:, None], num, 0.0), axis=0)
    tl.store(MF + row, m, mask=pid_d == 0)
    tl.store(CF + row, c, mask=pid_d == 0)
    tl.store(AF + row * D + cols, a, mask=col_ok)


@triton.jit
def _backward_kernel(S, V, DO, DELTA, MX, LD, G0, H0, DS, DV, N, D,
                     C: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    """DO (R, N, D), DELTA = do·o (R, N), carry G0 (R, D), H0 (R,) → DV (R, N, D), DS (nD, R, N) partial sums."""
    row, pid_d = tl.program_id(0).to(tl.int64), tl.program_id(1)
    rows = tl.arange(0, C)
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < D
    later = rows[:, None] <= rows[None, :]  # (C_j, C_i): i ≥ j
    g = tl.load(G0 + row * D + cols, mask=col_ok, other=0.0)  # (BD,) G at the first row k of the next chunk
    h = tl.load(H0 + row)  # H at k
    mx_k, ld_k = tl.load(MX + row * N + N - 1), tl.load(LD + row * N + N - 1)  # lse_k = mx_k + ld_k: at first
    # the final state's, = lse_{N−1}
    n_chunks = tl.cdiv(N, C)
    for step in range(n_chunks):
        t = (n_chunks - 1 - step) * C + rows
        ok = t < N
        both = ok[:, None] & col_ok[None, :]
        s = tl.load(S + row * N + t, mask=ok, other=float("-inf"))  # (C,)
        mx = tl.load(MX + row * N + t, mask=ok, other=0.0)  # (C,) safe running max M_i
        ld = tl.load(LD + row * N + t, mask=ok, other=float("-inf"))  # (C,) log denominator, −inf if empty
        delta = tl.load(DELTA + row * N + t, mask=ok, other=0.0)  # (C,)
        do = tl.load(DO + (row * N + t)[:, None] * D + cols[None, :], mask=both, other=0.0)  # (C, BD)
        v = tl.load(V + (row * N + t)[:, None] * D + cols[None, :], mask=both, other=0.0)  # (C, BD)
        ld_safe = tl.where(ld == float("-inf"), 0.0, ld)  # lse_i = −inf ⇒ every lse_{j≤i} = −inf: weight 0
        diff = (mx[:, None] - mx[None, :]) + (ld[:, None] - ld_safe[None, :])  # (C_j, C_i) lse_j − lse_i
        e = tl.exp(tl.where(later & ok[None, :], diff, float("-inf")))  # (C, C) E_ji ≤ 1
        carry = tl.exp((mx - mx_k) + (ld - tl.where(ld_k == float("-inf"), 0.0, ld_k)))  # (C,) e^{lse_j − lse_k}
        big_g = tl.dot(e, do, input_precision=PRECISION) + carry[:, None] * g[None, :]  # (C, BD) G_j
        big_h = tl.sum(e * delta[None, :], axis=1) + carry * h  # (C,) H_j
        p = tl.exp((s - mx) - ld_safe)  # (C,) e^{s_j − lse_j}; 0 where masked (s = −inf)
        dv = p[:, None] * big_g
        ds = tl.sum(v * dv, axis=1) - tl.where(pid_d == 0, p * big_h, 0.0)
        tl.store(DV + (row * N + t)[:, None] * D + cols[None, :], dv, mask=both)
        tl.store(DS + (pid_d * tl.num_programs(0) + row) * N + t, ds, mask=ok)
        first = rows == 0
        mx_k, ld_k = tl.sum(tl.where(first, mx, 0.0), axis=0), tl.sum(tl.where(first, ld, 0.0), axis=0)
        g = tl.sum(tl.where(first[:, None], big_g, 0.0), axis=0)
        h = tl.sum(tl.where(first, big_h, 0.0), axis=0)


INTERPRETED = not isinstance(_forward_kernel, triton.runtime.JITFunction)  # TRITON_INTERPRET=1 at import


def _launch(kernel, args, config):
    """kernel[(R, D-blocks)](*args) with config: the constexprs C, BLOCK_D, PRECISION and launch options."""
    device, rows, d = args[0].device, args[0].shape[0], args[-1]
    if device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"scan: backend='triton' runs on CUDA tensors (got {device.type}); elsewhere only in "
                         "Triton's interpreter (TRITON_INTERPRET=1 before triton is imported); or use "
                         "backend='chunked'")
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        kernel[(rows, triton.cdiv(d, config["BLOCK_D"]))](*args, **config)


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, v, m0, c0, a0, config):
        """s (R, N) with −inf where masked, v (R, N, D), state (R,), (R,), (R, D) → o, final m, c, a."""
        r, n, d = v.shape
        o, mx, ld = torch.empty_like(v), s.new_empty(r, n), s.new_empty(r, n)
        m, c, a = s.new_empty(r), s.new_empty(r), v.new_empty(r, d)
        _launch(_forward_kernel, (s, v, m0, c0, a0, o, mx, ld, m, c, a, n, d), config)
        ctx.save_for_backward(s, v, o, mx, ld, c)
        ctx.config = config
        ctx.mark_non_differentiable(m)
        return o, m, c, a

    @staticmethod
    @once_differentiable  # the kernels have no backward of their own: double backward raises instead
    def backward(ctx, do, _dm, dc, da):
        s, v, o, mx, ld, c = ctx.saved_tensors
        (r, n, d), config = v.shape, ctx.config
        do = do.contiguous()
        delta = (do * o).sum(-1)  # (R, N) do_i·o_i, as FlashAttention's backward pre-pass
        ds, dv = s.new_empty(triton.cdiv(d, config["BLOCK_D"]), r, n), torch.empty_like(v)
        g0, h0 = (c.unsqueeze(-1) * da).contiguous(), (-c * dc).contiguous()  # the final state's gradient
        _launch(_backward_kernel, (s, v, do, delta, mx, ld, g0, h0, ds, dv, n, d), config)
        return ds.sum(0), dv, None, None, None, None


def fused_scan(scores: Tensor, values: Tensor, mask: Tensor | None, state: ScanState | None, *,
               chunk_size: int | None = None, block_d: int | None = None, precision: str = "ieee",
               num_warps: int = 8):
    """scores (..., N), values (..., N, D) fp32, mask (..., N) | None → (o (..., N, D), final state).

    chunk_size: C, a power of two ≥ 16 (default 64). block_d: the D columns one program handles, a power of two
    ≥ 16 (default: D rounded up, 16 to 32: no register spills at C = 64 and 8 warps for sm_90 per ptxas; smaller
    means more programs). precision: tl.dot's input_precision. Untuned on a GPU so far: scripts/gpu_check.py
    times the alternatives. Gradients reach scores, values and the final state's c and a, not the initial state.
    """
    state = or_empty(state, scores, values)
    if any(x.requires_grad for x in state):
        raise ValueError("scan: backend='triton' does not back-propagate into the initial state, which requires "
                         "grad here; use backend='chunked' (it does)")
    if scores.dtype != torch.float32 or values.dtype != torch.float32:
        raise ValueError(f"scan: backend='triton' computes in float32 (fp16/bf16 inputs are upcast), "
                         f"got {values.dtype}; use backend='chunked' for float64")
    batch, (n, d) = scores.shape[:-1], values.shape[-2:]
    chunk = chunk_size or DEFAULT_CHUNK_SIZE
    block_d = block_d or min(max(16, triton.next_power_of_2(d)), 32)
    for name, x in (("chunk_size", chunk), ("block_d", block_d)):
        if x < 16 or x & (x - 1):
            raise ValueError(f"scan: backend='triton' needs {name} a power of two ≥ 16, got {x}")
    if precision not in PRECISIONS:
        raise ValueError(f"scan: precision must be one of {PRECISIONS}, got {precision!r}")
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # a masked token takes no weight
    config = {"C": chunk, "BLOCK_D": block_d, "PRECISION": precision, "num_warps": num_warps,
              "enable_fp_fusion": True}  # FMAs; explicit, as triton 3.9 warns that its default will change
    o, m, c, a = _TritonScan.apply(
        scores.reshape(-1, n).contiguous(), values.reshape(-1, n, d).contiguous(), state.m.reshape(-1).contiguous(),
        state.c.reshape(-1).contiguous(), state.a.reshape(-1, d).contiguous(), config)
    return o.reshape(*batch, n, d), ScanState(m.reshape(batch), c.reshape(batch), a.reshape(*batch, d))
