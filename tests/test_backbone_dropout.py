"""FastDropout: the exact keep probability (per lane of the random draws too), 1/(1-p) scaling, identities."""
import math

import pytest
import torch

import aaren
from aaren.dropout import keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.05])
def test_keep_rate_is_one_minus_p_in_every_lane(p):
    torch.manual_seed(0)
    n = 1 << 22
    keep, p_eff = keep_mask((n,), p)
    assert abs(p_eff - p) <= 2.0 ** -33  # exact to the 32-bit grid (and exactly p for multiples of 2^-16)
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(keep.double().mean().item() - (1 - p)) < 5 * sigma
    # each 64-bit draw feeds 2 or 4 elements; a biased lane (e.g. the top bits of a 63-bit draw) shows here
    per_draw = 4 if (p * 2 ** 16).is_integer() else 2
    lane_rates = keep.view(-1, per_draw).double().mean(0)
    assert (lane_rates - (1 - p)).abs().max().item() < 5 * sigma * math.sqrt(per_draw)


def test_kept_elements_are_scaled_by_one_over_one_minus_p_and_gradients_follow():
    drop = aaren.FastDropout(0.2)
    x = torch.randn(64, 60, 32, requires_grad=True)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    assert 0.78 < kept.double().mean().item() < 0.82
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    torch.manual_seed(0)
    torch.testing.assert_close(drop(x), y)  # the default generator: torch.manual_seed reproduces the mask


def test_identity_in_eval_and_for_p_zero_and_rejects_bad_p():
    x = torch.randn(4, 5)
    assert aaren.FastDropout(0.5).eval()(x) is x
    assert aaren.FastDropout(0.0)(x) is x
    y = aaren.FastDropout(0.5)(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="p must be in"):
            aaren.FastDropout(p)


def test_the_blocks_use_it():
    model = aaren.Backbone(kind="aaren", d_model=8, n_layers=1, n_heads=2, d_ff=16, dropout=0.1)
    drops = [m for m in model.modules() if isinstance(m, aaren.FastDropout)]
    assert len(drops) == 2 and all(d.p == 0.1 for d in drops)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
