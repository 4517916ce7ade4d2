"""The downloader against a local HTTP server on 127.0.0.1 (no internet): success, resume after a cut
connection, bad checksum, 404, timeout, HTML instead of data, archives, mirrors; and the CLI's --list."""
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import re
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import fixtures
from tasks.datasets.download import DownloadError, dataset_status, download_dataset
from tasks.datasets.paths import REPO_ROOT
from tasks.datasets.registry import DatasetInfo, FileInfo, Source


class Server:
    """Serves `files` (path -> bytes) with Range support. Behaviours by path prefix: /cut/ closes the first
    response half-way (every response if `always_cut`), /nolen/ sends no Content-Length (the body ends when the
    connection closes) and /nolen-cut/ also cuts like /cut/, /slow/ stalls, /html/ answers a web page;
    unknown -> 404."""

    def __init__(self):
        self.files, self.requests, self.always_cut = {}, [], False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path.startswith("/slow/"):
                    time.sleep(1.0)
                if self.path.startswith("/html/"):
                    return self._reply(200, b"<html>please confirm</html>", content_type="text/html")
                body = server.files.get(self.path)
                if body is None:
                    return self._reply(404, b"not found")
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return None
                cut = self.path.startswith(("/cut/", "/nolen-cut/")) and (server.always_cut or start == 0)
                self.send_response(206 if start else 200)
                if not self.path.startswith("/nolen"):
                    self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(body[start: start + (len(body) - start) // 2] if cut else body[start:])
                if cut:
                    self.close_connection = True

            def _reply(self, code, body, content_type="text/plain"):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def csv_bytes(tmp_path):
    return fixtures.make_tslib_csv(tmp_path / "src" / "toy.csv", n_rows=400).read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dataset(files: dict, sources: list, name="Toy", task="forecasting", fmt="tslib_csv") -> DatasetInfo:
    """files: path -> bytes (None = sha unknown); sources: [(url, archive, provides or None)]."""
    infos = tuple(FileInfo(path=p, bytes=None if b is None else len(b), sha256=None if b is None else _sha(b),
                           format=fmt) for p, b in files.items())
    return DatasetInfo(name=name, task=task, format=fmt, paper=False, home="", licence="", citation="",
                       files=infos, sources=tuple(Source(url=u, page=None, archive=a, provides=tuple(p or files))
                                                  for u, a, p in sources))


def _quiet(*args):
    pass


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_success_then_skip(server, csv_bytes, tmp_path):
    server.files["/d/toy.csv"] = csv_bytes
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/d/toy.csv", None, None)])
    root = tmp_path / "root"
    written = download_dataset(info, root, log=_quiet)
    assert [p.read_bytes() for p in written] == [csv_bytes]
    assert _leftovers(root / "forecasting" / "Toy") == ["toy.csv"]
    assert [s.state for s in dataset_status(info, root)] == ["present"]
    n_requests = len(server.requests)
    assert download_dataset(info, root, log=_quiet) == [] and len(server.requests) == n_requests


def test_resume_after_cut_connection(server, csv_bytes, tmp_path):
    server.files["/cut/toy.csv"] = csv_bytes
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/cut/toy.csv", None, None)])
    download_dataset(info, tmp_path, retry_wait=0, log=_quiet)
    assert (tmp_path / "forecasting" / "Toy" / "toy.csv").read_bytes() == csv_bytes
    assert server.requests == [("/cut/toy.csv", None), ("/cut/toy.csv", f"bytes={len(csv_bytes) // 2}-")]


def test_partial_kept_and_resumed_by_a_rerun(server, csv_bytes, tmp_path):
    server.files["/cut/toy.csv"] = csv_bytes
    server.always_cut = True
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/cut/toy.csv", None, None)])
    with pytest.raises(DownloadError, match=r"bytes kept in .*\.toy\.csv\.[0-9a-f]{8}\.part, re-run to resume"):
        download_dataset(info, tmp_path, retries=1, retry_wait=0, log=_quiet)
    folder = tmp_path / "forecasting" / "Toy"
    (partial,) = folder.iterdir()
    assert partial.name.endswith(".part") and 0 < partial.stat().st_size < len(csv_bytes)
    kept = partial.stat().st_size
    server.always_cut = False
    server.requests.clear()
    download_dataset(info, tmp_path, retry_wait=0, log=_quiet)
    assert _leftovers(folder) == ["toy.csv"] and (folder / "toy.csv").read_bytes() == csv_bytes
    assert server.requests == [("/cut/toy.csv", f"bytes={kept}-")]


def test_bad_checksum_leaves_nothing(server, csv_bytes, tmp_path):
    server.files["/d/toy.csv"] = csv_bytes[:-9] + b"tampered\n"  # same size, other bytes
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/d/toy.csv", None, None)])
    with pytest.raises(DownloadError, match=r"checksum mismatch for toy.csv .* expected " + _sha(csv_bytes)):
        download_dataset(info, tmp_path, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []


def test_404_names_url_and_file_to_place(server, csv_bytes, tmp_path):
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/nothing/toy.csv", None, None)])
    with pytest.raises(DownloadError) as error:
        download_dataset(info, tmp_path, log=_quiet)
    message = str(error.value)
    assert f"HTTP 404 Not Found for {server.url}/nothing/toy.csv" in message
    assert f"place toy.csv at {tmp_path / 'forecasting' / 'Toy' / 'toy.csv'} (sha256 {_sha(csv_bytes)})" in message
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []


def test_timeout(server, csv_bytes, tmp_path):
    server.files["/slow/toy.csv"] = csv_bytes
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/slow/toy.csv", None, None)])
    with pytest.raises(DownloadError, match="timed out fetching"):
        download_dataset(info, tmp_path, timeout=0.2, retries=0, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []


def test_html_page_instead_of_data(server, csv_bytes, tmp_path):
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/html/uc?id=x", None, None)])
    with pytest.raises(DownloadError, match="returned an HTML page"):
        download_dataset(info, tmp_path, log=_quiet)


def test_mirror_used_when_first_source_fails(server, csv_bytes, tmp_path):
    server.files["/mirror/toy.csv.gz"] = gzip.compress(csv_bytes)
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/gone/toy.csv", None, None),
                                             (server.url + "/mirror/toy.csv.gz", "gz", None)])
    download_dataset(info, tmp_path, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == ["toy.csv"]


def _zip(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(members: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in members.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            bundle.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("pack, archive", [(_zip, "zip"), (_tar_gz, "tar"), (_zip, "auto"), (_tar_gz, "auto")])
def test_archive_unpacked_and_checked(server, tmp_path, pack, archive):
    train, test = fixtures.make_ts_pair(tmp_path / "src", "Toy")
    files = {train.name: train.read_bytes(), test.name: test.read_bytes()}
    server.files["/a/Toy.bin"] = pack({f"Toy/{k}": v for k, v in files.items()} | {"Toy/README.txt": b"x"})
    info = _dataset(files, [(server.url + "/a/Toy.bin", archive, None)], task="classification", fmt="uea_ts")
    download_dataset(info, tmp_path, log=_quiet)
    folder = tmp_path / "classification" / "Toy"
    assert _leftovers(folder) == sorted(files)  # archive and temporary files removed
    assert all((folder / k).read_bytes() == v for k, v in files.items())


def test_archive_without_the_member(server, tmp_path):
    server.files["/a/other.zip"] = _zip({"Other_TRAIN.ts": b"x"})
    info = _dataset({"Toy_TRAIN.ts": b"y"}, [(server.url + "/a/other.zip", "zip", None)])
    with pytest.raises(DownloadError, match=r"no member ending in 'Toy_TRAIN.ts' \(archive holds: Other_TRAIN.ts\)"):
        download_dataset(info, tmp_path, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []


def test_unknown_checksum_is_accepted_and_reported(server, csv_bytes, tmp_path):
    server.files["/d/toy.csv"] = csv_bytes
    info = _dataset({"toy.csv": None}, [(server.url + "/d/toy.csv", None, None)])
    lines = []
    download_dataset(info, tmp_path, log=lines.append)
    assert any(f"got sha256 {_sha(csv_bytes)} (unverified)" in line for line in lines)
    assert [s.state for s in dataset_status(info, tmp_path)] == ["unverified"]


def _sized(info: DatasetInfo, size: int | None) -> DatasetInfo:
    """The same dataset with its one file's registry size set to `size` and its sha256 unknown."""
    (f,) = info.files
    return dataclasses.replace(info, files=(dataclasses.replace(f, bytes=size, sha256=None),))


def test_cut_without_content_length_resumes_to_the_registry_size(server, csv_bytes, tmp_path):
    server.files["/nolen-cut/toy.csv"] = csv_bytes
    info = _sized(_dataset({"toy.csv": csv_bytes}, [(server.url + "/nolen-cut/toy.csv", None, None)]),
                  len(csv_bytes))
    download_dataset(info, tmp_path, retry_wait=0, log=_quiet)
    assert (tmp_path / "forecasting" / "Toy" / "toy.csv").read_bytes() == csv_bytes
    assert server.requests == [("/nolen-cut/toy.csv", None),
                               ("/nolen-cut/toy.csv", f"bytes={len(csv_bytes) // 2}-")]


def test_complete_response_of_the_wrong_size_is_rejected(server, csv_bytes, tmp_path):
    server.files["/d/toy.csv"] = csv_bytes
    info = _sized(_dataset({"toy.csv": csv_bytes}, [(server.url + "/d/toy.csv", None, None)]), len(csv_bytes) + 7)
    with pytest.raises(DownloadError, match=f"size mismatch for toy.csv .*: {len(csv_bytes)} bytes, the registry "
                                            f"expects {len(csv_bytes) + 7}"):
        download_dataset(info, tmp_path, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []


@pytest.mark.parametrize("fmt, make", [
    ("tslib_csv", lambda path: fixtures.make_tslib_csv(path, n_rows=400)),
    ("d4rl_hdf5", lambda path: fixtures.make_d4rl_hdf5(path)),
    ("ifl_tpp_npz", lambda path: fixtures.make_ifl_tpp_npz(path, fixtures.toy_tpp_sequences())),
])
def test_cut_without_content_length_size_or_sha256_is_not_installed(server, tmp_path, fmt, make):
    """Nothing to check against: the cut file is caught because it does not read as its format."""
    data = make(tmp_path / "src" / "toy.npz").read_bytes()  # np.savez would append .npz to other names
    server.files["/nolen-cut/toy.bin"] = data
    server.always_cut = True
    info = _dataset({"toy.bin": None}, [(server.url + "/nolen-cut/toy.bin", None, None)], fmt=fmt)
    with pytest.raises(DownloadError, match=f"toy.bin from .* does not read as {fmt} .*download deleted"):
        download_dataset(info, tmp_path, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []
    server.always_cut = False
    server.files["/nolen/toy.bin"] = data  # the same file sent whole, still without a length: accepted
    info = _dataset({"toy.bin": None}, [(server.url + "/nolen/toy.bin", None, None)], fmt=fmt)
    download_dataset(info, tmp_path, log=_quiet)
    assert (tmp_path / "forecasting" / "Toy" / "toy.bin").read_bytes() == data


@pytest.mark.parametrize("url", ["htp:/toy.csv", "toy.csv", "http://[::1/toy.csv", "http://127.0.0.1:port/toy.csv",
                                 "http://127.0.0.1/to y\n.csv", "ftp://127.0.0.1/toy.csv"])
def test_malformed_url_is_a_download_error(csv_bytes, tmp_path, url):
    info = _dataset({"toy.csv": csv_bytes}, [(url, None, None)])
    with pytest.raises(DownloadError, match=re.escape(f"malformed URL {url!r}")):
        download_dataset(info, tmp_path, log=_quiet)
    assert _leftovers(tmp_path / "forecasting" / "Toy") == []


def test_corrupt_file_is_replaced(server, csv_bytes, tmp_path):
    server.files["/d/toy.csv"] = csv_bytes
    info = _dataset({"toy.csv": csv_bytes}, [(server.url + "/d/toy.csv", None, None)])
    target = tmp_path / "forecasting" / "Toy" / "toy.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(csv_bytes[:-5] + b"XXXXX")
    assert dataset_status(info, tmp_path)[0].state == "corrupt"
    download_dataset(info, tmp_path, log=_quiet)
    assert target.read_bytes() == csv_bytes


def _cli():
    spec = importlib.util.spec_from_file_location("download_cli", REPO_ROOT / "scripts" / "download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_list_says_what_to_place_where(tmp_path, capsys):
    main = _cli()
    assert main(["--list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"place traffic.csv at {tmp_path / 'forecasting' / 'Traffic' / 'traffic.csv'} (sha256 unknown)" in out
    assert "ETTh1" in out and "embedded (" in out.split("ETTh1", 1)[1].splitlines()[0]
    sha = "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"
    assert "JapaneseVowels" in out and sha not in out  # embedded in sktime: nothing to place
    assert "place hopper_medium-v2.hdf5 at" in out and "stand-in: scripts/make_rl_data.py" in out


def test_cli_rejects_unknown_name(capsys):
    main = _cli()
    with pytest.raises(SystemExit):
        main(["NoSuchSet"])
    assert "unknown dataset 'NoSuchSet'" in capsys.readouterr().err
