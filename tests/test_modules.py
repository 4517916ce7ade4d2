"""Aaren / Transformer blocks and the Backbone: parameter counts, causality, parallel == streaming, state sizes."""
import math

import pytest
import torch

import aaren

KINDS = ["aaren", "transformer"]


def _backbone(kind, **overrides):
    torch.manual_seed(0)
    cfg = dict(kind=kind, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.1) | overrides
    return aaren.Backbone(**cfg).double().eval()


def test_parameter_counts_match_the_paper():
    # paper §4: one layer, d_model 512, d_ff 2048 → 3,152,384 (Transformer) vs 3,152,896 (Aaren)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(aaren.TransformerBlock(d_model=512, n_heads=8, d_ff=2048)) == 3_152_384
    assert count(aaren.AarenBlock(d_model=512, n_heads=8, d_ff=2048)) == 3_152_896


def test_aaren_attention_equals_a_dense_learned_query_reference():
    torch.manual_seed(0)
    attn = aaren.Aaren(d_model=16, n_heads=2).double()
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    q = attn.q_proj(attn.query).view(2, 8)  # (H, Dh)
    k, v = attn.k_proj(x).view(3, 9, 2, 8), attn.v_proj(x).view(3, 9, 2, 8)
    outs = []
    for t in range(9):  # o_t = softmax(q·k_{1..t}/√d) v_{1..t}, per head
        w = torch.softmax(torch.einsum("hd,bihd->bhi", q, k[:, : t + 1]) / math.sqrt(8), -1)
        outs.append(torch.einsum("bhi,bihd->bhd", w, v[:, : t + 1]).reshape(3, 16))
    torch.testing.assert_close(attn(x), attn.out_proj(torch.stack(outs, 1)))


@pytest.mark.parametrize("kind", KINDS)
def test_causal(kind):
    model = _backbone(kind)
    x = torch.randn(2, 12, 32, dtype=torch.float64)
    y = model(x)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(2, 5, 32, dtype=torch.float64)
    torch.testing.assert_close(model(x2)[:, :7], y[:, :7])
    assert not torch.allclose(model(x2)[:, 7:], y[:, 7:])


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_streaming_equals_parallel(kind, norm_first):
    model = _backbone(kind, norm_first=norm_first)
    x = torch.randn(3, 21, 32, dtype=torch.float64)
    mask = torch.ones(3, 21, dtype=torch.bool)
    mask[0, :5] = False  # left padding
    mask[1, 15:] = False  # right padding
    parallel = model(x, mask)
    state, outs = model.init_state(3), []
    for t in range(21):
        y_t, state = model.step(x[:, t], state, mask[:, t])
        outs.append(y_t)
    streamed = torch.stack(outs, 1)
    torch.testing.assert_close(streamed[mask], parallel[mask])
    torch.testing.assert_close(streamed, parallel)  # padded positions agree too


@pytest.mark.parametrize("kind", KINDS)
def test_padding_gives_no_weight(kind):
    model = _backbone(kind)
    x = torch.randn(1, 10, 32, dtype=torch.float64)
    mask = torch.ones(1, 10, dtype=torch.bool)
    mask[0, :4] = False
    x_changed = x.clone()
    x_changed[:, :4] = 100.0  # garbage in the padding must not reach valid positions
    torch.testing.assert_close(model(x, mask)[:, 4:], model(x_changed, mask)[:, 4:])
    torch.testing.assert_close(model(x, mask)[:, 4:], model(x[:, 4:]))


def test_aaren_backends_agree_inside_the_backbone():
    model = _backbone("aaren")
    x = torch.randn(2, 70, 32, dtype=torch.float64)
    want = model(x)
    for backend, chunk_size in [("naive", None), ("hillis_steele", None), ("chunked", 5)]:
        other = _backbone("aaren", backend=backend, chunk_size=chunk_size)
        assert {(b.attention.backend, b.attention.chunk_size) for b in other.blocks} == {(backend, chunk_size)}
        torch.testing.assert_close(other(x), want)


def test_backend_and_chunk_size_are_validated():
    with pytest.raises(ValueError, match="backend must be one of .*'chunked'.*got 'fast'"):
        _backbone("aaren", backend="fast")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        _backbone("aaren", chunk_size=0)
    with pytest.raises(ValueError, match="kind='transformer' runs SDPA"):
        _backbone("transformer", backend="naive")


