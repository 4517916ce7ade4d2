"""Checks shared by every reader."""
from __future__ import annotations

from pathlib import Path


def require_file(path: Path | str) -> Path:
    """Return `path` as a Path, or raise FileNotFoundError naming it (readers take explicit file paths)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path
