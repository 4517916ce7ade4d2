"""Backbone states: checked on input, prefill (forward with state) == stepping, states are values (functional)."""
import copy

import pytest
import torch

import aaren

KINDS = ["aaren", "transformer"]


def _backbone(kind, **overrides):
    torch.manual_seed(0)
    cfg = dict(kind=kind, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0) | overrides
    return aaren.Backbone(**cfg).double().eval()


def _stream(model, x, state, mask=None):
    outs = []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state, None if mask is None else mask[:, t])
        outs.append(y_t)
    return torch.stack(outs, 1), state


@pytest.mark.parametrize("kind", KINDS)
def test_step_rejects_a_state_that_does_not_fit(kind):
    model = _backbone(kind)
    x_t = torch.randn(4, 32, dtype=torch.float64)
    state = model.init_state(4)
    with pytest.raises(ValueError, match=r"one state per layer \(2 layers.*got 1 entries"):
        model.step(x_t, state[:1])  # zip() used to skip the second layer
    with pytest.raises(ValueError, match="2 layers.*got 0 entries"):
        model.step(x_t, [])  # used to return norm(x)
    with pytest.raises(ValueError, match="layer 0.*batch 1"):
        model.step(x_t[:1], state)  # a cache for 4 streams used to accept 1 and return (4, D)
    with pytest.raises(ValueError, match="layer 0.*dtype torch.float32"):
        model.step(x_t, aaren.Backbone(**_cfg(kind)).init_state(4))
    other = _backbone("transformer" if kind == "aaren" else "aaren").init_state(4)
    with pytest.raises(ValueError, match="layer 0 .*expected an aaren"):
        model.step(x_t, other)
    wide = _backbone(kind, d_model=64, n_heads=8).init_state(4)  # 8 heads of width 8, not 4
    with pytest.raises(ValueError, match="layer 0.*head"):
        model.step(x_t, wide)
    with pytest.raises(ValueError, match="state must be a list"):
        model.step(x_t, None)
    on_meta = [aaren.KVCache(batch_size=4, n_heads=4, head_dim=8, device="meta", dtype=torch.float64)
               if kind == "transformer" else aaren.ScanState(*(t.to("meta") for t in layer)) for layer in state]
    with pytest.raises(ValueError, match="layer 0.*is on meta, the input on cpu"):
        model.step(x_t, on_meta)
    with pytest.raises(ValueError, match="layer 1"):
        model(x_t[:, None], state=[state[0], state[1].view() if kind == "transformer" else state[1][:2]])


def _cfg(kind):
    return dict(kind=kind, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_prefill_then_step_equals_one_forward(kind):
    model = _backbone(kind)
    x = torch.randn(3, 23, 32, dtype=torch.float64)
    mask = torch.ones(3, 23, dtype=torch.bool)
    mask[0, :5] = False  # left padding, crossing the prefill / step boundary
    mask[1, 9:13] = False
    mask[2, 20:] = False  # right padding
    want = model(x, mask)
    n1, n2 = 9, 7
    y1, state = model(x[:, :n1], mask[:, :n1], return_state=True)
    y2, state = _stream(model, x[:, n1:n1 + n2], state, mask[:, n1:n1 + n2])
    y3, state = model(x[:, n1 + n2:], mask[:, n1 + n2:], state=state, return_state=True)  # prefill continues
    torch.testing.assert_close(torch.cat([y1, y2, y3], 1), want)
    y_end, _ = model.step(x[:, -1], state)  # and stepping goes on from a prefill's state
    longer_mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.bool)], 1)
    torch.testing.assert_close(y_end, model(torch.cat([x, x[:, -1:]], 1), longer_mask)[:, -1])


