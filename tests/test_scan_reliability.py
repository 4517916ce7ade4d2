"""aaren.scan / aaren.step on hostile input (−inf, NaN, +inf), under autocast, with broadcast masks, under
torch.export with a dynamic N, and the ScanState helpers (detach, to, reset, deepcopy)."""
import copy

import pytest
import torch

import aaren
from aaren.scan import _pick
from reference import dense_prefix_attention

BACKENDS = ["naive", "hillis_steele", "chunked", "dense"]
INF = float("inf")


def _inputs(shape, n, d, *, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, n, generator=g, dtype=dtype) * 3, torch.randn(*shape, n, d, generator=g, dtype=dtype)


def _grads(fn, s, v, seed=1):
    """o and the gradients of a random linear loss on o w.r.t. s and v."""
    s, v = s.clone().requires_grad_(True), v.clone().requires_grad_(True)
    o = fn(s, v)
    w = torch.randn(o.shape, generator=torch.Generator().manual_seed(seed), dtype=o.dtype)
    (o * w).sum().backward()
    return o, s.grad, v.grad


def _reference(s, v, valid):
    """Softmax attention over the valid tokens only: what a −inf score or a False mask must mean."""
    return dense_prefix_attention(s.masked_fill(~valid, 0.0), v.masked_fill(~valid.unsqueeze(-1), 0.0), valid)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_mask", [False, True])
def test_minus_inf_scores_take_no_weight_and_nan_values_there_do_not_spread(backend, with_mask):
    s, v = _inputs((2, 3), 40, 4)
    s[0, 0, 5] = s[1, 2, :7] = s[0, 1, 39] = -INF  # one token, a left-padded prefix, the last token
    v[0, 0, 5] = v[1, 2, 3] = float("nan")  # garbage values where the tokens are masked
    mask = torch.ones(2, 3, 40, dtype=torch.bool)
    if with_mask:
        mask[1, 0, 10:20] = False
        v[1, 0, 12] = s[1, 0, 15] = float("nan")  # masked: neither NaN takes part
        s[1, 0, 16] = INF
    valid = mask & (s > -INF)
    kw = {"backend": backend, "chunk_size": 8} if backend == "chunked" else {"backend": backend}
    o, ds, dv = _grads(lambda a, b: aaren.scan(a, b, mask if with_mask else None, **kw), s, v)
    o_, ds_, dv_ = _grads(lambda a, b: _reference(a, b, valid), s.nan_to_num(0.0, 0.0, 0.0), v.nan_to_num(0.0))
    for got, want in ((o, o_), (ds, ds_), (dv, dv_)):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want)
    assert torch.all(ds[~valid] == 0) and torch.all(dv[~valid] == 0)
    assert torch.all(o[1, 2, :7] == 0)  # an all-masked prefix gives 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [INF, float("nan")])
def test_nan_or_plus_inf_score_at_a_valid_token_is_refused(backend, bad):
    s, v = _inputs((2,), 20, 3)
    s[1, 11] = bad
    with pytest.raises(ValueError, match=r"scores must be finite or −inf.*index \(1, 11\).*True = valid"):
        aaren.scan(s, v, backend=backend)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 11] = False  # masked: the same score is ignored
    torch.testing.assert_close(aaren.scan(s, v, mask, backend=backend), _reference(s.nan_to_num(0.0, 0.0), v, mask))


