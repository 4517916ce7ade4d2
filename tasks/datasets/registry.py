"""The dataset registry (registry.yaml): what each dataset is, which files it has, where they come from, and
`locate()`, which finds a dataset's folder or says exactly how to get it.

Layout: `<data root>/<task>/<name>/<file path>`. `locate` falls back to an embedded copy when the data root
lacks the dataset: `embedded: repo` (shipped in <repo>/data, e.g. ETTh1) or `embedded: sktime` (the copy inside
the installed sktime package, e.g. JapaneseVowels). `embedded: generated` datasets have a documented generator
owned by their task instead (named in `generator`); `locate` still finds a real or regenerated copy on disk.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from .errors import DatasetFormatError, DatasetMissingError
from .paths import SHIPPED_ROOT, data_root, dataset_dir

REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
TASKS = ("forecasting", "classification", "tpp", "rl")
READERS = {  # format -> the function of tasks.datasets.readers that reads it
    "tslib_csv": "read_csv_series", "uea_ts": "read_ts", "d4rl_hdf5": "read_d4rl_hdf5",
    "meta_tpp_npz": "read_tpp", "ifl_tpp_npz": "read_tpp", "rmtpp_text": "read_tpp", "thp_pickle": "read_tpp",
}
EMBEDDED = ("repo", "sktime", "generated")
ARCHIVES = ("zip", "tar", "gz", "auto")
DOWNLOAD_SCRIPT = "python scripts/download.py"


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative to the dataset folder
    bytes: int | None  # None = unknown
    sha256: str | None  # None = unknown
    format: str


@dataclass(frozen=True)
class Source:
    """One way to obtain some of a dataset's files: a direct URL (plain file or archive) or a page to visit."""

    url: str | None
    page: str | None
    archive: str | None  # None = plain file
    provides: tuple[str, ...]  # file paths it supplies
    members: dict[str, str] = field(default_factory=dict)  # file path -> suffix of its archive member path

    @property
    def manual(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    format: str
    paper: bool
    home: str
    licence: str
    citation: str
    files: tuple[FileInfo, ...]
    sources: tuple[Source, ...]
    embedded: str | None = None
    generator: str | None = None
    facts: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def reader(self) -> str:
        return READERS[self.format]

    @property
    def download_command(self) -> str:
        return f"{DOWNLOAD_SCRIPT} {self.name}"

    def folder(self, root: Path | str | None = None) -> Path:
        return dataset_dir(data_root() if root is None else root, self.task, self.name)


@functools.cache
def load_registry(path: Path = REGISTRY_FILE) -> dict[str, DatasetInfo]:
    """Parse and check registry.yaml; a malformed entry raises DatasetFormatError naming it."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise DatasetFormatError(path, "expected a mapping of dataset names to entries")
    return {name: _parse_entry(path, name, entry) for name, entry in raw.items()}


def _parse_entry(path: Path, name: str, entry: dict) -> DatasetInfo:
    def fail(problem: str):
        raise DatasetFormatError(path, f"entry {name!r}: {problem}")

    if not isinstance(entry, dict):
        fail(f"must be a mapping of keys, got {type(entry).__name__}")
    if entry.get("task") not in TASKS:
        fail(f"task must be one of {TASKS}, got {entry.get('task')!r}")
    if entry.get("format") not in READERS:
        fail(f"format must be one of {sorted(READERS)}, got {entry.get('format')!r}")
    if entry.get("embedded") not in (None, *EMBEDDED):
        fail(f"embedded must be one of {EMBEDDED}, got {entry['embedded']!r}")
    raw_files = entry.get("files") or ()
    if any(not isinstance(f, dict) or not isinstance(f.get("path"), str) for f in raw_files):
        fail("every file needs a `path` (and optional bytes, sha256, format)")
    files = tuple(FileInfo(path=f["path"], bytes=f.get("bytes"), sha256=f.get("sha256"),
                           format=f.get("format", entry["format"])) for f in raw_files)
    if not files:
        fail("no files")
    for f in files:  # the downloader writes <dataset folder>/<path>: it must stay inside that folder
        if PurePosixPath(f.path).is_absolute() or ".." in PurePosixPath(f.path).parts:
            fail(f"file path {f.path!r} must be relative and stay inside the dataset folder")
    paths = [f.path for f in files]
    sources = []
    for raw_source in entry.get("sources") or ():
        url, page, archive = raw_source.get("url"), raw_source.get("page"), raw_source.get("archive")
        provides = tuple(raw_source.get("provides", paths))
        members = dict(raw_source.get("members", {}))
        if not url and not page:
            fail("a source needs a `url` or a `page`")
        if url and not str(url).startswith(("http://", "https://")):
            fail(f"source url {url!r} must start with http:// or https://")
        if archive not in (None, *ARCHIVES):
            fail(f"archive must be one of {ARCHIVES}, got {archive!r}")
        if url and archive is None and len(provides) != 1:
            fail(f"plain-file source {url} must provide exactly one file, not {list(provides)}")
        unknown = sorted((set(provides) | set(members)) - set(paths))
        if unknown:
            fail(f"source names unknown files {unknown}")
        sources.append(Source(url=url, page=page, archive=archive, provides=provides, members=members))
    known = {"task", "format", "paper", "home", "licence", "citation", "embedded", "generator", "facts", "files",
             "sources", "notes"}
    if set(entry) - known:
        fail(f"unknown keys {sorted(set(entry) - known)}")
    return DatasetInfo(
        name=name, task=entry["task"], format=entry["format"], paper=bool(entry.get("paper", False)),
        home=entry.get("home", ""), licence=entry.get("licence", ""), citation=entry.get("citation", ""),
        files=files, sources=tuple(sources), embedded=entry.get("embedded"), generator=entry.get("generator"),
        facts=dict(entry.get("facts") or {}), notes=entry.get("notes", ""),
    )


def get(name: str) -> DatasetInfo:
    registry = load_registry()
    if name not in registry:
        close = [n for n in registry if n.lower() == name.lower()]
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(registry)}"
        raise KeyError(f"unknown dataset {name!r}{hint}")
    return registry[name]


def names(task: str | None = None, *, paper_only: bool = False) -> list[str]:
    return [n for n, info in load_registry().items()
            if (task is None or info.task == task) and (info.paper or not paper_only)]


def select(selector: str) -> list[DatasetInfo]:
    """A dataset name, a task name, or "all" -> the datasets it means (registry order)."""
    if selector == "all":
        return list(load_registry().values())
    if selector in TASKS:
        return [get(n) for n in names(selector)]
    return [get(selector)]


def embedded_dir(info: DatasetInfo) -> Path | None:
    """Where an embedded copy of the dataset sits (None if it has none or it is not installed)."""
    if info.embedded == "repo":
        return dataset_dir(SHIPPED_ROOT, info.task, info.name)
    if info.embedded == "sktime":
        spec = importlib.util.find_spec("sktime")  # locate the package without importing it (slow)
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / "datasets" / "data" / info.name
    return None


def locate(name: str, root: Path | str | None = None) -> Path:
    """The folder holding every file of dataset `name`: <root>/<task>/<name>, else its embedded copy.
    Raises DatasetMissingError (naming the dataset, the folder searched and the download command) when absent,
    and DatasetFormatError when a file's size differs from the registry's (an incomplete download)."""
    info = get(name)
    folder = info.folder(root)
    missing = [f.path for f in info.files if not (folder / f.path).is_file()]
    if missing and len(missing) == len(info.files):
        fallback = embedded_dir(info)
        if fallback is not None and all((fallback / f.path).is_file() for f in info.files):
            return fallback
    if missing:
        detail = f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        if info.generator:
            detail += f"; or generate a stand-in with {info.generator}"
        raise DatasetMissingError(name=name, searched=folder, command=info.download_command, detail=detail)
    for f in info.files:
        size = (folder / f.path).stat().st_size
        if f.bytes is not None and size != f.bytes:
            raise DatasetFormatError(folder / f.path, f"has {size} bytes, the registry expects {f.bytes} "
                                                      f"(incomplete download?); re-run {info.download_command}")
    return folder
