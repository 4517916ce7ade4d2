"""The fixed sinusoidal encoding shared by every task: of a token's index (forecasting, classification) or of an
event's time (TPP).

    PE(x)_{2i} = sin(x · ω_i),  PE(x)_{2i+1} = cos(x · ω_i),  ω_i = 10000^{−2i/d}

(Vaswani et al. 2017, §3.5; THP's temporal encoding, Zuo et al. 2020, eq. 1, is the same map of a real time.)
"""
import math

import torch
from torch import Tensor

BASE = 10000.0


def sinusoid(x: Tensor, d: int) -> Tensor:
    """x (...) integer positions or real times → (..., d), any d; float32 unless x is floating (then x's dtype)."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    channel = torch.arange(d, device=x.device)                                     # (d,)
    omega = torch.exp((channel - channel % 2).to(dtype) * (-math.log(BASE) / d))   # ω_{⌊c/2⌋}, (d,)
    angles = x.to(dtype).unsqueeze(-1) * omega                                     # (..., d)
    return torch.where(channel % 2 == 0, angles.sin(), angles.cos())