def test_step_minus_inf_masked_nan_values_and_refusals():
    s, v = _inputs((3,), 12, 2)
    s[0, 4] = -INF
    v[0, 4] = float("nan")
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, :5] = False
    v[1, 2] = float("nan")
    s_, v_ = s.clone().requires_grad_(True), v.clone().requires_grad_(True)
    state, outs = aaren.init_state((3,), 2, dtype=torch.float64), []
    for t in range(12):
        o_t, state = aaren.step(state, s_[:, t], v_[:, t], mask[:, t])
        outs.append(o_t)
    o = torch.stack(outs, 1)
    valid = mask & (s > -INF)
    torch.testing.assert_close(o, _reference(s.nan_to_num(0.0, 0.0, 0.0), v.nan_to_num(0.0), valid))
    o.sum().backward()
    assert torch.isfinite(s_.grad).all() and torch.isfinite(v_.grad).all()
    assert torch.all(s_.grad[~valid] == 0) and torch.all(v_.grad[~valid] == 0)
    for bad in (INF, float("nan")):
        with pytest.raises(ValueError, match="step: s_t must be finite or −inf"):
            aaren.step(state, torch.tensor([0.0, bad, 1.0], dtype=torch.float64), torch.zeros(3, 2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_autocast_does_not_lower_the_accumulation(backend, device):
    s, v = _inputs((2, 2), 100, 16)
    mask = torch.rand(2, 2, 100, generator=torch.Generator().manual_seed(2)) > 0.2
    want = dense_prefix_attention(s, v, mask)
    s32, v32 = s.float().to(device).requires_grad_(True), v.float().to(device).requires_grad_(True)
    with torch.autocast(device, dtype=torch.bfloat16):
        o = aaren.scan(s32, v32, mask.to(device), backend=backend)
    assert o.dtype == torch.float32
    torch.testing.assert_close(o.double().cpu(), want, rtol=1e-5, atol=1e-5)  # bf16 matmuls would give ~2e-2
    o.sum().backward()
    s64, v64 = s.clone().requires_grad_(True), v.clone().requires_grad_(True)
    dense_prefix_attention(s64, v64, mask).sum().backward()
    for got, want in ((s32.grad, s64.grad), (v32.grad, v64.grad)):
        torch.testing.assert_close(got.double().cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_gradients_match_fp32(backend):
    """Forward under autocast, backward after it (as torch.autocast's documentation prescribes)."""
    s, v = _inputs((2, 2), 30, 16, dtype=torch.float32)

    def cast_forward(a, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return aaren.scan(a, b, backend=backend)

    for x, y in zip(_grads(cast_forward, s, v), _grads(lambda a, b: aaren.scan(a, b, backend=backend), s, v)):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mask_broadcasts_like_scores(backend):
    s, v = _inputs((2, 4), 30, 3)
    mask = torch.rand(2, 1, 30, generator=torch.Generator().manual_seed(0)) > 0.3  # (B, 1, N) for (B, H, N)
    torch.testing.assert_close(aaren.scan(s, v, mask, backend=backend),
                               aaren.scan(s, v, mask.expand(2, 4, 30), backend=backend))
    torch.testing.assert_close(aaren.scan(s, v, mask[0, 0], backend=backend),  # (N,) for every stream
                               aaren.scan(s, v, mask[0, 0].expand(2, 4, 30), backend=backend))


@pytest.mark.parametrize("mask", [torch.ones(2, 3, 29, dtype=torch.bool), torch.ones(2, 3, 30),
                                  torch.ones(3, 1, 30, dtype=torch.bool)])
def test_mask_errors_name_the_polarity(mask):
    s, v = _inputs((2, 3), 30, 3)
    with pytest.raises(ValueError, match=r"mask .*True = valid token.*key_padding_mask"):
        aaren.scan(s, v, mask)


class _Prefill(torch.nn.Module):
    def forward(self, s, v, mask):
        o, state = aaren.scan(s, v, mask, return_state=True)
        return o, state.m, state.c, state.a


def test_torch_export_with_dynamic_length():
    n = torch.export.Dim("n", min=2, max=4096)
    s, v = _inputs((2, 3), 40, 4, dtype=torch.float32)
    mask = torch.ones(2, 1, 40, dtype=torch.bool)
    program = torch.export.export(_Prefill(), (s, v, mask), dynamic_shapes=({2: n}, {2: n}, {2: n}))
    for length in (2, 17, 40, 100, 300):
        s, v = _inputs((2, 3), length, 4, seed=length, dtype=torch.float32)
        mask = torch.rand(2, 1, length, generator=torch.Generator().manual_seed(length)) > 0.3
        mask[0, 0, :3] = False
        for got, want in zip(program.module()(s, v, mask), _Prefill()(s, v, mask)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_auto_takes_the_dense_path_for_one_chunk_from_the_empty_state():
    state = aaren.init_state((2,), 16)
    assert _pick("auto", 29, None) == "dense" and _pick("auto", 64, None) == "dense"
    assert _pick("auto", 65, None) == "chunked" and _pick("auto", 29, state) == "chunked"
    assert _pick("chunked", 29, None) == "chunked"


@pytest.mark.parametrize("backend", ["chunked", "dense"])
def test_gradcheck_through_the_final_state(backend):
    """Gradients into the initial state and out of the final one, seen through what does not depend on the
    stop-gradient max m: the outputs of a continuation from the final state."""
    s, v = _inputs((2,), 14, 3)
    mask = torch.ones(2, 14, dtype=torch.bool)
    mask[0, :6] = False  # the first stream's initial state is the identity
    _, start = aaren.scan(s[:, :4], v[:, :4], mask[:, :4], return_state=True)

    def fn(s_, v_, c_, a_):
        given = aaren.ScanState(start.m, c_, a_)
        o, final = aaren.scan(s_[:, 4:9], v_[:, 4:9], mask[:, 4:9], backend=backend, state=given, return_state=True)
        return o, aaren.scan(s_[:, 9:], v_[:, 9:], mask[:, 9:], backend="naive", state=final)

    c0, a0 = start.c.clone().requires_grad_(True), start.a.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (s.requires_grad_(True), v.requires_grad_(True), c0, a0))

    def fresh(s_, v_):
        _, final = aaren.scan(s_[:, :9], v_[:, :9], mask[:, :9], backend=backend, return_state=True)
        return aaren.scan(s_[:, 9:], v_[:, 9:], mask[:, 9:], backend="naive", state=final)

    assert torch.autograd.gradcheck(fresh, (s, v))


def test_state_detach_to_reset_and_deepcopy():
    s, v = _inputs((3, 2), 10, 4)
    s.requires_grad_(True)
    _, state = aaren.scan(s, v, return_state=True)
    assert state.c.grad_fn is not None and state.detach().c.grad_fn is None
    moved = state.to(torch.float32)
    assert isinstance(moved, aaren.ScanState) and all(x.dtype == torch.float32 for x in moved)
    clone = copy.deepcopy(state)  # torch cannot deep-copy the non-leaf fields themselves
    assert isinstance(clone, aaren.ScanState) and clone.a.data_ptr() != state.a.data_ptr()
    torch.testing.assert_close(tuple(clone), tuple(state.detach()))
    fresh = state.reset(torch.tensor([True, False, True]))  # (B,) of a (B, H) state: every head of a stream
    assert torch.all(fresh.m[[0, 2]] == -INF) and torch.all(fresh.c[[0, 2]] == 0) and torch.all(fresh.a[[0, 2]] == 0)
    torch.testing.assert_close(tuple(x[1] for x in fresh), tuple(x[1] for x in state))
    o, _ = aaren.step(fresh, s[:, :, 0].detach(), v[:, :, 0])  # a reset stream starts over
    torch.testing.assert_close(o[0], v[0, :, 0])
    fresh.c.sum().backward()  # the kept streams keep their gradients
    assert s.grad[1].abs().sum() > 0 and torch.all(s.grad[[0, 2]] == 0)
    with pytest.raises(ValueError, match="streams must be a bool tensor"):
        state.reset(torch.tensor([True, False]))
