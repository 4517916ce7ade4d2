"""The registry table, locate() and its fallbacks, the shipped ETTh1 copy, and (when ../shared/datasets exists)
the team's real files: checksums against the registry and each reader on each real dataset."""
import hashlib
import json
import re

import numpy as np
import pytest

from tasks.datasets import registry
from tasks.datasets.errors import DatasetFormatError, DatasetMissingError
from tasks.datasets.paths import DATA_ROOT_ENV, SHIPPED_ROOT, data_root
from tasks.datasets.readers import read_csv_series, read_tpp, read_ts
from tests.fixtures import SHARED_ROOT

needs_shared = pytest.mark.skipif(not SHARED_ROOT.is_dir(), reason=f"{SHARED_ROOT} absent (team-only data)")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_papers_38_datasets():
    paper = registry.names(paper_only=True)
    assert len(paper) == 38
    counts = {task: len(registry.names(task, paper_only=True)) for task in registry.TASKS}
    assert counts == {"forecasting": 8, "classification": 10, "tpp": 8, "rl": 12}
    assert set(registry.names("rl")) == {f"{e}-{lv}" for e in ("halfcheetah", "hopper", "walker2d", "ant")
                                        for lv in ("medium", "medium-replay", "medium-expert")}


def test_registry_entries_are_well_formed():
    for info in registry.load_registry().values():
        assert info.licence and info.citation and info.home, info.name
        assert info.sources, info.name
        for f in info.files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256), (info.name, f.path)
        for source in info.sources:
            assert source.manual or source.url.startswith(("http://", "https://")), (info.name, source)
        if info.embedded == "generated":
            assert info.generator, info.name