@pytest.mark.parametrize("kind", KINDS)
def test_a_state_can_be_reused(kind):
    # branching / beam search: stepping one state twice gives the same, and the first branch is unchanged
    model = _backbone(kind)
    x = torch.randn(2, 20, 32, dtype=torch.float64)
    with torch.no_grad():
        _, state = model(x[:, :17], return_state=True)  # capacity 32: the branches share free buffer slots
        snapshot = copy.deepcopy(state)
        y_a, state_a = model.step(x[:, 17], state)
        y_b, state_b = model.step(x[:, 18], state)  # used to overwrite branch a's token (max diff 1.1)
        y_a2, _ = model.step(x[:, 19], state_a)
        y_b2, _ = model.step(x[:, 19], state_b)
        y_a_again, _ = model.step(x[:, 17], state)
    torch.testing.assert_close(y_a2, model(x[:, [*range(18), 19]])[:, -1])
    torch.testing.assert_close(y_b2, model(x[:, [*range(17), 18, 19]])[:, -1])
    torch.testing.assert_close(y_a_again, y_a)
    torch.testing.assert_close(y_b, model(x[:, [*range(17), 18]])[:, -1])
    for layer, before in zip(state, snapshot):  # the state given was never changed
        for got, want in zip(_tensors(layer), _tensors(before)):
            torch.testing.assert_close(got, want)


def _tensors(layer):
    return layer.view() if isinstance(layer, aaren.KVCache) else layer


@pytest.mark.parametrize("kind", KINDS)
def test_step_under_autograd_equals_the_parallel_gradients(kind):
    model = _backbone(kind)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    grads = []
    for mode in ("forward", "step", "prefill+step"):
        model.zero_grad()
        if mode == "forward":
            y = model(x)
        elif mode == "step":
            y = _stream(model, x, model.init_state(2))[0]
        else:  # gradients flow through the prefill's state into the steps
            y1, state = model(x[:, :4], return_state=True)
            y = torch.cat([y1, _stream(model, x[:, 4:], state)[0]], 1)
        y.sin().sum().backward()  # the Transformer's in-place cache used to raise here
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    for other in grads[1:]:
        assert other.keys() == grads[0].keys()
        for name, g in grads[0].items():
            torch.testing.assert_close(other[name], g, msg=name)


def test_kv_cache_appends_in_place_on_a_linear_stream_and_copies_for_a_branch():
    cache = aaren.KVCache(batch_size=1, n_heads=1, head_dim=2, dtype=torch.float64)
    token = lambda i: (torch.full((1, 1, 2), float(i), dtype=torch.float64), torch.ones(1, dtype=torch.bool))
    caches = [cache]
    for i in range(40):
        k, valid = token(i)
        caches.append(caches[-1].append(k, k, valid))
    assert [c.capacity for c in caches[1:]] == [aaren.KVCache.capacity_for(t) for t in range(1, 41)]
    assert caches[10].k.data_ptr() == caches[16].k.data_ptr()  # one buffer until it doubles: no copies
    branch = caches[10].append(*token(99)[:1], *token(99))  # slot 10 is taken by the stream: copy on write
    assert branch.k.data_ptr() != caches[11].k.data_ptr()
    assert caches[11].view()[0][0, 0, -1, 0] == 10 and branch.view()[0][0, 0, -1, 0] == 99
    assert aaren.KVCache.capacity_for(17) == 32 and aaren.KVCache.capacity_for(16) == 16
    filled = aaren.KVCache.from_tokens(*(torch.randn(2, 3, 40, 4),) * 2, torch.ones(2, 40, dtype=torch.bool))
    assert filled.capacity == 64 and filled.length == 40


def test_state_detach_cuts_the_history_of_both_kinds():
    for kind in KINDS:
        model = _backbone(kind)
        _, state = model(torch.randn(2, 3, 32, dtype=torch.float64), return_state=True)
        detached = aaren.state_detach(state)
        assert all(not t.requires_grad for layer in detached for t in _tensors(layer))
        y, _ = model.step(torch.randn(2, 32, dtype=torch.float64), detached)
        assert y.requires_grad


@pytest.mark.parametrize("kind", KINDS)
def test_state_reset_starts_the_chosen_streams_over(kind):
    model = _backbone(kind)
    x = torch.randn(3, 12, 32, dtype=torch.float64)
    with torch.no_grad():
        _, state = model(x[:, :7], return_state=True)
        state = aaren.state_reset(state, torch.tensor([True, False, True]))
        y, _ = _stream(model, x[:, 7:], state)
    torch.testing.assert_close(y[[0, 2]], model(x[[0, 2], 7:]))  # as if they began at token 7
    torch.testing.assert_close(y[1], model(x[1:2])[0, 7:])  # the other one kept its history
