"""Resuming interrupted runs: a lock against concurrent starts, RNG state and learning curve in checkpoints, a
fit-done marker, atomic checkpoint writes, and recovery from files a kill or a full disk left unreadable.

Run folder layout: checkpoints/last.ckpt (every validation; what a relaunch resumes from),
checkpoints/best-*.ckpt (best on task.monitor), fit_done.json (fit finished: test the best checkpoint
without training further), .lock (held by the process running the run), corrupt/ (unreadable files moved aside).
"""
import fcntl
import json
import logging
import math
import multiprocessing
import os
import random
import threading
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tasks.fileio import write_atomic, write_json_atomic

log = logging.getLogger("aaren.harness")
CORRUPT = "corrupt"
VAL_PREFIX = "val/"

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


def exit_with_parent(poll_s: float = 0.5) -> bool:
    """In a worker process of a multiprocessing pool (hydra/launcher=local_parallel: joblib's loky workers), exit
    as soon as the parent dies (the worker is re-parented: its parent pid changes), instead of training on as an
    orphan. A plain `python train.py` is not a pool worker and is left alone (nohup keeps working). Its run folder
    keeps the last atomic checkpoint: relaunching the sweep resumes it. True when the watch was started."""
    if multiprocessing.parent_process() is None or getattr(exit_with_parent, "started", False):
        return False
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.warning("parent process %s died; sweep worker %s exits (relaunch the sweep to resume)", parent,
                    os.getpid())
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    exit_with_parent.started = True
    return True


class RunStateCallback(L.Callback):
    """Saves the RNG states (python, numpy, torch), the elapsed training time and the code versions in every
    checkpoint.

    On resume the RNG states are put back when training restarts, so a killed-and-resumed run draws the same
    shuffles and dropout masks as an uninterrupted one (single process; in DDP each rank restores rank 0's).
    code: the git state ({sha, dirty}) this process started with; `code_versions` lists, in order, the distinct
    states of every process that ran the fit (one entry unless the run was resumed under other code).
    """

    def __init__(self, code: dict | None = None):
        self.code_versions = [] if code is None else [dict(code)]
        self.learning_curve = []  # one {"epoch", "step", <val/* scalars>} per validation round (not sanity)
        self.elapsed_before_s = 0.0
        self._started = time.monotonic()
        self._rng_to_restore = None

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.monotonic() - self._started

    def state_dict(self) -> dict:
        # plain types and tensors only: checkpoints load with torch.load(weights_only=True)
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {"elapsed_s": self.elapsed_s(), "learning_curve": self.learning_curve,
                "code_versions": self.code_versions, "rng": {
            "python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                   cached), "torch": torch.get_rng_state()}}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed_before_s = float(state.get("elapsed_s", 0.0))
        self.learning_curve = list(state.get("learning_curve", []))
        earlier = [dict(code) for code in state.get("code_versions", [])]
        self.code_versions = earlier + [code for code in self.code_versions if not earlier or code != earlier[-1]]
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

    # Runs before ModelCheckpoint's on_validation_end (Lightning puts checkpoint callbacks last), so the
    # checkpoint written after this round already holds its point of the curve.
    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        point = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step)}
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith(VAL_PREFIX) and getattr(value, "numel", lambda: 1)() == 1:
                value = float(value)
                point[name] = value if math.isfinite(value) else None
        self.learning_curve.append(point)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save through tasks/fileio.py's write_atomic (temporary file, fsync, os.replace): a kill or a full disk
    leaves the previous checkpoint or the new one, never a truncated file (Lightning writes in place)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        write_atomic(path, lambda file: torch.save(checkpoint, file), binary=True)


def _loads(path: Path) -> dict | None:
    """The checkpoint's content, or None (with a warning naming the file) when it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated (EOFError, OSError 22), not a zip archive, unpickling refused, ...
        log.warning("checkpoint %s cannot be loaded (%s: %s)", path, type(error).__name__, error)
        return None


def _move_aside(path: Path, run_dir: Path, move: bool) -> None:
    """Move an unreadable file into <run_dir>/corrupt/ (kept for inspection, never resumed from again)."""
    if not move or not path.exists():
        return
    target = Path(run_dir) / CORRUPT / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    log.warning("moved %s aside to %s", path, target)


def _best_path(state: dict) -> str | None:
    """The monitored checkpoint callback's best file (the unmonitored one that writes last.ckpt names itself)."""
    for key, value in (state.get("callbacks") or {}).items():
        if key.startswith("ModelCheckpoint") and isinstance(value, dict) and value.get("monitor"):
            return value.get("best_model_path") or None
    return None


def loadable_checkpoint(run_dir: Path, *, move_aside: bool = True) -> Path | None:
    """The newest checkpoint that loads and whose best checkpoint still loads: last.ckpt first, then best-*.ckpt.
    Unreadable ones are moved aside with a warning; None: train from scratch."""
    run_dir = Path(run_dir)
    candidates = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt",
                                                                                 -p.stat().st_mtime))
    for path in candidates:
        state = _loads(path)
        if state is None:
            _move_aside(path, run_dir, move_aside)
            continue
        best = _best_path(state)
        if best is not None and Path(best).resolve() != path.resolve() and \
                (not Path(best).is_file() or _loads(Path(best)) is None):
            log.warning("checkpoint %s refers to best checkpoint %s, which cannot be loaded", path, best)
            _move_aside(Path(best), run_dir, move_aside)
            continue
        return path
    if candidates:
        log.warning("no checkpoint of %s loads; training from scratch", run_dir)
    return None


def read_fit_done(run_dir: Path, *, move_aside: bool = True) -> dict | None:
    """The fit-done marker, or None: absent, unreadable, or its best checkpoint cannot be loaded (those two are
    moved aside with a warning naming the file, and the run resumes from its newest loadable checkpoint)."""
    run_dir = Path(run_dir)
    path = run_dir / FIT_DONE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        best = Path(state["best_checkpoint"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("fit marker %s is unreadable (%s: %s)", path, type(error).__name__, error)
        _move_aside(path, run_dir, move_aside)
        return None
    if not best.is_file() or _loads(best) is None:
        log.warning("fit marker %s names best checkpoint %s, which cannot be loaded", path, best)
        _move_aside(best, run_dir, move_aside)
        _move_aside(path, run_dir, move_aside)
        return None
    return state


def write_fit_done(run_dir: Path, fit: dict) -> None:
    """fit: best_checkpoint, best_score, epochs, elapsed_s, learning_curve, training (record.training_summary)."""
    write_json_atomic(Path(run_dir) / FIT_DONE, fit)


def clear_run_state(run_dir: Path) -> None:
    """force=true: forget checkpoints and markers so the run starts from scratch."""
    run_dir = Path(run_dir)
    for path in [run_dir / FIT_DONE, *(run_dir / "checkpoints").glob("*.ckpt")]:
        path.unlink(missing_ok=True)
