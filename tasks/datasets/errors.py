"""The two errors of the data layer: a dataset that is not on disk, and a file that is not what its format says.

Both subclass the built-in error a caller would naturally catch (FileNotFoundError, ValueError) and both carry a
message that names the file (or folder) and the problem, so a user can act on it without reading code.
"""
from __future__ import annotations

from pathlib import Path


class DatasetMissingError(FileNotFoundError):
    """A dataset (or one of its files) is absent: names the dataset, the path searched and how to get it."""

    def __init__(self, *, name: str, searched: Path | str, command: str, detail: str = ""):
        self.name, self.searched, self.command = name, Path(searched), command
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"dataset {name!r} not found: searched {self.searched}{extra}. "
            f"Get it with: {command}  (or set AAREN_DATA_ROOT to a data root that holds <task>/<Name>/)"
        )

    def __str__(self) -> str:  # FileNotFoundError would otherwise format (errno, strerror)
        return self.args[0]


class DatasetFormatError(ValueError):
    """A file exists but its content is malformed: the message starts with the file path, then the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{self.path}: {problem}")
