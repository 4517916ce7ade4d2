"""Checksummed, resumable downloads into `<data root>/<task>/<name>/` (stdlib only: urllib, zipfile, tarfile).

For each file still missing or corrupt, the registry's sources are tried in order. A transfer streams into a
partial file in the destination folder (`.<file>.<url hash>.part`), resumes with an HTTP Range request after a cut
connection or a re-run, and is checked against the registry's sha256 before an atomic rename puts it in place.
Archives (zip / tar / gz, or sniffed with `auto`) are downloaded the same way, then the wanted members are
extracted to temporary files, checked, and renamed into place. A 404, a timeout, an HTML page instead of data or a
checksum or size mismatch, or a malformed URL raises DownloadError naming the URL and the problem; nothing
half-written is left behind except the resumable partial. A transfer shorter than the registry's size is a cut
connection even when the server sent no Content-Length. Files whose sha256 is unknown are accepted (their
computed hash is reported) once they have the registry's size, or, with no size known either, once they read as
their format (a cut CSV, HDF5, .ts or .npz does not).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .registry import DatasetInfo, FileInfo, Source, embedded_dir

CHUNK_BYTES = 1 << 20
USER_AGENT = "aaren-dataset-downloader/1.0 (+python urllib)"


class DownloadError(RuntimeError):
    """A dataset file could not be obtained; the message says from where, why, and what to do."""


@dataclass(frozen=True)
class FileStatus:
    file: FileInfo
    path: Path  # where it belongs
    state: str  # present | unverified (sha256 unknown) | missing | corrupt
    detail: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def file_problem(path: Path, expected: FileInfo, *, hash_files: bool = True) -> str | None:
    """Why `path` is not the registry's file (size, then sha256), or None if it is (or cannot be told)."""
    size = path.stat().st_size
    if expected.bytes is not None and size != expected.bytes:
        return f"has {size} bytes, expected {expected.bytes}"
    if hash_files and expected.sha256 is not None and (actual := sha256_of(path)) != expected.sha256:
        return f"sha256 {actual} != expected {expected.sha256}"
    return None


def dataset_status(info: DatasetInfo, root: Path | str | None = None, *, hash_files: bool = True) -> list[FileStatus]:
    """The state of every file of `info` under the data root."""
    statuses = []
    for f in info.files:
        path = info.folder(root) / f.path
        if not path.is_file():
            statuses.append(FileStatus(f, path, "missing"))
        elif problem := file_problem(path, f, hash_files=hash_files):
            statuses.append(FileStatus(f, path, "corrupt", problem))
        else:
            statuses.append(FileStatus(f, path, "present" if f.sha256 else "unverified"))
    return statuses


def summary(info: DatasetInfo, statuses: list[FileStatus]) -> str:
    """One word for a dataset: present / unverified / missing / corrupt / partial / embedded (...)."""
    states = {s.state for s in statuses}
    if states <= {"present", "unverified"}:
        return "unverified" if "unverified" in states else "present"
    if "corrupt" in states:
        return "corrupt"
    if states == {"missing"}:
        fallback = embedded_dir(info)
        if fallback is not None and all((fallback / f.path).is_file() for f in info.files):
            return f"embedded ({fallback})"
        return "missing"
    return "partial"


def download_dataset(info: DatasetInfo, root: Path | str | None = None, *, timeout: float = 60.0, retries: int = 3,
                     retry_wait: float = 2.0, log=print) -> list[Path]:
    """Fetch every missing or corrupt file of `info`; return the paths written. Raises DownloadError (after trying
    every source) naming each failure and, for what is still missing, the exact file to place where."""
    needed = {s.file.path: s for s in dataset_status(info, root) if s.state in ("missing", "corrupt")}
    if not needed:
        log(f"{info.name}: already present")
        return []
    folder = info.folder(root)
    written, failures = [], []
    for source in info.sources:
        wanted = [p for p in source.provides if p in needed]
        if not wanted:
            continue
        if source.manual:
            failures.append(f"manual download: {source.page}")
            continue
        try:
            fetch = _from_archive if source.archive else _from_plain
            for status in fetch(folder, source, [needed[p] for p in wanted], timeout=timeout, retries=retries,
                                retry_wait=retry_wait, log=log):
                written.append(status.path)
                needed.pop(status.file.path)
        except DownloadError as error:
            failures.append(str(error))
            log(f"{info.name}: {error}")
    if needed:
        places = "\n".join(f"  place {p} at {s.path}" + (f" (sha256 {s.file.sha256})" if s.file.sha256 else "")
                           for p, s in needed.items())
        tried = "\n".join(f"  - {f}" for f in failures) or "  (no source listed)"
        raise DownloadError(f"{info.name}: could not obtain {len(needed)} file(s).\nTried:\n{tried}\n"
                            f"By hand:\n{places}")
    return written


