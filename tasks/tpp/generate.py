"""Known-truth datasets drawn from a documented process, and writing them in Meta-TPP's npz format.

Meta-TPP npz (its `TPPDataset`): `times` (S, L) float inter-event times τ (τ_1 from the window start 0: its
models score `times[:, 1:]` with the log-normal mixture), `marks` (S, L) int 1-based (0 = padding), `masks` (S, L)
float 1 = event; sequences padded to the longest. The data layer's `read_tpp(path, "meta_tpp_npz")` reads it back.
"""
import os
import tempfile
from pathlib import Path

import numpy as np

from .hawkes import ExpHawkes
from .process import EventProcess
from .sequences import EventSequences
from .sinusoid import SinusoidalPoisson

PROCESSES = {"hawkes": ExpHawkes, "sinusoid": SinusoidalPoisson}
SAMPLERS = ("auto", "numpy", "tick")


def build_process(spec: dict) -> EventProcess:
    """{process: hawkes, baseline, adjacency, decay} | {process: sinusoid, base_rate, amplitude, period, phase}."""
    spec = dict(spec)
    name = spec.pop("process", None)
    if name not in PROCESSES:
        raise ValueError(f"generator.process must be one of {sorted(PROCESSES)}, got {name!r}")
    if name == "hawkes":
        spec["baseline"] = tuple(spec["baseline"])
        spec["adjacency"] = tuple(tuple(row) for row in spec["adjacency"])
    return PROCESSES[name](**spec)


def resolve_sampler(process: EventProcess, sampler: str) -> str:
    """'auto' → tick when the process has a tick sampler and tick imports, else numpy."""
    if sampler not in SAMPLERS:
        raise ValueError(f"generator.sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if sampler != "auto":
        return sampler
    if not hasattr(process, "sample_tick"):
        return "numpy"
    try:
        import tick.hawkes  # noqa: F401
    except ImportError:
        return "numpy"
    return "tick"


def generate(process: EventProcess, *, n_sequences: int, end_time: float, seed: int, sampler: str = "numpy",
             name: str = "generated") -> EventSequences:
    """n_sequences realisations on [0, end_time] with their exact next-event log-densities.

    Sequence s uses seed_s drawn from numpy's default_rng(seed) (so any prefix of the dataset is reproducible).
    """
    sampler = resolve_sampler(process, sampler)
    seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=n_sequences)
    times, marks, time_ll, mark_ll = [], [], [], []
    for s, seq_seed in enumerate(seeds):
        if sampler == "tick":
            t, m = process.sample_tick(int(seq_seed), end_time)
        else:
            t, m = process.sample(np.random.default_rng(int(seq_seed)), end_time)
        if len(t) == 0:
            raise ValueError(f"{name}: sequence {s} has no event on [0, {end_time}]: increase end_time")
        tl, ml = process.next_event_log_densities(t, m)
        times.append(t), marks.append(m), time_ll.append(tl), mark_ll.append(ml)
    info = {"sampler": sampler, "seed": seed, "end_time": end_time}
    return EventSequences(times, marks, process.num_marks, f"{name} generator", time_ll, mark_ll, info)


def write_metatpp_npz(path: Path, sequences: EventSequences) -> None:
    """Write sequences as Meta-TPP's padded npz (times = τ, marks 1-based), atomically."""
    path = Path(path)
    length = max(len(t) for t in sequences.times)
    shape = (len(sequences), length)
    times, marks, masks = np.zeros(shape), np.zeros(shape, dtype=np.int64), np.zeros(shape)
    for s, (tau, m) in enumerate(zip(sequences.inter_event_times(), sequences.marks)):
        times[s, :len(tau)], marks[s, :len(m)], masks[s, :len(m)] = tau, m + 1, 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, times=times, marks=marks, masks=masks)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
