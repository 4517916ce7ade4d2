"""Under torch.autocast("cpu", bf16) the projections run in bf16 but both kinds' attention cores in fp32."""
import pytest
import torch
import torch.nn.functional as F

import aaren
import aaren.attention

KINDS = ["aaren", "transformer"]


@pytest.fixture
def core_calls(monkeypatch):
    """Records (core input dtypes, autocast on?) of the attentions' SDPA calls (q, k, v), aaren.scan calls (the
    scores; values may be bf16, the scan accumulates in fp32) and aaren.step calls (Aaren.step: s_t, v_t)."""
    calls = []

    def recording(fn, n_core_inputs, first=0):
        def wrapper(*args, **kwargs):
            calls.append(({a.dtype for a in args[first:first + n_core_inputs]}, torch.is_autocast_enabled("cpu")))
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording(F.scaled_dot_product_attention, 3))
    monkeypatch.setattr(aaren.attention, "scan", recording(aaren.attention.scan, 1))
    monkeypatch.setattr(aaren.attention, "step", recording(aaren.attention.step, 2, first=1))  # Aaren.step: s_t, v_t
    return calls


@pytest.mark.parametrize("kind", KINDS)
def test_the_core_runs_in_fp32_under_cpu_autocast(kind, core_calls):
    torch.manual_seed(0)
    model = aaren.Backbone(kind=kind, d_model=64, n_layers=2, n_heads=4, d_ff=128, dropout=0.0).eval()
    x = torch.randn(3, 20, 64)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[0, :4] = False
    want = model(x, mask)
    core_calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, state = model(x, mask, return_state=True)
        y_t, _ = model.step(x[:, 0], state)
        assert model.blocks[0].attention.v_proj(x).dtype == torch.bfloat16  # projections do use bf16
    assert len(core_calls) == 4  # 2 layers × (forward, step)
    assert all(dtypes == {torch.float32} and not autocast_on for dtypes, autocast_on in core_calls)
    assert torch.isfinite(got).all() and torch.isfinite(y_t).all()
    torch.testing.assert_close(got.float(), want, atol=5e-2, rtol=5e-2)
    if kind == "transformer":
        assert state[0].dtype == torch.float32
    else:
        assert state[0].a.dtype == torch.float32
