"""Format readers: round trips on generated fixtures, and a clear DatasetFormatError for each malformed case."""
import os
import pickle
import re
import struct
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest

from tests import fixtures
from tasks.datasets.readers import (DatasetFormatError, read_csv_series, read_d4rl_hdf5, read_tpp, read_ts)


# ---------------------------------------------------------------- TSLib CSV
def test_csv_round_trip(tmp_path):
    path = fixtures.make_tslib_csv(tmp_path / "toy.csv", n_rows=48, n_channels=3)
    table = read_csv_series(path)
    assert table.values.shape == (48, 3) and table.values.dtype == np.float64
    assert table.columns == ("x0", "x1", "OT")
    assert table.dates[1] - table.dates[0] == np.timedelta64(3600, "s")


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text[: text.rindex(",")], "line 49 has 3 fields, the header has 4 (file truncated?)"),
    (lambda text: text.replace("date,", "when,", 1), "no 'date' column"),
    (lambda text: re.sub(r"(02:00:00,)[^,]*", r"\1abc", text), "line 4, column 'x0': non-numeric value 'abc'"),
    (lambda text: re.sub(r"(03:00:00,[^,]*,)[^,]*", r"\1NaN", text), "line 5, column 'x1': empty or NaN value"),
    (lambda text: re.sub(r"(03:00:00,)[^,]*", r"\1", text), "line 5, column 'x0': empty or NaN value"),
    (lambda text: text.replace("2016-07-01 04:00:00", "not-a-date", 1), "line 6: unparseable date"),
    (lambda text: text.splitlines()[0] + "\n", "header only"),
    (lambda text: "", "empty file"),
])
def test_csv_errors_name_file_and_problem(tmp_path, mutate, message):
    path = fixtures.make_tslib_csv(tmp_path / "toy.csv", n_rows=48)
    path.write_text(mutate(path.read_text()))
    with pytest.raises(DatasetFormatError, match="toy.csv") as info:
        read_csv_series(path)
    assert message in str(info.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_csv_series(tmp_path / "nope.csv")


# ---------------------------------------------------------------- UEA .ts
@pytest.mark.parametrize("lengths", [(8, 8), (5, 11)])
def test_ts_round_trip(tmp_path, lengths):
    train, test = fixtures.make_ts_pair(tmp_path, "Toy", n_train=6, n_test=4, n_dims=2, lengths=lengths)
    data = read_ts(train)
    assert len(data.series) == 6 and data.problem_name == "Toy"
    assert all(s.dtype == np.float32 and s.shape[1] == 2 and lengths[0] <= s.shape[0] <= lengths[1]
               for s in data.series)
    assert data.class_labels == ("1", "2", "3") and list(data.labels) == ["1", "2", "3", "1", "2", "3"]
    assert len(read_ts(test).series) == 4


def _replace_in(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, message", [
    ("@data\n", "", "expected a '@tag' header line before @data, got '0.0"),
    ("@classLabel true 1 2 3", "@classLabel false", "no '@classLabel true"),
    ("@dimensions 2", "@dimensions 3", "declares 3 dimensions, data has 2"),
    ("@seriesLength 8", "@seriesLength 9", "declares @seriesLength 9"),
    ("@problemName Toy", "problemName Toy", "expected a '@tag' header line"),
    (":1\n", ":7\n", "labels ['7'] are not declared"),
])
def test_ts_header_errors(tmp_path, old, new, message):
    train, _ = fixtures.make_ts_pair(tmp_path, "Toy")
    _replace_in(train, old, new)
    with pytest.raises(DatasetFormatError, match="Toy_TRAIN.ts") as info:
        read_ts(train)
    assert message in str(info.value)


def test_ts_truncated_header(tmp_path):
    train, _ = fixtures.make_ts_pair(tmp_path, "Toy")
    train.write_text("".join(train.read_text().splitlines(keepends=True)[:3]))
    with pytest.raises(DatasetFormatError, match="Toy_TRAIN.ts: no '@data' line"):
        read_ts(train)


