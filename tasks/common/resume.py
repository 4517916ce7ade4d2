"""Resuming interrupted runs: a lock against concurrent starts, RNG state in checkpoints, a fit-done marker.

Run folder layout: checkpoints/last.ckpt (every validation; what a relaunch resumes from),
checkpoints/best-*.ckpt (best on task.monitor), fit_done.json (fit finished: test the best checkpoint
without training further), .lock (held by the process running the run).
"""
import fcntl
import json
import os
import random
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from .store import write_json_atomic

LAST_CHECKPOINT = "checkpoints/last.ckpt"
FIT_DONE = "fit_done.json"


class RunLockedError(RuntimeError):
    """Another live process holds this run's lock."""


class RunLock:
    """An exclusive flock on <run_dir>/.lock: released by the OS when its process dies (no stale locks)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._file = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown pid"
            file.close()
            raise RunLockedError(f"run folder {self.path.parent} is in use by {holder}") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class RunStateCallback(L.Callback):
    """Saves the RNG states (python, numpy, torch) and the elapsed training time in every checkpoint.

    On resume the RNG states are put back when training restarts, so a killed-and-resumed run draws the same
    shuffles and dropout masks as an uninterrupted one (single process; in DDP each rank restores rank 0's).
    """

    def __init__(self):
        self.elapsed_before_s = 0.0
        self._started = time.monotonic()
        self._rng_to_restore = None

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.monotonic() - self._started

    def state_dict(self) -> dict:
        # plain types and tensors only: checkpoints load with torch.load(weights_only=True)
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {"elapsed_s": self.elapsed_s(), "rng": {
            "python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                   cached), "torch": torch.get_rng_state()}}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed_before_s = float(state.get("elapsed_s", 0.0))
        self._started = time.monotonic()
        self._rng_to_restore = state.get("rng")

    def _restore_rng(self) -> None:
        if self._rng_to_restore is not None:
            random.setstate(self._rng_to_restore["python"])
            kind, keys, pos, has_gauss, cached = self._rng_to_restore["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            torch.set_rng_state(self._rng_to_restore["torch"])

    # Put the states back right before the fit loop builds its first training iterator: after the checkpoint is
    # loaded (on_fit_start) and again after the sanity check, whose validation iterator draws from the RNG.
    def on_fit_start(self, trainer, pl_module) -> None:
        self._restore_rng()

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        self._restore_rng()

    def on_train_start(self, trainer, pl_module) -> None:
        self._rng_to_restore = None


def last_checkpoint(run_dir: Path) -> Path | None:
    path = Path(run_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None


def read_fit_done(run_dir: Path) -> dict | None:
    path = Path(run_dir) / FIT_DONE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    return state if Path(state.get("best_checkpoint", "")).is_file() else None


def write_fit_done(run_dir: Path, *, best_checkpoint: str, best_score: float | None, epochs: int,
                   elapsed_s: float) -> None:
    write_json_atomic(Path(run_dir) / FIT_DONE, {"best_checkpoint": best_checkpoint, "best_score": best_score,
                                                 "epochs": epochs, "elapsed_s": elapsed_s})


def clear_run_state(run_dir: Path) -> None:
    """force=true: forget checkpoints and markers so the run starts from scratch."""
    run_dir = Path(run_dir)
    for path in [run_dir / FIT_DONE, *(run_dir / "checkpoints").glob("*.ckpt")]:
        path.unlink(missing_ok=True)
