"""Results store: one JSON record per run, `<results_root>/records/<task>/<dataset>/<run_id>.json`.

One file per run makes duplicates impossible (a rerun replaces its own file); each write goes to a temporary
file in the same folder, is fsynced, then os.replace()d over the target, so a reader (or a kill at any moment)
sees the old record or the new one, never a torn file. A temporary file a kill left behind is removed by the next
write to its folder once it is older than STALE_TMP_S (a write takes milliseconds; a younger one may be a live
writer's, on this host or another one sharing the store).
"""
import json
import os
import tempfile
import time
from pathlib import Path

RECORDS = "records"
TMP_SUFFIX = ".tmp"
STALE_TMP_S = 600


class RecordFormatError(ValueError):
    """A file in the results store is not a valid run record (the message names the file)."""


def record_path(results_root: str | Path, task: str, dataset: str, rid: str) -> Path:
    return Path(results_root) / RECORDS / task / dataset / f"{rid}.json"


def write_json_atomic(path: str | Path, payload: dict) -> Path:
    """Write `payload` as JSON to `path` atomically (tmp file in the same folder + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(payload, file, indent=2, sort_keys=True, allow_nan=False)
            file.write("\n")
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


REQUIRED = ("run_id", "task", "dataset", "model", "seed", "variant", "metrics")


def read_record(path: str | Path) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RecordFormatError(f"{path}: not a readable JSON record ({error})") from error
    missing = [key for key in REQUIRED if key not in record] if isinstance(record, dict) else list(REQUIRED)
    if missing:
        raise RecordFormatError(f"{path}: record lacks keys {missing}")
    return record


def load_records(results_root: str | Path, task: str | None = None) -> list[dict]:
    """Every record of the store (of one task if given), sorted by path; temporary files are not records."""
    base = Path(results_root) / RECORDS / (task or "")
    return [read_record(path) for path in sorted(base.rglob("*.json")) if not path.name.startswith(".")]


def find_by_config_hash(folder: str | Path, config_hash: str) -> tuple[Path, dict] | None:
    """The first record (by name) in `folder` (one task/dataset) with these config values, any experiment; or None."""
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        if path.name.startswith("."):
            continue
        record = read_record(path)
        if record.get("config_hash") == config_hash and "copied_from" not in record:
            return path, record
    return None