def _from_plain(folder: Path, source: Source, statuses: list[FileStatus], **transfer):
    """Yield each status once its file is in place (a plain source provides one file)."""
    (status,) = statuses
    part = _partial_path(status.path, source.url)
    _transfer(source.url, part, total=status.file.bytes, **transfer)
    _install(part, status, source.url, transfer["log"])
    yield status


def _from_archive(folder: Path, source: Source, statuses: list[FileStatus], **transfer):
    """Download the archive into the dataset folder, then yield each status once its member is in place."""
    archive = _partial_path(folder / Path(source.url.split("?")[0]).name, source.url)
    _transfer(source.url, archive, total=None, **transfer)
    kind = source.archive if source.archive != "auto" else _sniff(archive)
    for status in statuses:
        tmp = status.path.with_name(f".{status.path.name}.extracting")
        status.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _extract(archive, kind, source.members.get(status.file.path, Path(status.file.path).name), tmp,
                     source.url)
            _install(tmp, status, source.url, transfer["log"])
        except DownloadError:
            archive.unlink(missing_ok=True)  # a bad member means a bad archive: do not resume it
            raise
        finally:
            tmp.unlink(missing_ok=True)
        yield status
    archive.unlink()  # every wanted member is in place


def _partial_path(target: Path, url: str) -> Path:
    tag = hashlib.sha256(url.encode()).hexdigest()[:8]  # different sources never resume each other's bytes
    return target.with_name(f".{target.name}.{tag}.part")


def _install(tmp: Path, status: FileStatus, url: str, log) -> None:
    """Check `tmp` against the registry (size, sha256; with neither known, its format's reader), then rename it
    atomically to the file's place (or delete it)."""
    expected = status.file
    size = tmp.stat().st_size
    if expected.bytes is not None and size != expected.bytes:
        tmp.unlink()
        raise DownloadError(f"size mismatch for {expected.path} from {url}: {size} bytes, the registry expects "
                            f"{expected.bytes} (download deleted)")
    if expected.bytes is None and expected.sha256 is None:
        _check_readable(tmp, expected, url)
    actual = sha256_of(tmp)
    if expected.sha256 is not None and actual != expected.sha256:
        tmp.unlink()
        raise DownloadError(f"checksum mismatch for {expected.path} from {url}: sha256 {actual}, expected "
                            f"{expected.sha256} (download deleted)")
    if expected.sha256 is None:
        log(f"  {expected.path}: no sha256 known to check against; got sha256 {actual} (unverified)")
    os.replace(tmp, status.path)
    log(f"  {status.path} ok")


def _check_readable(tmp: Path, expected: FileInfo, url: str) -> None:
    """Nothing to check a file against (no registry size or sha256, e.g. a server that closed early without a
    Content-Length): it must at least read as its format. Not for formats whose reader needs the file's own name
    or sibling files (rmtpp_text, thp_pickle; every registry file of theirs has a sha256)."""
    from . import readers

    fmt = expected.format
    read = {"tslib_csv": readers.read_csv_series, "uea_ts": readers.read_ts, "d4rl_hdf5": readers.read_d4rl_hdf5,
            "meta_tpp_npz": functools.partial(readers.read_tpp, fmt=fmt),
            "ifl_tpp_npz": functools.partial(readers.read_tpp, fmt=fmt)}.get(fmt)
    if read is None:
        return
    try:
        read(tmp)
    except readers.DatasetFormatError as error:
        tmp.unlink()
        raise DownloadError(f"{expected.path} from {url} does not read as {fmt} ({error.problem}); the registry has "
                            f"no size or sha256 to check it against, so a cut transfer looks like this "
                            f"(download deleted)") from None