def test_malformed_registry_names_the_entry(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("Toy:\n  task: forecasting\n  format: csv\n  files: [{path: a.csv}]\n")
    with pytest.raises(DatasetFormatError, match=r"registry.yaml: entry 'Toy': format must be one of"):
        registry.load_registry.__wrapped__(path)


@pytest.mark.parametrize("files, source, message", [
    ("[{path: ../../outside.csv}]", "", "file path '../../outside.csv' must be relative and stay inside"),
    ("[{path: /etc/outside.csv}]", "", "file path '/etc/outside.csv' must be relative"),
    ("[{bytes: 3}]", "", "every file needs a `path`"),
    ("[a.csv]", "", "every file needs a `path`"),
    ("[{path: a.csv}]", "\n  sources: [{url: 'file:///etc/passwd'}]", "source url 'file:///etc/passwd' must start"),
])
def test_registry_files_and_urls_are_checked(tmp_path, files, source, message):
    path = tmp_path / "registry.yaml"
    path.write_text(f"Toy:\n  task: forecasting\n  format: tslib_csv\n  files: {files}{source}\n")
    with pytest.raises(DatasetFormatError, match=re.escape(f"registry.yaml: entry 'Toy': {message}")):
        registry.load_registry.__wrapped__(path)


def test_unknown_name_suggests_the_right_case():
    with pytest.raises(KeyError, match="did you mean 'ETTh1'"):
        registry.get("etth1")


def test_data_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert data_root() == tmp_path.resolve()
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert data_root() == SHIPPED_ROOT


def test_locate_missing_names_dataset_path_and_command(tmp_path):
    with pytest.raises(DatasetMissingError) as error:
        registry.locate("Traffic", root=tmp_path)
    message = str(error.value)
    assert "'Traffic'" in message and str(tmp_path / "forecasting" / "Traffic") in message
    assert "python scripts/download.py Traffic" in message and isinstance(error.value, FileNotFoundError)


def test_locate_generated_dataset_mentions_the_generator(tmp_path):
    with pytest.raises(DatasetMissingError, match="scripts/make_rl_data.py"):
        registry.locate("hopper-medium", root=tmp_path)


def test_locate_prefers_the_data_root(tmp_path):
    folder = tmp_path / "forecasting" / "ETTh1"
    folder.mkdir(parents=True)
    (folder / "ETTh1.csv").write_bytes((SHIPPED_ROOT / "forecasting" / "ETTh1" / "ETTh1.csv").read_bytes())
    assert registry.locate("ETTh1", root=tmp_path) == folder


def test_locate_rejects_a_truncated_file(tmp_path):
    folder = tmp_path / "forecasting" / "ETTh2"
    folder.mkdir(parents=True)
    (folder / "ETTh2.csv").write_text("date,OT\n")
    with pytest.raises(DatasetFormatError, match=r"ETTh2.csv: has 8 bytes, the registry expects 2417960"):
        registry.locate("ETTh2", root=tmp_path)


def test_etth1_shipped_copy_is_the_registry_file_and_the_fallback(tmp_path):
    info = registry.get("ETTh1")
    shipped = SHIPPED_ROOT / "forecasting" / "ETTh1"
    assert _sha(shipped / "ETTh1.csv") == info.files[0].sha256
    assert (shipped / "LICENSE.md").read_text().count("CC BY-ND 4.0") >= 1
    assert registry.locate("ETTh1", root=tmp_path) == shipped
    table = read_csv_series(shipped / "ETTh1.csv")
    assert table.values.shape == (info.facts["rows"], info.facts["channels"]) and table.columns[-1] == "OT"


def test_japanese_vowels_falls_back_to_sktime(tmp_path):
    pytest.importorskip("sktime")
    info = registry.get("JapaneseVowels")
    folder = registry.locate("JapaneseVowels", root=tmp_path)
    assert "sktime" in folder.parts
    assert {f.path: _sha(folder / f.path) for f in info.files} == {f.path: f.sha256 for f in info.files}
    train = read_ts(folder / "JapaneseVowels_TRAIN.ts")
    assert len(train.series) == info.facts["n_train"] and train.series[0].shape[1] == info.facts["channels"]


# ---------------------------------------------------------------- the team's real files (../shared/datasets)
@needs_shared
def test_shared_files_match_registry_checksums():
    checked = 0
    for info in registry.load_registry().values():
        folder = info.folder(SHARED_ROOT)
        for f in info.files:
            path = folder / f.path
            if path.is_file() and f.sha256:
                assert (path.stat().st_size, _sha(path)) == (f.bytes, f.sha256), path
                checked += 1
    assert checked >= 38  # 6 forecasting CSVs + 3 UEA pairs + 25 MIMIC files + Wiki


@needs_shared
def test_shared_d4rl_urls_match_registry():
    urls = json.loads((SHARED_ROOT / "rl" / "d4rl_ref_scores.json").read_text())["datasets"]
    for name in registry.names("rl"):
        assert registry.get(name).sources[0].url == urls[f"{name}-v2"]


@needs_shared
@pytest.mark.parametrize("name", ["ETTh2", "ETTm1", "ETTm2", "Weather", "Exchange"])
def test_shared_forecasting_reads(name):
    info = registry.get(name)
    table = read_csv_series(registry.locate(name, root=SHARED_ROOT) / info.files[0].path)
    assert table.values.shape == (info.facts["rows"], info.facts["channels"]) and table.columns[-1] == "OT"
    assert np.all(np.diff(table.dates[:100]) > np.timedelta64(0, "s"))


@needs_shared
@pytest.mark.parametrize("name", ["Handwriting", "UWaveGestureLibrary"])
def test_shared_uea_reads(name):
    info = registry.get(name)
    folder = registry.locate(name, root=SHARED_ROOT)
    train, test = (read_ts(folder / f"{name}_{split}.ts") for split in ("TRAIN", "TEST"))
    assert (len(train.series), len(test.series)) == (info.facts["n_train"], info.facts["n_test"])
    assert len(train.class_labels) == info.facts["classes"]
    assert {s.shape for s in train.series} == {(info.facts["length"], info.facts["channels"])}


@needs_shared
def test_shared_tpp_reads():
    mimic = registry.locate("MIMIC", root=SHARED_ROOT)
    for fold in range(1, 6):
        train = read_tpp(mimic / f"rmtpp_format/time-{fold}-train.txt", "rmtpp_text", num_marks=75)
        test = read_tpp(mimic / f"rmtpp_format/time-{fold}-test.txt", "rmtpp_text", num_marks=75)
        assert (len(train.sequences), len(test.sequences)) == (585, 65)
    thp = [read_tpp(mimic / f"thp_format_fold1/{s}.pkl", "thp_pickle") for s in ("train", "dev", "test")]
    assert [len(d.sequences) for d in thp] == [527, 58, 65] and thp[0].num_marks == 75
    rmtpp_test = read_tpp(mimic / "rmtpp_format/time-1-test.txt", "rmtpp_text", num_marks=75)
    for a, b in zip(rmtpp_test.sequences, thp[2].sequences):  # same fold, two formats
        np.testing.assert_array_equal(a["marks"], b["marks"])
        np.testing.assert_allclose(a["times"], b["times"], rtol=1e-6)
    wiki = read_tpp(registry.locate("Wiki", root=SHARED_ROOT) / "wikipedia.npz", "ifl_tpp_npz")
    facts = registry.get("Wiki").facts
    assert len(wiki.sequences) == facts["sequences"] and wiki.num_marks == facts["num_marks"]
    assert sum(len(s["times"]) for s in wiki.sequences) == facts["events"]