def test_padding_mask_names_its_polarity_and_broadcasts():
    model = _backbone("aaren")
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="True = valid token .*key_padding_mask, where True = ignore"):
        model(x, torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \(2, 5\).*True = valid"):
        model(x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask_t must have shape \(2,\).*True = valid"):
        model.step(x[:, 0], model.init_state(2), torch.ones(3, dtype=torch.bool))
    row = torch.tensor([[False, True, True, True, True]])
    for kind in KINDS:
        model = _backbone(kind)
        torch.testing.assert_close(model(x, row), model(x, row.expand(2, 5)))  # (1, N) broadcasts
        torch.testing.assert_close(model(x, torch.ones(2, 1, dtype=torch.bool)), model(x))  # (B, 1) too


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_are_finite_with_padding(kind):
    model = _backbone(kind).train()
    x = torch.randn(2, 16, 32, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[0, :6] = False
    model(x, mask)[mask].sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _state_sizes(kind, steps):
    model = _backbone(kind)
    state, sizes = model.init_state(2), []
    with torch.no_grad():
        for t in range(steps):
            _, state = model.step(torch.randn(2, 32, dtype=torch.float64), state)
            sizes.append(aaren.state_nbytes(state))
    return sizes


def test_aaren_state_is_constant_size():
    sizes = _state_sizes("aaren", 300)
    assert len(set(sizes)) == 1
    # 2 layers × B=2 × H=4 × (m, c, Dh=8 numerator) float64
    assert sizes[0] == 2 * 2 * 4 * (1 + 1 + 8) * 8


def test_kv_cache_grows_linearly():
    sizes = _state_sizes("transformer", 300)
    per_token = 2 * (2 * 2 * 32 * 8 + 2)  # layers × (k and v of B·D float64 + B valid flags)
    for t, nbytes in enumerate(sizes, start=1):
        assert t * per_token <= nbytes <= 2 * max(t, 16) * per_token  # doubling buffers
    assert sizes[-1] > 10 * sizes[15]


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="kind"):
        aaren.Backbone(kind="lstm", d_model=8, n_layers=1, n_heads=2, d_ff=8, dropout=0.0)
    with pytest.raises(ValueError, match="divisible"):
        aaren.Backbone(kind="aaren", d_model=10, n_layers=1, n_heads=3, d_ff=8, dropout=0.0)
    model = _backbone("aaren")
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(2, 5, 16, dtype=torch.float64))


def test_cached_step_weights_follow_every_change_of_the_parameters():
    # Aaren.step caches the folded [W_k q | W_v] weights in inference; a stale cache would stream the old model
    model = _backbone("aaren")
    x = torch.randn(4, 32, dtype=torch.float64)

    def stream_once(m):
        with torch.no_grad():
            return m.step(x.to(next(m.parameters()).dtype), m.init_state(4))[0]

    before = stream_once(model)
    torch.testing.assert_close(stream_once(model), before)  # served from the cache
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(4, 5, 32, dtype=torch.float64)).square().mean().backward()
    optimizer.step()  # in-place update: bumps the version counters
    after_step = stream_once(model)
    assert not torch.allclose(after_step, before)
    torch.testing.assert_close(after_step, model(x[:, None])[:, 0])
    other = _backbone("aaren", dropout=0.0)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(stream_once(model), other(x[:, None])[:, 0])
    model.float()  # new storage
    torch.testing.assert_close(stream_once(model), other(x[:, None])[:, 0].float(), atol=1e-5, rtol=1e-4)


def test_step_gradients_equal_the_parallel_forward():
    model = _backbone("aaren")
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    grads = []
    for streaming in (False, True):
        model.zero_grad()
        if streaming:
            state, outs = model.init_state(2), []
            for t in range(6):
                y_t, state = model.step(x[:, t], state)
                outs.append(y_t)
            y = torch.stack(outs, 1)
        else:
            y = model(x)
        y.sin().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, msg=name)


def test_step_works_on_a_model_built_under_inference_mode():
    with torch.inference_mode():  # its parameters are inference tensors: no version counter, so no cache
        model = _backbone("aaren")
        x = torch.randn(3, 4, 32, dtype=torch.float64)
        state, outs = model.init_state(3), []
        for t in range(4):
            y_t, state = model.step(x[:, t], state)
            outs.append(y_t)
        torch.testing.assert_close(torch.stack(outs, 1), model(x))


def test_aaren_key_bias_has_no_effect():
    # documented in Aaren's docstring: b_k shifts all of a head's scores by b_k·q/√d, which softmax ignores
    model = _backbone("aaren", dropout=0.0)
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    model(x).sin().sum().backward()
    attention = model.blocks[0].attention
    assert attention.k_proj.bias.grad.abs().max() < 1e-12 < attention.k_proj.weight.grad.abs().max()
