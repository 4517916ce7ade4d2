"""aaren.scan: every backend against the dense reference, outputs and gradients (fla style)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import aaren
from reference import dense_prefix_attention

BACKENDS = ["naive", "hillis_steele", "chunked", "dense"]


def _inputs(shape, n, d, *, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*shape, n, generator=g, dtype=dtype) * scale
    v = torch.randn(*shape, n, d, generator=g, dtype=dtype)
    return s, v


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 63, 64, 65, 100, 129])
def test_matches_dense_reference(backend, n):
    s, v = _inputs((2, 3), n, 5)
    torch.testing.assert_close(aaren.scan(s, v, backend=backend), dense_prefix_attention(s, v))


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), n=st.integers(1, 90), d=st.integers(1, 6),
       chunk=st.integers(1, 40), scale=st.sampled_from([0.1, 3.0, 30.0, 1e4]), p_mask=st.floats(0.0, 0.9),
       seed=st.integers(0, 2**16), backend=st.sampled_from(BACKENDS))
def test_property_random_shapes_masks_and_chunks(batch, n, d, chunk, scale, p_mask, seed, backend):
    s, v = _inputs(tuple(batch), n, d, scale=scale, seed=seed)
    mask = torch.rand(*batch, n, generator=torch.Generator().manual_seed(seed + 1)) >= p_mask
    o = aaren.scan(s, v, mask, backend=backend, chunk_size=chunk if backend == "chunked" else None)
    torch.testing.assert_close(o, dense_prefix_attention(s, v, mask))


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_scores_are_exact(backend):
    s, v = _inputs((2,), 150, 4, scale=1e4)
    s[0, :50] = -1e4  # a long run far below what comes later: e^{s−m} would underflow with m = 0
    s[1, 70] = 1e4
    torch.testing.assert_close(aaren.scan(s, v, backend=backend), dense_prefix_attention(s, v))
    o32 = aaren.scan(s.float(), v.float(), backend=backend)
    torch.testing.assert_close(o32, dense_prefix_attention(s, v).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_left_and_right_padding(backend):
    s, v = _inputs((3,), 20, 4)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[0, :6] = False  # left padding (Decision Transformer)
    mask[1, 14:] = False  # right padding (UEA)
    mask[2, :] = False  # nothing valid at all
    o = aaren.scan(s, v, mask, backend=backend)
    torch.testing.assert_close(o, dense_prefix_attention(s, v, mask))
    assert torch.all(o[0, :6] == 0) and torch.all(o[2] == 0)
    torch.testing.assert_close(o[1, 14:], o[1, 13].expand(6, 4))  # padded tail repeats the last valid output


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_with_masked_prefix(backend):
    s, v = _inputs((2,), 11, 3)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, :3] = False
    mask[1, 5] = False
    s.requires_grad_(True)
    v.requires_grad_(True)
    chunk = 4 if backend == "chunked" else None
    assert torch.autograd.gradcheck(lambda s_, v_: aaren.scan(s_, v_, mask, backend=backend, chunk_size=chunk),
                                    (s, v))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_reference_and_are_finite(backend):
    s, v = _inputs((2, 2), 40, 3, scale=1e4)
    mask = torch.rand(2, 2, 40, generator=torch.Generator().manual_seed(3)) > 0.4
    mask[0, 0, :] = False  # a fully masked stream: zero output, zero gradient, no NaN
    weights = torch.randn(2, 2, 40, 3, dtype=torch.float64)
    grads = []
    for fn in (lambda a, b: aaren.scan(a, b, mask, backend=backend), lambda a, b: dense_prefix_attention(a, b, mask)):
        a, b = s.clone().requires_grad_(True), v.clone().requires_grad_(True)
        (fn(a, b) * weights).sum().backward()
        grads.append((a.grad, b.grad))
    for got, want in zip(*grads):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want)
    assert torch.all(grads[0][0][0, 0] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_continue_from_state_and_step(backend):
    s, v = _inputs((2,), 37, 4)
    full = aaren.scan(s, v, backend=backend)
    o1, state = aaren.scan(s[:, :20], v[:, :20], backend=backend, return_state=True)
    o2, state = aaren.scan(s[:, 20:30], v[:, 20:30], backend=backend, state=state, return_state=True)
    steps = []
    for t in range(30, 37):  # ...then token by token with the RNN of §3.1
        o_t, state = aaren.step(state, s[:, t], v[:, t])
        steps.append(o_t)
    torch.testing.assert_close(torch.cat([o1, o2, torch.stack(steps, 1)], 1), full)


def test_step_from_init_state_equals_scan():
    s, v = _inputs((3,), 12, 2)
    mask = torch.rand(3, 12, generator=torch.Generator().manual_seed(0)) > 0.3
    state = aaren.init_state((3,), 2, dtype=torch.float64)
    outs = []
    for t in range(12):
        o_t, state = aaren.step(state, s[:, t], v[:, t], mask[:, t])
        outs.append(o_t)
    torch.testing.assert_close(torch.stack(outs, 1), aaren.scan(s, v, mask, backend="naive"))
    assert state.m.shape == (3,) and state.a.shape == (3, 2)


def test_state_never_starts_at_zero_max():
    state = aaren.init_state((2,), 3)
    assert torch.all(state.m == float("-inf")) and torch.all(state.c == 0)
    o, _ = aaren.step(state, torch.full((2,), -1e4), torch.ones(2, 3))  # e^{−1e4 − 0} would underflow
    torch.testing.assert_close(o, torch.ones(2, 3))


def test_fp32_long_sequence_100k():
    g = torch.Generator().manual_seed(0)
    n = 100_000
    s = torch.randn(2, n, generator=g, dtype=torch.float64) * 3
    v = torch.randn(2, n, 4, generator=g, dtype=torch.float64)
    shift = s.max(-1, keepdim=True).values  # scores are moderate: one global shift is exact in float64
    e = torch.exp(s - shift)
    want = torch.cumsum(e.unsqueeze(-1) * v, -2) / torch.cumsum(e, -1).unsqueeze(-1)
    got = aaren.scan(s.float(), v.float(), backend="chunked")
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5)


@pytest.mark.slow
def test_fp32_one_million_tokens():
    g = torch.Generator().manual_seed(1)
    n = 1_000_000
    s = torch.randn(n, generator=g, dtype=torch.float64) * 3
    v = torch.randn(n, 2, generator=g, dtype=torch.float64)
    e = torch.exp(s - s.max())
    want = torch.cumsum(e.unsqueeze(-1) * v, -2) / torch.cumsum(e, -1).unsqueeze(-1)
    torch.testing.assert_close(aaren.scan(s.float(), v.float()).double(), want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", BACKENDS)
def test_half_precision_accumulates_in_fp32(dtype, backend):
    s, v = _inputs((2,), 300, 8, dtype=torch.float32)
    o = aaren.scan(s.to(dtype), v.to(dtype), backend=backend)
    assert o.dtype == dtype and torch.isfinite(o).all()
    want = dense_prefix_attention(s.to(dtype).double(), v.to(dtype).double())
    torch.testing.assert_close(o.double(), want, rtol=1e-2, atol=1e-2)


def test_empty_sequence():
    o, state = aaren.scan(torch.zeros(2, 0), torch.zeros(2, 0, 3), return_state=True)
    assert o.shape == (2, 0, 3) and state.a.shape == (2, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 4, 3)), "values"),
    (dict(scores=torch.zeros(2, 5, dtype=torch.long), values=torch.zeros(2, 5, 3)), "scores"),
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 5, 3, dtype=torch.int32)), "values"),
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 5, 3), mask=torch.ones(2, 4, dtype=torch.bool)), "mask"),
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 5, 3), mask=torch.ones(2, 5)), "mask"),
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 5, 3), backend="fast"), "backend"),
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 5, 3), state=aaren.init_state((3,), 3)), "state"),
    (dict(scores=torch.zeros(2, 5), values=torch.zeros(2, 5, 3), chunk_size=0), "chunk_size"),
])
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        aaren.scan(**kwargs)


def test_step_bad_input():
    state = aaren.init_state((2,), 3)
    with pytest.raises(ValueError, match="v_t"):
        aaren.step(state, torch.zeros(2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="mask_t"):
        aaren.step(state, torch.zeros(2), torch.zeros(2, 3), torch.ones(2))


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), n=st.integers(1, 80), d=st.integers(1, 5),
       chunk=st.integers(1, 20), scale=st.sampled_from([0.1, 3.0, 1e4]), p_mask=st.floats(0.0, 0.9),
       split=st.integers(0, 80), seed=st.integers(0, 2**16), backend=st.sampled_from(["chunked", "dense"]))
def test_property_gradients_from_a_given_state_and_of_the_final_state(batch, n, d, chunk, scale, p_mask, split,
                                                                      seed, backend):
    """chunked (autograd) and dense (written-out backward) against autograd through the naive RNN: ∂ of a loss on
    the outputs and on the final state's readout, w.r.t. scores, values and the initial state's c and a."""
    s, v = _inputs(tuple(batch), n, d, scale=scale, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(*batch, n, generator=g) >= p_mask
    split = min(split, n - 1)
    _, start = aaren.scan(s[..., :split], v[..., :split, :], mask[..., :split], return_state=True, backend="naive")
    w_o, w_f = torch.randn(*batch, n - split, d, generator=g, dtype=s.dtype), torch.randn(*batch, d, generator=g,
                                                                                         dtype=s.dtype)
    grads = []
    for name in (backend, "naive"):
        leaves = [x.clone().requires_grad_(True) for x in (s[..., split:], v[..., split:, :], start.c, start.a)]
        o, final = aaren.scan(leaves[0], leaves[1], mask[..., split:], backend=name, return_state=True,
                              state=aaren.ScanState(start.m, leaves[2], leaves[3]),
                              chunk_size=chunk if name == "chunked" else None)
        readout = final.a / final.c.clamp_min(1e-300).unsqueeze(-1)  # m-invariant: o of one more masked token
        ((o * w_o).sum() + (readout * w_f).sum()).backward()
        grads.append([x.grad for x in leaves])
    for got, want in zip(*grads):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want)
