"""Results store: one JSON record per run, `<results_root>/records/<task>/<dataset>/<run_id>.json`.

One file per run makes duplicates impossible (a rerun replaces its own file); records are written atomically
with tasks/fileio.py's `write_json_atomic` (a reader, or a kill at any moment, sees the old record or the new one).
"""
import json
from pathlib import Path

RECORDS = "records"


class RecordFormatError(ValueError):
    """A file in the results store is not a valid run record (the message names the file)."""


def record_path(results_root: str | Path, task: str, dataset: str, rid: str) -> Path:
    return Path(results_root) / RECORDS / task / dataset / f"{rid}.json"


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
