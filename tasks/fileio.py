"""Atomic JSON files: a write goes to a temporary file in the same folder, is fsynced, then os.replace()d over the
target, so a reader (or a kill at any moment) sees the old file or the new one, never a torn one. A temporary file a
kill left behind is removed by the next write to its folder once it is older than STALE_TMP_S (a write takes
milliseconds; a younger one may be a live writer's, on this host or another one sharing the folder).

General file IO of the suite: the harness's records and checkpoints, the RL data regeneration and the benchmarks all
write with it.
"""
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Callable

TMP_SUFFIX = ".tmp"
STALE_TMP_S = 600


def write_atomic(path: str | Path, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Call `write(file)` on a temporary file in `path`'s folder, fsync it, os.replace() it over `path` and fsync
    the folder; a failure (or a kill) at any point leaves the old file. Text mode unless `binary`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a record is an ordinary (committed) file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def write_json_atomic(path: str | Path, payload: dict) -> Path:
    """Write `payload` as JSON (indented, sorted keys, no NaN) to `path` atomically."""
    def write(file):
        json.dump(payload, file, indent=2, sort_keys=True, allow_nan=False)
        file.write("\n")

    return write_atomic(path, write)


def remove_stale_tmp_files(folder: Path, *, older_than_s: float = STALE_TMP_S) -> list[Path]:
    """Delete `.<name>.XXXX.tmp` files (left by a kill during a write) older than `older_than_s` seconds."""
    now, removed = time.time(), []
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another writer cleaned it first
            pass
    return removed
