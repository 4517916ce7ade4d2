"""A growing key/value cache: the Transformer's streaming state (linear memory, the paper's baseline).

Functional, like Aaren's ScanState: `append` / `extend` return a NEW cache and leave the one they were called on
exactly as it was, so a state can be reused (branching, beam search, retrying a step) and stepped under autograd.
The common linear stream still appends in amortised O(1): caches share buffers copy-on-write. Buffers double
when full; a cache owns the free tail of its buffers while no other cache has written past its length, and
writes there in place (invisible to every older cache, which only reads its first `length` slots). A second
append to the same cache (a branch) finds the tail taken and copies first. Under autograd (keys that require
grad) the new cache is built by concatenation instead, since autograd forbids writing into tensors it saved.
"""
import torch
from torch import Tensor

INITIAL_CAPACITY = 16


class _Buffers:
    """k, v (B, H, capacity, Dh), valid (B, capacity) bool, and how many slots some cache has written (−1: the
    memory is shared with other buffers, e.g. after detach or reset_streams, so the next append copies)."""
    __slots__ = ("k", "v", "valid", "written")

    def __init__(self, k: Tensor, v: Tensor, valid: Tensor, written: int):
        self.k, self.v, self.valid, self.written = k, v, valid, written


class KVCache:
    """Keys/values of every token seen so far (k, v: (B, H, T, Dh); valid: (B, T) bool, True = a real token,
    False = a padded step). Build with `KVCache(batch_size=, n_heads=, head_dim=, device=, dtype=)` (empty) or
    `KVCache.from_tokens(k, v, valid)`; read with `view()`; grow with `append` / `extend` (both return a new cache).
    `nbytes` counts the allocated buffers it references: the memory the cache really holds.
    """

    def __init__(self, *, batch_size: int, n_heads: int, head_dim: int, device=None, dtype=torch.float32,
                 capacity: int = INITIAL_CAPACITY):
        k = torch.empty(batch_size, n_heads, capacity, head_dim, device=device, dtype=dtype)
        valid = torch.zeros(batch_size, capacity, device=device, dtype=torch.bool)
        self._buffers, self.length = _Buffers(k, torch.empty_like(k), valid, 0), 0

    @staticmethod
    def capacity_for(tokens: int, *, initial: int = INITIAL_CAPACITY) -> int:
        """The buffer length after growing from `initial` to hold `tokens` tokens (doubling when full)."""
        capacity = max(initial, 1)
        while capacity < tokens:
            capacity *= 2
        return capacity

    @classmethod
    def from_tokens(cls, k: Tensor, v: Tensor, valid: Tensor, *, initial_capacity: int = INITIAL_CAPACITY):
        """A cache holding k, v (B, H, T, Dh), valid (B, T), in the buffers streaming T tokens would have grown."""
        b, h, t, d = k.shape
        capacity = cls.capacity_for(t, initial=initial_capacity)
        return cls(batch_size=b, n_heads=h, head_dim=d, device=k.device, dtype=k.dtype, capacity=capacity).extend(
            k, v, valid)

    @classmethod
    def from_buffers(cls, k: Tensor, v: Tensor, valid: Tensor, *, length: int):
        """Wrap buffers k, v (B, H, capacity, Dh), valid (B, capacity) whose first `length` slots hold tokens (no
        copy; the cache owns the rest). E.g. a cache filled to some length for a benchmark, without a copy."""
        if not 0 <= length <= k.shape[2]:
            raise ValueError(f"KVCache.from_buffers: length {length} not in [0, capacity {k.shape[2]}]")
        cache = object.__new__(cls)
        cache._buffers, cache.length = _Buffers(k, v, valid, length), length
        return cache

    # the buffers, for code that sizes or exports the cache; `view()` is what a reader wants
    k = property(lambda self: self._buffers.k)
    v = property(lambda self: self._buffers.v)
    valid = property(lambda self: self._buffers.valid)
    capacity = property(lambda self: self._buffers.k.shape[2])
    batch_size = property(lambda self: self._buffers.k.shape[0])
    n_heads = property(lambda self: self._buffers.k.shape[1])
    head_dim = property(lambda self: self._buffers.k.shape[3])
    device = property(lambda self: self._buffers.k.device)
    dtype = property(lambda self: self._buffers.k.dtype)

    def _new(self, buffers: _Buffers, length: int) -> "KVCache":
        cache = object.__new__(type(self))
        cache._buffers, cache.length = buffers, length
        return cache

    def append(self, k_t: Tensor, v_t: Tensor, valid_t: Tensor) -> "KVCache":
        """k_t, v_t (B, H, Dh); valid_t (B,) bool → a new cache with one more token (amortised O(1))."""
        return self.extend(k_t.unsqueeze(2), v_t.unsqueeze(2), valid_t.unsqueeze(1))

    def extend(self, k: Tensor, v: Tensor, valid: Tensor) -> "KVCache":
        """k, v (B, H, T, Dh); valid (B, T) bool → a new cache holding this cache's tokens, then these T."""
        start, end, old = self.length, self.length + k.shape[2], self._buffers
        keys, values, flags = self.view()
        if old.k.requires_grad or (torch.is_grad_enabled() and (k.requires_grad or v.requires_grad)):
            k, v = k.to(old.k.dtype), v.to(old.v.dtype)
            fresh = _Buffers(torch.cat([keys, k], 2), torch.cat([values, v], 2), torch.cat([flags, valid], 1), end)
            return self._new(fresh, end)
        if old.written == start and end <= old.k.shape[2]:  # we own the free tail: write there in place
            buffers = old
        else:  # full, or a branch already wrote past our length: copy on write into (bigger) buffers
            capacity = self.capacity_for(end, initial=old.k.shape[2])
            buffers = _Buffers(keys.new_empty(*keys.shape[:2], capacity, keys.shape[3]),
                               values.new_empty(*values.shape[:2], capacity, values.shape[3]),
                               flags.new_zeros(flags.shape[0], capacity), start)
            buffers.k[:, :, :start], buffers.v[:, :, :start], buffers.valid[:, :start] = keys, values, flags
        buffers.k[:, :, start:end], buffers.v[:, :, start:end], buffers.valid[:, start:end] = k, v, valid
        buffers.written = end
        return self._new(buffers, end)

    def view(self):
        """(k (B, H, T, Dh), v (B, H, T, Dh), valid (B, T)) for the T tokens seen."""
        t, b = self.length, self._buffers
        return b.k[:, :, :t], b.v[:, :, :t], b.valid[:, :t]

    def reset_streams(self, streams: Tensor) -> "KVCache":
        """streams (B,) bool, True = start over: a new cache in which those streams have seen no token yet (their
        slots are marked padded; attention has no positions, so that equals a fresh stream). Copies on next append."""
        b = self._buffers
        valid = b.valid.masked_fill(streams[:, None], False)
        return self._new(_Buffers(b.k, b.v, valid, written=-1), self.length)

    def detach(self) -> "KVCache":
        """The same tokens without autograd history (shares memory, like Tensor.detach)."""
        b = self._buffers
        if not (b.k.requires_grad or b.v.requires_grad):
            return self
        # the memory (and version counter) is the graph's: written = -1 makes the next append copy first
        return self._new(_Buffers(b.k.detach(), b.v.detach(), b.valid, written=-1), self.length)

    @property
    def nbytes(self) -> int:
        return sum(x.numel() * x.element_size() for x in (self.k, self.v, self.valid))
