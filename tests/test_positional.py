"""The shared sinusoidal encoding: Vaswani et al.'s PE of integer positions and THP's encoding of real times."""
import math

import pytest
import torch

from tasks.base.positional import sinusoid


@pytest.mark.parametrize("d", [6, 7])
def test_sinusoid_follows_the_formula_for_times_and_positions(d):
    times = torch.tensor([0.0, 1.5, 300.0, 12345.6], dtype=torch.float64)
    pe = sinusoid(times, d)
    assert pe.shape == (4, d) and pe.dtype == torch.float64
    for i in range(d):
        angle = times / 10000 ** (2 * (i // 2) / d)                       # THP eq. 1
        torch.testing.assert_close(pe[:, i], torch.sin(angle) if i % 2 == 0 else torch.cos(angle))
    positions = torch.arange(5).reshape(1, 5)                               # any leading shape, integers → float32
    pe_int = sinusoid(positions, d)
    assert pe_int.shape == (1, 5, d) and pe_int.dtype == torch.float32
    assert pe_int[0, 3, 0].item() == pytest.approx(math.sin(3.0)) and pe_int[0, 3, 1].item() == pytest.approx(math.cos(3.0))
