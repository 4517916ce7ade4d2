"""Where datasets live: `<data root>/<task>/<Name>/<files>` (the layout of the team's ../shared/datasets).

The data root is $AAREN_DATA_ROOT when set (relative paths are taken from the current directory), else
`<repo>/data/`, which also holds the copies shipped in git (ETTh1).
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "AAREN_DATA_ROOT"
REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ROOT = REPO_ROOT / "data"  # default root, and where datasets shipped in git sit


def data_root() -> Path:
    """$AAREN_DATA_ROOT if set and non-empty, else <repo>/data."""
    configured = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else SHIPPED_ROOT


def dataset_dir(root: Path | str, task: str, name: str) -> Path:
    """<root>/<task>/<name>."""
    return Path(root) / task / name
