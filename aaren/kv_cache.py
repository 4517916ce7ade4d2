"""A growing key/value cache: the Transformer's streaming state (linear memory, the paper's baseline)."""
import torch
from torch import Tensor


class KVCache:
    """Keys/values of every token seen so far, in buffers that double when full (amortised O(1) append).

    k, v: (B, H, capacity, Dh); valid: (B, capacity) bool (True = a real token, False = a padded step).
    `nbytes` counts the allocated buffers: the memory the cache really holds.
    """

    def __init__(self, *, batch_size: int, n_heads: int, head_dim: int, device=None, dtype=torch.float32,
                 capacity: int = 16):
        self.k = torch.empty(batch_size, n_heads, capacity, head_dim, device=device, dtype=dtype)
        self.v = torch.empty_like(self.k)
        self.valid = torch.zeros(batch_size, capacity, device=device, dtype=torch.bool)
        self.length = 0

    def append(self, k_t: Tensor, v_t: Tensor, valid_t: Tensor) -> None:
        """k_t, v_t (B, H, Dh); valid_t (B,) bool."""
        if self.length == self.k.shape[2]:
            self.k, self.v = _grow(self.k, dim=2), _grow(self.v, dim=2)
            self.valid = _grow(self.valid, dim=1, fill=False)
        self.k[:, :, self.length] = k_t
        self.v[:, :, self.length] = v_t
        self.valid[:, self.length] = valid_t
        self.length += 1

    def view(self):
        """(k (B, H, T, Dh), v (B, H, T, Dh), valid (B, T)) for the T tokens seen."""
        t = self.length
        return self.k[:, :, :t], self.v[:, :, :t], self.valid[:, :t]

    @property
    def nbytes(self) -> int:
        return sum(x.numel() * x.element_size() for x in (self.k, self.v, self.valid))


def _grow(x: Tensor, *, dim: int, fill=None) -> Tensor:
    shape = list(x.shape)
    shape[dim] *= 2
    bigger = torch.empty(shape, device=x.device, dtype=x.dtype) if fill is None else \
        torch.full(shape, fill, device=x.device, dtype=x.dtype)
    bigger.narrow(dim, 0, x.shape[dim]).copy_(x)
    return bigger