def test_ts_inconsistent_dimensions_wraps_sktime_error(tmp_path):
    train, _ = fixtures.make_ts_pair(tmp_path, "Toy", n_dims=2)
    lines = train.read_text().splitlines()
    lines[-1] = lines[-1].split(":", 1)[1]  # drop the first dimension of the last case
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match="Toy_TRAIN.ts.*dimensions"):
        read_ts(train)


def test_ts_unequal_dimension_lengths(tmp_path):
    train, _ = fixtures.make_ts_pair(tmp_path, "Toy", n_dims=2, lengths=(5, 11))
    lines = train.read_text().splitlines()
    first, rest = lines[-1].split(":", 1)
    lines[-1] = first.rsplit(",", 1)[0] + ":" + rest  # one value fewer in dimension 0
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match="different lengths"):
        read_ts(train)


# ---------------------------------------------------------------- D4RL HDF5
def test_d4rl_round_trip(tmp_path):
    arrays = read_d4rl_hdf5(fixtures.make_d4rl_hdf5(tmp_path / "toy.hdf5", n_episodes=3, episode_len=10))
    assert arrays["observations"].shape == (30, 4) and arrays["actions"].shape == (30, 2)
    assert arrays["terminals"].sum() == 2 and arrays["timeouts"].sum() == 1 and arrays["rewards"].shape == (30,)


def _edit_hdf5(path, key, value):
    with h5py.File(path, "a") as handle:
        del handle[key]
        if value is not None:
            handle[key] = value


@pytest.mark.parametrize("key, value, message", [
    ("timeouts", None, "missing HDF5 datasets ['timeouts']"),
    ("rewards", np.zeros(29, np.float32), "mismatched lengths"),
    ("actions", np.zeros(30, np.float32), "'actions' has shape (30,)"),
    ("observations", np.full((30, 4), np.nan, np.float32), "'observations' has NaN"),
])
def test_d4rl_errors(tmp_path, key, value, message):
    path = fixtures.make_d4rl_hdf5(tmp_path / "toy.hdf5", n_episodes=3, episode_len=10)
    _edit_hdf5(path, key, value)
    with pytest.raises(DatasetFormatError, match="toy.hdf5") as info:
        read_d4rl_hdf5(path)
    assert message in str(info.value)


def test_d4rl_not_hdf5(tmp_path):
    path = tmp_path / "fake.hdf5"
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(DatasetFormatError, match="fake.hdf5: not a readable HDF5"):
        read_d4rl_hdf5(path)


def test_d4rl_truncated_hdf5(tmp_path):
    path = fixtures.make_d4rl_hdf5(tmp_path / "toy.hdf5", n_episodes=3, episode_len=10)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: not a readable HDF5 file")):
        read_d4rl_hdf5(path)


# ---------------------------------------------------------------- TPP formats
def _write_all_formats(folder, sequences, num_marks=3):
    return {
        "meta_tpp_npz": fixtures.make_meta_tpp_npz(folder / "toy.npz", sequences),
        "ifl_tpp_npz": fixtures.make_ifl_tpp_npz(folder / "toy_ifl.npz", sequences),
        "rmtpp_text": fixtures.make_rmtpp_text(folder / "time-1-train.txt", sequences),
        "thp_pickle": fixtures.make_thp_pickle(folder / "train.pkl", sequences, num_marks=num_marks),
    }


def test_tpp_all_formats_agree(tmp_path):
    sequences = fixtures.toy_tpp_sequences(n_sequences=5, num_marks=3)
    for fmt, path in _write_all_formats(tmp_path, sequences).items():
        data = read_tpp(path, fmt, num_marks=3)
        assert data.num_marks == 3 and len(data.sequences) == 5, fmt
        for got, want in zip(data.sequences, sequences):
            np.testing.assert_allclose(got["times"], want["times"], rtol=1e-6, err_msg=fmt)  # THP stores float32
            np.testing.assert_array_equal(got["marks"], want["marks"], err_msg=fmt)
            assert got["times"].dtype == np.float64 and got["marks"].dtype == np.int64