def _check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a non-numeric or out-of-range port
    except ValueError as error:
        raise DownloadError(f"malformed URL {url!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(f"malformed URL {url!r}: expected http:// or https:// followed by a host")


def _transfer(url: str, part: Path, *, total: int | None, timeout: float, retries: int, retry_wait: float,
              log) -> None:
    """Stream `url` into `part`, resuming from its current size; retry cut connections and timeouts. `total`:
    the file's size when the registry knows it (catches a cut that a missing Content-Length would hide)."""
    _check_url(url)
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _stream(url, part, timeout, total)
            return
        except (OSError, http.client.HTTPException) as error:  # timeouts, resets, cut bodies, HTTP errors
            if isinstance(error, urllib.error.HTTPError) or attempt == retries:
                raise _describe(url, part, error) from None
            log(f"  {url}: {type(error).__name__} after {_size(part)} bytes, resuming ({attempt + 1}/{retries})")
            time.sleep(retry_wait)


def _stream(url: str, part: Path, timeout: float, total: int | None) -> None:
    have = _size(part)
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after our bytes: complete if the server's total is ours
            if error.headers.get("Content-Range", "") == f"bytes */{have}":
                return None
            part.unlink()
            return _stream(url, part, timeout, total)
        raise
    except (ValueError, http.client.InvalidURL) as error:  # control characters, unknown URL types, ...
        raise DownloadError(f"malformed URL {url!r}: {error}") from None
    with response:
        if "text/html" in response.headers.get("Content-Type", "") and not url.split("?")[0].endswith(".html"):
            raise DownloadError(f"{url} returned an HTML page, not the data (a login, consent or Google Drive "
                                f"confirmation page?): download it in a browser instead")
        resumed = response.status == 206
        expected = response.headers.get("Content-Length")
        with open(part, "ab" if resumed else "wb") as out:
            copied = _copy(response, out)
        if expected is not None and copied < int(expected):
            raise ConnectionError(f"connection closed after {copied} of {expected} bytes")
        if expected is None and total is not None and _size(part) < total:
            raise ConnectionError(f"connection closed after {_size(part)} of the registry's {total} bytes "
                                  "(the server sent no Content-Length)")


def _copy(response, out) -> int:
    copied = 0
    while block := response.read(CHUNK_BYTES):
        out.write(block)
        copied += len(block)
    return copied


def _describe(url: str, part: Path, error: Exception) -> DownloadError:
    if isinstance(error, urllib.error.HTTPError):
        part.unlink(missing_ok=True)
        return DownloadError(f"HTTP {error.code} {error.reason} for {url}")
    kept = f"; {_size(part)} bytes kept in {part}, re-run to resume" if _size(part) else ""
    if not kept:
        part.unlink(missing_ok=True)
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return DownloadError(f"timed out fetching {url}{kept}")
    return DownloadError(f"could not fetch {url}: {error}{kept}")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _sniff(archive: Path) -> str:
    with open(archive, "rb") as handle:
        head = handle.read(262)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    raise DownloadError(f"{archive}: not a zip, tar or gzip archive (first bytes {head[:8]!r})")


def _extract(archive: Path, kind: str, member: str, out: Path, url: str) -> None:
    """Copy the archive member whose path ends with `member` to `out` (a gz archive holds one file)."""
    try:
        if kind == "gz":
            with gzip.open(archive) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
            return
        if kind == "zip":
            with zipfile.ZipFile(archive) as bundle:
                name = _pick(bundle.namelist(), member, url)
                with bundle.open(name) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK_BYTES)
            return
        with tarfile.open(archive) as bundle:
            names = [m.name for m in bundle.getmembers() if m.isfile()]
            with bundle.extractfile(_pick(names, member, url)) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as error:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{url}: broken {kind} archive ({error}); deleted, re-run to download again") from None


def _pick(names: list[str], member: str, url: str) -> str:
    matches = [n for n in names if (n == member or n.endswith("/" + member)) and "__MACOSX" not in n]
    if len(matches) != 1:
        listing = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        problem = "no member" if not matches else f"{len(matches)} members"
        raise DownloadError(f"{url}: {problem} ending in {member!r} (archive holds: {listing})")
    return matches[0]
