"""backend="triton": the fused kernels against the naive backend (float64), outputs and gradients (fla style).

With a GPU the kernels run compiled on CUDA tensors. Without one they run on CPU in Triton's interpreter, which
triton (and @triton.jit) select from TRITON_INTERPRET at import time: this module sets it when it is the first
to import triton; when something imported triton before (lightning does, in a full test run), the kernel tests
run in a fresh subprocess instead. Chunks of C = 16 (the smallest tl.dot tile) keep the interpreter fast.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

GPU = torch.cuda.is_available()
if not GPU and "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"  # read when triton and aaren's kernels are imported, just below; it stays
    # set for the session, as triton's interpreted language functions expect
pytest.importorskip("triton")
import aaren  # noqa: E402
from aaren.backends.triton_scan import INTERPRETED, fused_scan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "cuda" if GPU else "cpu"
kernels = pytest.mark.skipif(not (GPU or INTERPRETED), reason="triton was imported without TRITON_INTERPRET=1 "
                             "and there is no GPU: test_kernels_in_interpreter_subprocess runs these")
cuda = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")


def _inputs(shape, n, d, *, scale=3.0, seed=0, p_mask=0.0, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*shape, n, generator=g) * scale
    v = torch.randn(*shape, n, d, generator=g)
    mask = torch.rand(*shape, n, generator=g) >= p_mask
    return s.to(device), v.to(device), mask.to(device)


def _run(backend, s, v, mask, state=None, *, seed=0, **kw):
    """o, final state, and the gradients of a random linear loss on o and the final (c, a) w.r.t. s and v."""
    s, v = s.detach().clone().requires_grad_(True), v.detach().clone().requires_grad_(True)
    o, final = aaren.scan(s, v, mask, backend=backend, state=state, return_state=True, **kw)
    g = torch.Generator().manual_seed(seed + 7)
    w_o, w_c, w_a = (torch.randn(x.shape, generator=g, dtype=torch.float64).to(x) for x in (o, final.c, final.a))
    ((o * w_o).sum() + (final.c * w_c).sum() + (final.a * w_a).sum()).backward()
    return o, final, s.grad, v.grad


def _check(s, v, mask=None, state=None, *, chunk=16, tol=1e-5):
    """triton (fp32) against naive on the same inputs in float64: o, final state, ∂/∂scores, ∂/∂values."""
    got = _run("triton", s, v, mask, state, chunk_size=chunk)
    state64 = None if state is None else aaren.ScanState(*(x.double() for x in state))
    want = _run("naive", s.double(), v.double(), mask, state64)
    (o, final, ds, dv), (o_, final_, ds_, dv_) = got, want
    for x, y in ((o, o_), (final.c, final_.c), (final.a, final_.a), (ds, ds_), (dv, dv_)):
        assert torch.isfinite(x).all()
        torch.testing.assert_close(x.double().cpu(), y.cpu(), rtol=tol, atol=tol)
    torch.testing.assert_close(final.m.double().cpu(), final_.m.cpu())
    return got


@kernels
@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 33, 70])
@pytest.mark.parametrize("d", [1, 5])
def test_matches_naive(n, d):
    _check(*_inputs((2, 3), n, d)[:2])


@kernels
@settings(max_examples=15, deadline=None)
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), n=st.integers(1, 60), d=st.integers(1, 20),
       chunk=st.sampled_from([16, 32]), scale=st.sampled_from([0.1, 3.0, 30.0]), p_mask=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**16))
def test_property_random_shapes_and_masks(batch, n, d, chunk, scale, p_mask, seed):
    s, v, mask = _inputs(tuple(batch), n, d, scale=scale, seed=seed, p_mask=p_mask)
    _check(s, v, mask, chunk=chunk)


@kernels
def test_split_over_d_blocks():
    s, v, mask = _inputs((3,), 40, 37, p_mask=0.3)  # D = 37 in three blocks of 16: partial ∂s summed
    state = aaren.init_state((3,), 37, device=DEVICE)
    outs = []
    for block_d in (16, 64):
        s_, v_ = s.clone().requires_grad_(True), v.clone().requires_grad_(True)
        o, _ = fused_scan(s_, v_, mask, state, chunk_size=16, block_d=block_d)
        (o * torch.cos(o)).sum().backward()
        outs.append((o, s_.grad, v_.grad))
    for x, y in zip(*outs):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@kernels
def test_left_right_padding_and_all_masked():
    s, v, _ = _inputs((3,), 40, 4)
    mask = torch.ones(3, 40, dtype=torch.bool, device=DEVICE)
    mask[0, :21] = False  # left padding past the first chunk: two empty chunks' worth of prefix
    mask[1, 25:] = False  # right padding
    mask[2] = False  # nothing valid at all
    o, final, ds, dv = _check(s, v, mask)
    assert torch.all(o[0, :21] == 0) and torch.all(o[2] == 0)
    assert torch.all(ds[~mask] == 0) and torch.all(dv[~mask] == 0)
    assert final.m[2] == float("-inf") and final.c[2] == 0 and torch.all(final.a[2] == 0)


@kernels
def test_extreme_scores():
    s, v, mask = _inputs((2,), 50, 4, scale=1e4, p_mask=0.2)
    s[0, :20] = -1e4  # a long run far below what comes later
    s[1, 30] = 1e4
    _check(s, v, mask)


@kernels
def test_minus_inf_scores_and_nan_values_at_masked_tokens():
    s, v, mask = _inputs((2,), 40, 4, p_mask=0.2)
    s[0, 3] = -float("inf")  # −inf is a masked token, also past the first chunk's left padding
    s[1, :18] = -float("inf")
    v[~mask] = float("nan")  # garbage values where the tokens are masked take no part
    v[0, 3] = float("nan")
    valid = mask & (s > -float("inf"))
    got = _run("triton", s, v, mask, chunk_size=16)
    want = _run("naive", s.double().masked_fill(~valid, 0.0), v.double().nan_to_num(0.0), valid)
    for x, y in zip((got[0], got[1].c, got[1].a, got[2], got[3]), (want[0], want[1].c, want[1].a, want[2], want[3])):
        assert torch.isfinite(x).all()
        torch.testing.assert_close(x.double().cpu(), y.cpu(), rtol=1e-5, atol=1e-5)
    assert torch.all(got[2][~valid] == 0) and torch.all(got[3][~valid] == 0)


@kernels
def test_continue_from_state():
    s, v, mask = _inputs((2,), 45, 6, p_mask=0.2)
    mask[1, :30] = False  # the second stream's first half is empty: its state is the identity
    o1, state = aaren.scan(s[:, :30], v[:, :30], mask[:, :30], backend="triton", chunk_size=16, return_state=True)
    o2, final = aaren.scan(s[:, 30:], v[:, 30:], mask[:, 30:], backend="triton", chunk_size=16, state=state,
                           return_state=True)
    o, whole = aaren.scan(s, v, mask, backend="triton", chunk_size=16, return_state=True)
    torch.testing.assert_close(torch.cat([o1, o2], 1), o, rtol=1e-5, atol=1e-5)
    for x, y in zip(final, whole):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    _check(s[:, 30:], v[:, 30:], mask[:, 30:], state)  # gradients from a given state, against naive


@kernels
def test_bf16_accumulates_in_fp32():
    s, v, mask = _inputs((2,), 40, 8, p_mask=0.2)
    s, v = s.bfloat16(), v.bfloat16()
    o, _, ds, dv = _run("triton", s, v, mask, chunk_size=16)
    assert o.dtype == ds.dtype == dv.dtype == torch.bfloat16
    want = _run("naive", s.double(), v.double(), mask)
    for x, y in zip((o, ds, dv), (want[0], want[2], want[3])):
        torch.testing.assert_close(x.double(), y, rtol=2e-2, atol=2e-2)


def test_refusals():
    s, v, _ = _inputs((2,), 8, 3)
    state = aaren.init_state((2,), 3, device=DEVICE)
    with pytest.raises(ValueError, match="chunked"):
        aaren.scan(s, v, backend="triton", state=aaren.ScanState(state.m, state.c.requires_grad_(True), state.a))
    with pytest.raises(ValueError, match="chunk_size"):
        aaren.scan(s, v, backend="triton", chunk_size=24)
    with pytest.raises(ValueError, match="float32"):
        aaren.scan(s.double(), v.double(), backend="triton")
    if not INTERPRETED:  # compiled kernels refuse CPU tensors with a pointer to the interpreter
        with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
            aaren.scan(s.cpu(), v.cpu(), backend="triton")


@pytest.mark.skipif(GPU or INTERPRETED, reason="the kernel tests run in this process")
def test_kernels_in_interpreter_subprocess():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                            "not subprocess and not without_triton and not gpu_check and not compile"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]  # 5 would mean: no test ran


def test_aaren_imports_without_triton():
    code = ("import sys; sys.modules['triton'] = None\n"  # `import triton` now raises ImportError
            "import torch, aaren\n"
            "from aaren.backends import HAS_TRITON\n"
            "assert not HAS_TRITON and aaren.scan(torch.zeros(2, 5), torch.zeros(2, 5, 3)).shape == (2, 5, 3)\n"
            "try:\n    aaren.scan(torch.zeros(2, 5), torch.zeros(2, 5, 3), backend='triton')\n"
            "except ImportError as e:\n    assert 'triton' in str(e) and 'aaren[gpu]' in str(e), e\n"
            "else:\n    raise AssertionError('no error')\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_gpu_check_script_cpu_parts(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    args = gpu_check.parse_args(["--out", str(tmp_path), "--max-n", "4096"])
    report = gpu_check.Report(args)
    report.run("fake", lambda: {"ms": 1.5})
    report.run("broken", lambda: 1 / 0)  # a failing part is recorded, the script goes on
    path = report.write()
    data = json.loads(Path(path).read_text())
    assert data["results"]["fake"] == {"ms": 1.5} and "ZeroDivisionError" in data["errors"]["broken"]
    assert data["settings"]["max_n"] == 4096


def test_kernels_compile_for_hopper():
    """The interpreter bypasses Triton's compiler: build both kernels for sm_90 (no GPU needed) in a process
    where triton is not in interpreter mode."""
    code = textwrap.dedent("""
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from aaren.backends import triton_scan
        for kernel in (triton_scan._forward_kernel, triton_scan._backward_kernel):
            for block_d, precision in ((32, "ieee"), (16, "tf32x3")):
                constexprs = {"C": 64, "BLOCK_D": block_d, "PRECISION": precision}
                types = {name: "constexpr" if name in constexprs else "i32" if name in ("N", "D") else "*fp32"
                         for name in kernel.arg_names}
                compiled = triton.compile(ASTSource(kernel, types, constexprs), target=GPUTarget("cuda", 90, 32),
                                          options={"num_warps": 8, "enable_fp_fusion": True})
                assert compiled.asm["cubin"]
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=300)


@cuda
@pytest.mark.parametrize("n", [1, 63, 64, 65, 300])
def test_cuda_chunk_64_matches_naive(n):
    s, v, mask = _inputs((2, 3), n, 64, p_mask=0.2)
    mask[0, 0, :40] = False
    _check(s, v, mask, chunk=64)
    s[1] *= 3e3
    _check(s, v, mask, chunk=64)


@cuda
def test_cuda_bf16():
    s, v, mask = _inputs((2, 4), 200, 64)
    o = aaren.scan(s.bfloat16(), v.bfloat16(), mask, backend="triton")
    torch.testing.assert_close(o.double(), aaren.scan(s.bfloat16().double(), v.bfloat16().double(), mask,
                                                      backend="chunked"), rtol=2e-2, atol=2e-2)


@cuda
def test_cuda_autocast_keeps_fp32_accumulation():
    s, v, mask = _inputs((2, 4), 200, 64, p_mask=0.2)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        o = aaren.scan(s, v, mask, backend="triton")
    assert o.dtype == torch.float32
    torch.testing.assert_close(o.double(), aaren.scan(s.double(), v.double(), mask, backend="naive"),
                               rtol=1e-5, atol=1e-5)