def test_tpp_num_marks_inferred_or_declared(tmp_path):
    sequences = fixtures.toy_tpp_sequences(num_marks=3)
    top = max(int(s["marks"].max()) for s in sequences)
    paths = _write_all_formats(tmp_path, sequences, num_marks=7)
    assert read_tpp(paths["ifl_tpp_npz"], "ifl_tpp_npz").num_marks == top + 1
    assert read_tpp(paths["thp_pickle"], "thp_pickle").num_marks == 7  # dim_process


@pytest.mark.parametrize("fmt", ["meta_tpp_npz", "ifl_tpp_npz", "rmtpp_text", "thp_pickle"])
@pytest.mark.parametrize("corrupt, message", [
    # Meta-TPP stores inter-event times, so a decrease or a negative start shows as a negative gap there
    (lambda s: s[1].update(times=s[1]["times"][::-1].copy()),
     r"sequence 1: (event times decrease|negative inter-event time)"),
    (lambda s: s[2].update(times=s[2]["times"] - 5.0),
     r"sequence 2: (negative event time|negative inter-event time -\d.* at event 0)"),
    (lambda s: s[0]["marks"].__setitem__(0, 5), r"sequence 0: mark 5 at event 0 is out of range \[0, 3\)"),
])
def test_tpp_content_errors(tmp_path, fmt, corrupt, message):
    sequences = fixtures.toy_tpp_sequences(n_sequences=4, num_marks=3)
    corrupt(sequences)
    path = _write_all_formats(tmp_path, sequences)[fmt]
    with pytest.raises(DatasetFormatError, match=path.name) as info:
        read_tpp(path, fmt, num_marks=3)
    assert re.search(message, str(info.value))


def test_tpp_empty_sequence(tmp_path):
    sequences = fixtures.toy_tpp_sequences(n_sequences=3)
    sequences[1] = {"times": np.zeros(0), "marks": np.zeros(0, np.int64)}
    path = fixtures.make_ifl_tpp_npz(tmp_path / "toy.npz", sequences)
    with pytest.raises(DatasetFormatError, match="sequence 1 is empty"):
        read_tpp(path, "ifl_tpp_npz")


