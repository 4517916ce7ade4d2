"""TPP data: splits, padding masks, length buckets, the Meta-TPP npz writer, bad files through the task's loader,
and (when ../shared/datasets exists) the real MIMIC and Wiki protocols."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tasks.datasets.errors import DatasetFormatError
from tests.fixtures import make_meta_tpp_npz
from tasks.datasets.readers import read_tpp
from tasks.datasets.registry import locate
from tasks.tpp.data import LengthBucketBatches, TPPDataModule, collate, load_splits
from tasks.tpp.generate import build_process, generate, write_metatpp_npz
from tasks.tpp.sequences import EventSequences, split_by_order, split_train_val

REPO = Path(__file__).resolve().parents[1]
ROOTS = [Path(p) for p in (os.environ.get("AAREN_DATA_ROOT"), REPO.parent / "shared" / "datasets") if p]
FILE_DATASET = dict(name="Reddit", num_marks=3, format="meta_tpp_npz", files={"all": "reddit.npz"},
                    split={"train": 0.6, "val": 0.2})


def _sequences(n, lengths=None):
    lengths = lengths or [3 + i for i in range(n)]
    return EventSequences([np.cumsum(np.ones(k)) for k in lengths], [np.zeros(k, int) for k in lengths], 1, "toy")


def test_split_by_order_fractions_and_counts():
    splits = split_by_order(_sequences(10), train=0.6, val=0.2)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert [len(t) for t in splits["val"].times] == [9, 10]              # sequences 6 and 7, in order
    counts = split_by_order(_sequences(10), train=7, val=1)
    assert [len(counts[s]) for s in ("train", "val", "test")] == [7, 1, 2]
    with pytest.raises(ValueError, match="too few"):
        split_by_order(_sequences(3), train=0.6, val=0.2)


def test_rmtpp_folds_validate_on_the_last_tenth_of_train():
    splits = split_train_val(_sequences(585), _sequences(65), val_fraction=0.1)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [527, 58, 65]


def test_collate_pads_right_and_masks_true_for_valid_events():
    items = [{"time": np.array([0.0, 1.0, 3.0]), "tau": np.array([0.0, 1.0, 2.0]), "marks": np.array([1, 0, 2])},
             {"time": np.array([0.5]), "tau": np.array([0.5]), "marks": np.array([2])}]
    batch = collate(items, scale=2.0)
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["tau"].tolist() == [[0.0, 1.0, 2.0], [0.5, 0.0, 0.0]]
    assert batch["marks"].dtype == torch.long and batch["scale"].tolist() == [2.0, 2.0]


def test_length_buckets_cover_every_sequence_once_with_similar_lengths():
    lengths = [5, 100, 6, 99, 50, 51, 7, 8]
    torch.manual_seed(0)
    batches = list(LengthBucketBatches(lengths, batch_size=2, shuffle=True))
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 1 for b in batches)
    assert len(LengthBucketBatches(lengths, batch_size=3, shuffle=False)) == 3


def test_datamodule_rescales_time_by_the_mean_training_interval():
    dataset = dict(name="Hawkes", num_marks=2, split={"train": 0.6, "val": 0.2},
                   generator=dict(process="hawkes", baseline=[0.5, 0.25], adjacency=[[0.4, 0.2], [0.1, 0.5]],
                                  decay=1.5, n_sequences=10, end_time=20.0, seed=0, sampler="numpy"))
    dm = TPPDataModule(dataset=dataset, batch_size=4, eval_batch_size=8)
    dm.setup()
    gaps = np.concatenate([np.diff(t) for t in dm.splits["train"].times])
    assert dm.time_scale == pytest.approx(gaps.mean())
    batch = next(iter(dm.test_dataloader()))
    assert {"true_time_ll", "true_mark_ll"} <= set(batch)
    seq = dm.splits["test"].times[batch["mask"].sum(1).argmax()]
    np.testing.assert_allclose(batch["time"][batch["mask"].sum(1).argmax(), :len(seq)], seq / dm.time_scale,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="declares num_marks=3"):
        TPPDataModule(dataset=dict(dataset, num_marks=3), batch_size=4, eval_batch_size=8).setup()


def test_generated_data_round_trips_through_the_meta_tpp_npz_reader(tmp_path):
    sin = build_process(dict(process="sinusoid", base_rate=1.0, amplitude=1.0, period=10.0))
    data = generate(sin, n_sequences=5, end_time=30.0, seed=2)
    write_metatpp_npz(tmp_path / "tpp" / "Sin" / "sin.npz", data)
    splits = load_splits(dict(name="Sin", num_marks=1, format="meta_tpp_npz", files={"all": "sin.npz"},
                              split={"train": 0.6, "val": 0.2}), tmp_path)
    back = splits["train"].times + splits["val"].times + splits["test"].times
    assert len(back) == 5 and all(np.allclose(a, b) for a, b in zip(back, data.times))


@pytest.mark.parametrize("sequences, message", [
    ([{"times": np.array([0.0, 1.0, 1.0]), "marks": np.array([0, 1, 2])}], "do not strictly increase at event 2"),
    ([{"times": np.array([0.0, 2.0, 1.0]), "marks": np.array([0, 1, 2])}], "negative inter-event time -1.0 at event 2"),
    ([{"times": np.array([-1.0, 2.0]), "marks": np.array([0, 1])}], "negative inter-event time -1.0 at event 0"),
    ([{"times": np.array([0.0, 2.0]), "marks": np.array([0, 3])}], "out of range"),
    ([{"times": np.array([0.0, 2.0]), "marks": np.array([0, 1])}, {"times": np.array([]), "marks": np.array([])}],
     "empty"),
])
def test_bad_files_fail_through_the_task_loader_naming_the_file(tmp_path, sequences, message):
    path = make_meta_tpp_npz(tmp_path / "tpp" / "Reddit" / "reddit.npz", [*sequences] * 1)
    with pytest.raises(DatasetFormatError, match=message) as error:
        load_splits(FILE_DATASET, tmp_path)
    assert str(path) in str(error.value)


def _shared(name):
    for root in ROOTS:
        try:
            locate(name, root=root)
            return root
        except FileNotFoundError:
            continue
    pytest.skip(f"{name} is not on this machine (set AAREN_DATA_ROOT to a data root holding tpp/{name})")


def test_real_mimic_fold1_reproduces_thp_train_dev_test():
    root = _shared("MIMIC")
    dataset = dict(name="MIMIC", num_marks=75, format="rmtpp_text", split={"val_fraction": 0.1},
                   files={"train": "rmtpp_format/time-1-train.txt", "test": "rmtpp_format/time-1-test.txt"})
    splits = load_splits(dataset, root)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [527, 58, 65]
    folder = locate("MIMIC", root=root)
    for split, thp_file in (("val", "dev.pkl"), ("test", "test.pkl")):
        thp = read_tpp(folder / "thp_format_fold1" / thp_file, "thp_pickle")
        assert [len(s["times"]) for s in thp.sequences] == [len(t) for t in splits[split].times]
        assert all(np.array_equal(s["marks"], m) for s, m in zip(thp.sequences, splits[split].marks))


def test_real_wiki_splits_60_20_20_by_order():
    root = _shared("Wiki")
    dataset = dict(name="Wiki", num_marks=8227, format="ifl_tpp_npz", files={"all": "wikipedia.npz"},
                   split={"train": 0.6, "val": 0.2})
    splits = load_splits(dataset, root)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [600, 200, 200]
    assert sum(s.num_events() for s in splits.values()) == 157471


def test_every_tpp_dataset_config_loads_or_names_its_download(tmp_path):
    """With an empty data root, file datasets say how to get them; generated ones need no file."""
    from tasks.datasets.errors import DatasetMissingError

    for config in sorted((REPO / "conf" / "dataset").glob("*.yaml")):
        dataset = yaml.safe_load(config.read_text())
        if dataset["task"] != "tpp" or "generator" in dataset:
            continue
        dataset = {k: v for k, v in dataset.items() if k != "variant"}
        if "fold" in dataset:  # resolve MIMIC's ${dataset.fold} by hand (no Hydra here)
            fold = str(dataset["fold"])
            dataset["files"] = {k: v.replace("${dataset.fold}", fold) for k, v in dataset["files"].items()}
        with pytest.raises(DatasetMissingError, match=f"scripts/download.py {dataset['name']}"):
            load_splits(dataset, tmp_path)
