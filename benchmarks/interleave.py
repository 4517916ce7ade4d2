"""Timing that survives a noisy, shared machine: several candidates measured round-robin in one process, medians
of CPU time (and wall time), FLOPs counted by torch, and the machine's own matmul peak to compare them with.

CPU time (`time.process_time`, every thread of this process) does not count the time other processes held the
cores, so ratios measured here stay meaningful while the machine is busy; wall time is reported beside it.
"""
import statistics
import time
from collections.abc import Callable, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from .common import sync


def interleaved_medians(candidates: Mapping[str, Callable[[], None]], *, repeats: int, warmup: int = 1,
                        device: str = "cpu", rotate: bool = False) -> dict[str, dict]:
    """Run every candidate `warmup` times, then `repeats` rounds of each one in turn (a, b, a, b, ...); with
    `rotate` the order shifts by one every round (a, b, c; b, c, a; ...), so no candidate always follows another.

    → {name: {"cpu_ms": median, "wall_ms": median, "cpu_ms_min": min, "repeats": n}}."""
    if repeats < 1:
        raise ValueError(f"interleaved_medians: repeats must be >= 1, got {repeats}")
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    cpu, wall = {name: [] for name in candidates}, {name: [] for name in candidates}
    order = list(candidates.items())
    for r in range(repeats):
        shift = r % len(order) if rotate else 0
        for name, fn in order[shift:] + order[:shift]:
            sync(device)
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            sync(device)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {name: {"cpu_ms": 1e3 * statistics.median(cpu[name]), "wall_ms": 1e3 * statistics.median(wall[name]),
                   "cpu_ms_min": 1e3 * min(cpu[name]), "repeats": repeats} for name in candidates}


def counted_flops(fn: Callable[[], None]) -> int:
    """FLOPs torch counts in one call of fn (matmuls, convolutions, attention; elementwise ops count 0)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_peak_gflops(dtype: torch.dtype, *, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """The best GFLOP/s of an n×n @ n×n matmul in `dtype` (2n³ FLOPs): what this machine's cores can reach."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        c0 = time.process_time() if device == "cpu" else time.perf_counter()
        a @ b
        sync(device)
        best = min(best, (time.process_time() if device == "cpu" else time.perf_counter()) - c0)
    return 2 * n ** 3 / best / 1e9