def test_tpp_wrong_npz_arrays(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(DatasetFormatError, match=r"wrong.npz: no 'times' array .*\['x'\]"):
        read_tpp(path, "meta_tpp_npz")
    with pytest.raises(DatasetFormatError, match="wrong.npz: no 'arrival_times' array"):
        read_tpp(path, "ifl_tpp_npz")
    np.savez(path, times=np.ones((2, 3)), marks=np.ones((2, 4)))
    with pytest.raises(DatasetFormatError, match=r"'marks' has shape \(2, 4\)"):
        read_tpp(path, "meta_tpp_npz")
    np.savez(path, times=np.ones((1, 3)), marks=np.array([[1, 0, 1]]))
    with pytest.raises(DatasetFormatError, match="mark 0 at a valid event"):
        read_tpp(path, "meta_tpp_npz")


def test_tpp_rmtpp_needs_event_file(tmp_path):
    path = fixtures.make_rmtpp_text(tmp_path / "time-2-test.txt", fixtures.toy_tpp_sequences())
    (tmp_path / "event-2-test.txt").unlink()
    with pytest.raises(DatasetFormatError, match="event-2-test.txt is missing"):
        read_tpp(path, "rmtpp_text")


def test_tpp_thp_pickle_refuses_code(tmp_path):
    path = tmp_path / "train.pkl"
    path.write_bytes(pickle.dumps({"dim_process": 1, "train": [[{"evil": print}]]}))
    with pytest.raises(DatasetFormatError, match="names builtins.print"):
        read_tpp(path, "thp_pickle")


class _Payload:
    """What a hostile data file carries: unpickling it calls os.system, which here only creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt, key", [("ifl_tpp_npz", "arrival_times"), ("meta_tpp_npz", "times")])
def test_tpp_npz_object_array_payload_never_runs(tmp_path, fmt, key):
    marker = tmp_path / "payload-ran"
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = np.arange(3.0), _Payload(marker)
    path = tmp_path / "evil.npz"
    np.savez(path, **{key: evil})
    with pytest.raises(DatasetFormatError, match=r"evil.npz: pickled data names (posix|os)\.system") as info:
        read_tpp(path, fmt)
    assert "refusing to run code" in str(info.value)
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as archive:  # control: the payload is live under a plain pickle load
        archive[key]
    assert marker.exists()


def test_tpp_thp_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "train.pkl"
    path.write_bytes(pickle.dumps({"dim_process": 1, "train": [[{"time_since_start": _Payload(marker)}]]}))
    with pytest.raises(DatasetFormatError, match=r"train.pkl: pickled data names (posix|os)\.system"):
        read_tpp(path, "thp_pickle")
    assert not marker.exists()


def _bad_crc(path):
    """Flip one byte inside an uncompressed .npy member's data: the zip's CRC-32 no longer matches."""
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("fmt", ["meta_tpp_npz", "ifl_tpp_npz"])
@pytest.mark.parametrize("damage, message", [
    (lambda path: b"this is not a zip archive", "not a readable .npz archive (BadZipFile"),
    (lambda path: path.read_bytes()[: path.stat().st_size // 2], "not a readable .npz archive (BadZipFile"),
    (lambda path: b"", "not a readable .npz archive (BadZipFile"),
    (_bad_crc, "not a readable .npz archive"),
])
def test_tpp_garbage_or_truncated_npz_names_the_file(tmp_path, fmt, damage, message):
    sequences = fixtures.toy_tpp_sequences(n_sequences=4)
    path = _write_all_formats(tmp_path, sequences)[fmt]
    path.write_bytes(damage(path))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: {message}")):
        read_tpp(path, fmt)


def test_tpp_npz_with_a_cut_pickle_names_the_file(tmp_path):
    """A member whose pickled object array stops half-way (the zip itself intact)."""
    path = fixtures.make_ifl_tpp_npz(tmp_path / "toy.npz", fixtures.toy_tpp_sequences())
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data[: len(data) // 2] if name == "arrival_times.npy" else data)
    with pytest.raises(DatasetFormatError, match=r"toy.npz: not a readable pickle"):
        read_tpp(path, "ifl_tpp_npz")


@pytest.mark.parametrize("content, message", [
    ({"dim_process": "x", "train": [[]]}, "'dim_process' (the number of event types) must be a positive integer, "
                                          "got 'x'"),
    ({"dim_process": 0, "train": [[]]}, "must be a positive integer, got 0"),
    ({"dim_process": True, "train": [[]]}, "must be a positive integer, got True"),
    ({"dim_process": 2, "train": 5}, "split 'train' must be a list of sequences, got int"),
    ({"dim_process": 2, "train": [5]}, "train sequence 0: bad event record"),
    ({"dim_process": 2, "train": [["e"]]}, "train sequence 0: bad event record"),
    ([1, 2], "expected a dict with 'dim_process'"),
])
def test_tpp_thp_malformed_content_names_the_file(tmp_path, content, message):
    path = tmp_path / "train.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: ")) as info:
        read_tpp(path, "thp_pickle")
    assert message in str(info.value)


@pytest.mark.parametrize("damage", [lambda data: data[:100], lambda data: b"\x80\x04", lambda data: b"garbage"])
def test_tpp_thp_truncated_or_garbage_pickle_names_the_file(tmp_path, damage):
    path = fixtures.make_thp_pickle(tmp_path / "train.pkl", fixtures.toy_tpp_sequences(), num_marks=3)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: not a readable pickle")):
        read_tpp(path, "thp_pickle")


def test_tpp_unknown_format(tmp_path):
    path = fixtures.make_ifl_tpp_npz(tmp_path / "toy.npz", fixtures.toy_tpp_sequences())
    with pytest.raises(ValueError, match="unknown TPP format 'csv'"):
        read_tpp(path, "csv")


# ---------------------------------------------------------------- damaged bytes, every binary format
def _damaged_copies(data: bytes, n: int, seed: int = 0):
    """n seeded variants of `data`: a few bytes overwritten, cut at a random point, or 8 random bytes inserted."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        b = bytearray(data)
        if k % 3 == 0:
            for i in rng.integers(0, len(b), size=int(rng.integers(1, 6))):
                b[i] = int(rng.integers(256))
        elif k % 3 == 1:
            b = b[: int(rng.integers(len(b)))]
        else:
            i = int(rng.integers(len(b)))
            b = b[:i] + rng.integers(0, 256, size=8, dtype=np.uint8).tobytes() + b[i:]
        yield bytes(b)


@pytest.mark.parametrize("fmt", ["meta_tpp_npz", "ifl_tpp_npz", "thp_pickle", "d4rl_hdf5"])
def test_damaged_files_only_raise_dataset_format_errors(tmp_path, fmt):
    sequences = fixtures.toy_tpp_sequences(n_sequences=4)
    source = (fixtures.make_d4rl_hdf5(tmp_path / "toy.hdf5") if fmt == "d4rl_hdf5"
              else _write_all_formats(tmp_path, sequences)[fmt])
    damaged = tmp_path / f"damaged{source.suffix}"
    for data in _damaged_copies(source.read_bytes(), 90):
        damaged.write_bytes(data)
        try:
            read_d4rl_hdf5(damaged) if fmt == "d4rl_hdf5" else read_tpp(damaged, fmt)
        except DatasetFormatError as error:
            assert str(error).startswith(f"{damaged}: ")


def test_pickle_memo_index_does_not_allocate_memory(tmp_path):
    """A (damaged or hostile) memo index of 20 M: the C unpickler grows its memo array to it (160 MB here,
    600 M slots for one damaged byte in a fuzzed THP file); the loader's dict memo stores one entry."""
    data = pickle.dumps({"dim_process": 2, "train": [[{"time_since_start": 1.0, "type_event": 0}]]}, protocol=2)
    assert data.startswith(b"\x80\x02}q\x00")
    path = tmp_path / "train.pkl"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 20_000_000) + data[len(b"\x80\x02}q\x00"):])
    tracemalloc.start()
    try:
        data = read_tpp(path, "thp_pickle")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.num_marks == 2 and peak < 20e6


