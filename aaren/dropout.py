"""FastDropout: nn.Dropout with a cheaper random mask on CPU, at exactly the same keep probability.

nn.Dropout draws its mask with `bernoulli_`, ≈ 4.5-14 ns per element on CPU (a sizeable share of a small model's
training step). Here one call of the generator's full-range 64-bit `random_` fills 64 random bits, viewed as
two 32-bit (or four 16-bit) uniform integers u, and an element is kept iff u ≥ t, t = round(p · 2^bits):

    P(keep) = 1 − t / 2^bits        exact for p a multiple of 2^-bits; otherwise |ΔP| ≤ 2^-(bits+1)

16-bit lanes are used when p is a multiple of 2^-16 (p = 0.5, 0.25, ...: exact), 32-bit lanes otherwise
(|ΔP| ≤ 1.2e-10: finer than the 2^-24 grid of torch's fp32 uniforms). Full-range draws matter: `random_()`
without bounds gives 63 bits, and slicing those into lanes biases the top one (a prototype slicing an int64
into 8 byte thresholds kept 0.886 instead of 0.9). Kept elements are scaled by 1/(1 − p_eff), p_eff = t / 2^bits,
so E[output] = input exactly (in fp32/fp64; a bf16/fp16 mask holds the scale rounded to that dtype, as
nn.Dropout's does). Eval mode and p = 0: identity. On other devices it is F.dropout (the fused GPU
kernel is already cheap). It draws from torch's default generator: torch.manual_seed reproduces it.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LANES = {16: torch.int16, 32: torch.int32}


def keep_mask(shape, p: float, *, device=None) -> tuple[Tensor, float]:
    """A bool mask of `shape`, each element True (kept) with probability 1 − p_eff, and p_eff = t / 2^bits."""
    bits = 16 if (p * 2 ** 16).is_integer() else 32
    t = round(p * 2 ** bits)
    n, per_draw = torch.Size(shape).numel(), 64 // bits
    draws = torch.empty(-(-n // per_draw), dtype=torch.int64, device=device).random_(-2 ** 63, None)
    lanes = draws.view(LANES[bits])[:n].view(shape)  # uniform signed ints in [−2^(bits−1), 2^(bits−1))
    return lanes >= t - 2 ** (bits - 1), t / 2 ** bits


class FastDropout(nn.Module):
    """Dropout(p): in training, zero each element with probability p and scale the rest by 1/(1 − p)."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"FastDropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        keep, p_eff = keep_mask(x.shape, self.p, device=x.device)
        scale = 1.0 / (1.0 - p_eff) if p_eff < 1.0 else 0.0  # p_eff = 1 only for p within 2^-33 of 1
        mask = torch.where(keep, x.new_tensor(scale), x.new_tensor(0.0))  # 0 or 1/(1 − p_eff), in x's dtype
        return x * mask  # backward is one pass, grad · mask (nn.Dropout on CPU saves such a mask too)

    def extra_repr(self) -> str:
        return f"p={self.p}"
