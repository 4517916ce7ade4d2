"""Results store: atomic writes (a kill at any moment leaves the old or the new record), one file per run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks import fileio  # noqa: E402
from tasks.harness import store  # noqa: E402

RECORD = {"run_id": "aaren_s0_x", "task": "toy", "dataset": "toy_sine", "model": "aaren", "seed": 0,
          "variant": {}, "metrics": {"mse": 0.5}}


def test_write_then_read_back(tmp_path):
    path = store.record_path(tmp_path, "toy", "toy_sine", "aaren_s0_x")
    fileio.write_json_atomic(path, RECORD)
    assert store.read_record(path) == RECORD
    assert store.load_records(tmp_path) == [RECORD] and store.load_records(tmp_path, "other") == []
    assert path.stat().st_mode & 0o644 == 0o644  # an ordinary readable file, not mkstemp's 0600


def test_failed_replace_keeps_the_old_record_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    fileio.write_json_atomic(path, RECORD)

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(OSError):
        fileio.write_json_atomic(path, {**RECORD, "seed": 1})
    assert store.read_record(path)["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_non_finite_numbers_are_refused_not_written(tmp_path):
    with pytest.raises(ValueError):
        fileio.write_json_atomic(tmp_path / "r.json", {**RECORD, "metrics": {"mse": float("nan")}})
    assert list(tmp_path.iterdir()) == []


WRITER = """
import sys
from tasks.fileio import write_json_atomic
i = 0
while True:
    write_json_atomic(sys.argv[1], {"run_id": "r", "task": "toy", "dataset": "d", "model": "aaren", "seed": 0,
                                    "variant": {}, "metrics": {"i": i}, "pad": "x" * 200000})
    i += 1
"""


def test_killing_a_writer_at_random_moments_never_tears_the_record(tmp_path):
    path = store.record_path(tmp_path, "toy", "d", "r")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    seen = []
    for delay in (0.05, 0.13, 0.21):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:  # the first write has landed
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        records = store.load_records(tmp_path)  # a whole record, never a torn one, never two
        assert len(records) == 1
        seen.append(records[0]["metrics"]["i"])
    assert max(seen) > 0, "the writer never got to overwrite the record; the test proved nothing"


def test_temporaries_are_not_records_and_bad_files_are_named(tmp_path):
    folder = tmp_path / store.RECORDS / "toy" / "toy_sine"
    folder.mkdir(parents=True)
    (folder / ".aaren_s0_x.json.abc.tmp").write_text("{")
    (folder / ".aaren_s1_y.json").write_text("{")  # a temporary that lost its suffix: still not a record
    fileio.write_json_atomic(folder / "aaren_s0_x.json", RECORD)
    assert store.load_records(tmp_path) == [RECORD]
    (folder / "broken.json").write_text('{"run_id": ')
    with pytest.raises(store.RecordFormatError, match="broken.json"):
        store.load_records(tmp_path)
    (folder / "broken.json").write_text('{"run_id": "a"}')
    with pytest.raises(store.RecordFormatError, match="lacks keys"):
        store.load_records(tmp_path)