def _objects(*items):
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


@pytest.mark.parametrize("fmt, arrays, message", [
    ("ifl_tpp_npz", dict(arrival_times=np.array(5.0)), "'arrival_times' has shape (), expected one entry per"),
    ("ifl_tpp_npz", dict(arrival_times=np.ones((2, 2, 2))), "'arrival_times' has shape (2, 2, 2)"),
    ("ifl_tpp_npz", dict(arrival_times=np.ones((2, 3), complex)), "'arrival_times'[0] is not numeric (dtype complex"),
    ("ifl_tpp_npz", dict(arrival_times=_objects([1.0, 2.0]), marks=_objects([1e30, 1.0])),
     "'marks'[0] holds mark 1e+30, beyond any mark count"),
    ("meta_tpp_npz", dict(times=np.ones((1, 2)), masks=np.array([["a", "b"]])), "'masks' must hold numbers"),
    ("meta_tpp_npz", dict(times=np.zeros((1, 2), "M8[s]")), "'times' row 0 is not numeric (dtype datetime64[s])"),
    ("meta_tpp_npz", dict(times=np.ones((1, 2)), marks=np.array([[1e30, 1.0]])), "holds mark 1e+30"),
])
def test_tpp_npz_arrays_of_the_wrong_kind_name_the_file(tmp_path, fmt, arrays, message):
    path = tmp_path / "odd.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: ")) as info:
        read_tpp(path, fmt)
    assert message in str(info.value)


def test_tpp_compressed_npz_reads_like_the_plain_one(tmp_path):
    """np.savez_compressed members are deflated: the safe loader re-reads each member after its header."""
    plain = fixtures.make_ifl_tpp_npz(tmp_path / "plain.npz", fixtures.toy_tpp_sequences())
    with np.load(plain, allow_pickle=True) as archive:  # our own fixture: trusted
        np.savez_compressed(tmp_path / "packed.npz", **{k: archive[k] for k in archive.files})
    for got, want in zip(read_tpp(tmp_path / "packed.npz", "ifl_tpp_npz").sequences,
                         read_tpp(plain, "ifl_tpp_npz").sequences):
        np.testing.assert_array_equal(got["times"], want["times"])
        np.testing.assert_array_equal(got["marks"], want["marks"])
