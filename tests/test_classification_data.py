"""UEADataModule on generated `.ts` files (the real format) and, when ../shared is present, on the real sets."""
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tasks.classification.data import UEADataModule, pad_batch
from tasks.classification.protocol import ClassificationDataError
from tests.fixtures import SHARED_ROOT, make_ts_pair, write_ts
from tasks.datasets.readers import DatasetFormatError

# A registered UEA name with no recorded file sizes, so the registry's `locate` accepts small generated files.
NAME = "SelfRegulationSCP2"
CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def fixture_root(tmp_path: Path, **kwargs) -> tuple[Path, dict]:
    options = dict(n_train=12, n_test=6, n_dims=2, lengths=(5, 9), n_classes=3) | kwargs
    make_ts_pair(tmp_path / "classification" / NAME, NAME, **options)
    dataset = {"name": NAME, "n_train": options["n_train"], "n_test": options["n_test"],
               "n_channels": options["n_dims"], "n_classes": options["n_classes"], "max_length": options["lengths"][1]}
    return tmp_path, dataset


def test_batches_are_right_padded_with_masks_and_validation_comes_from_train(tmp_path):
    root, dataset = fixture_root(tmp_path)
    dm = UEADataModule(dataset=dataset, data_root=str(root), batch_size=4, seed=0)
    dm.setup()
    sizes = {split: len(ds) for split, ds in dm.splits.items()}
    assert sizes == {"train": 9, "val": 3, "test": 6}  # one of 4 per class to validation, TEST untouched
    assert sorted(dm.splits["val"].labels.tolist()) == [0, 1, 2]
    x, mask, y = next(iter(dm.test_dataloader()))
    lengths = torch.tensor([len(c) for c in dm.splits["test"].cases[:4]])
    assert x.shape == (4, int(lengths.max()), 2) and mask.dtype == torch.bool
    assert torch.equal(mask.sum(1), lengths) and torch.all(x[~mask] == 0)
    train_rows = torch.cat(dm.splits["train"].cases)  # standardised with the training cases' statistics
    torch.testing.assert_close(train_rows.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(train_rows.std(0), torch.ones(2), atol=1e-4, rtol=0)


def test_tslib_compat_switches(tmp_path):
    root, dataset = fixture_root(tmp_path)
    dm = UEADataModule(dataset=dataset, data_root=str(root), validation="test", normalisation="per_split")
    dm.setup()
    assert dm.splits["val"] is dm.splits["test"] and len(dm.splits["train"]) == 12
    for split in ("train", "test"):  # each file standardised with its own statistics
        rows = torch.cat(dm.splits[split].cases)
        torch.testing.assert_close(rows.mean(0), torch.zeros(2), atol=1e-5, rtol=0)


def test_the_split_follows_the_seed(tmp_path):
    root, dataset = fixture_root(tmp_path, n_train=30)
    dataset["n_train"] = 30
    val = []
    for seed in (0, 0, 1):
        dm = UEADataModule(dataset=dataset, data_root=str(root), seed=seed)
        dm.setup()
        val.append(torch.cat(dm.splits["val"].cases))
    assert torch.equal(val[0], val[1]) and not torch.equal(val[0], val[2])


def test_missing_values_are_interpolated(tmp_path):
    root, dataset = fixture_root(tmp_path)
    train_file = root / "classification" / NAME / f"{NAME}_TRAIN.ts"
    text = train_file.read_text().replace("@missing false", "@missing true")
    header, data = text.split("@data\n")
    first, rest = data.split("\n", 1)
    values = first.split(",")
    values[1] = "?"  # case 0, channel 0, step 1
    train_file.write_text(header + "@data\n" + ",".join(values) + "\n" + rest)
    dm = UEADataModule(dataset=dataset, data_root=str(root), validation="test", normalisation="per_split")
    dm.setup()
    case = dm.splits["train"].cases[0][:, 0]
    assert torch.isfinite(case).all()
    torch.testing.assert_close(case[1], (case[0] + case[2]) / 2)


def test_test_labels_missing_from_train_are_an_error(tmp_path):
    root, dataset = fixture_root(tmp_path)
    rng = np.random.default_rng(0)
    write_ts(root / "classification" / NAME / f"{NAME}_TEST.ts", problem_name=NAME,
             series=[rng.normal(size=(6, 2)) for _ in range(6)], labels=["1", "2", "4", "1", "2", "4"],
             class_labels=["1", "2", "3", "4"])
    dm = UEADataModule(dataset=dataset, data_root=str(root))
    with pytest.raises(ClassificationDataError, match=rf"{NAME}_TEST.ts: labels \['4'\] do not occur"):
        dm.setup()


def test_a_wrong_header_is_an_error_naming_the_file(tmp_path):
    root, dataset = fixture_root(tmp_path)
    train_file = root / "classification" / NAME / f"{NAME}_TRAIN.ts"
    train_file.write_text(train_file.read_text().replace("@dimensions 2", "@dimensions 3"))
    with pytest.raises(DatasetFormatError, match=rf"{NAME}_TRAIN.ts: header declares 3 dimensions, data has 2"):
        UEADataModule(dataset=dataset, data_root=str(root)).setup()


def test_inconsistent_dimensions_are_an_error_naming_the_file(tmp_path):
    root, dataset = fixture_root(tmp_path)
    test_file = root / "classification" / NAME / f"{NAME}_TEST.ts"
    rng = np.random.default_rng(0)
    write_ts(test_file, problem_name=NAME, series=[rng.normal(size=(6, 3)) for _ in range(6)],
             labels=["1", "2", "3"] * 2, class_labels=["1", "2", "3"])
    with pytest.raises(ClassificationDataError, match=rf"{NAME}_TEST.ts: has 3 channels, the training file"):
        UEADataModule(dataset=dataset, data_root=str(root)).setup()
    text = test_file.read_text().splitlines()  # one case whose channels have different lengths
    text[-1] = "1,2,3:1,2:1,2,3:1"
    test_file.write_text("\n".join(text) + "\n")
    with pytest.raises(DatasetFormatError, match=rf"{NAME}_TEST.ts"):
        UEADataModule(dataset=dataset, data_root=str(root)).setup()


def test_files_disagreeing_with_the_dataset_config_are_an_error(tmp_path):
    root, dataset = fixture_root(tmp_path)
    with pytest.raises(ClassificationDataError, match=rf"n_classes = 3, but conf/dataset/{NAME}.yaml says 4"):
        UEADataModule(dataset=dataset | {"n_classes": 4}, data_root=str(root)).setup()
    with pytest.raises(ClassificationDataError, match="more than max_length = 6"):
        UEADataModule(dataset=dataset | {"max_length": 6}, data_root=str(root)).setup()


def test_bad_switches_are_clear_errors():
    with pytest.raises(ValueError, match="validation must be one of"):
        UEADataModule(dataset={"name": NAME}, validation="TEST")
    with pytest.raises(ValueError, match="normalisation must be one of"):
        UEADataModule(dataset={"name": NAME}, normalisation="per_sample")


def test_pad_batch():
    x, mask, y = pad_batch([(torch.ones(3, 2), torch.tensor(1)), (2 * torch.ones(1, 2), torch.tensor(0))])
    assert x.shape == (2, 3, 2) and mask.tolist() == [[True, True, True], [True, False, False]]
    assert x[1, 1:].abs().sum() == 0 and y.tolist() == [1, 0]


REAL = ["JapaneseVowels", "Handwriting", "UWaveGestureLibrary"]


@pytest.mark.skipif(not (SHARED_ROOT / "classification").is_dir(), reason=f"real UEA files absent ({SHARED_ROOT})")
@pytest.mark.parametrize("name", REAL)
def test_the_real_sets_match_their_configs(name):
    dataset = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    dm = UEADataModule(dataset=dataset, data_root=str(SHARED_ROOT), seed=0)
    dm.setup()  # checks n_train, n_test, n_channels, n_classes, max_length against the files
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == dataset["n_train"]
    assert max(len(c) for c in dm.splits["test"].cases) <= dataset["max_length"]


def test_every_uea_config_names_a_registered_classification_set():
    from tasks.datasets.registry import get

    names = sorted(p.stem for p in CONF.glob("*.yaml") if OmegaConf.load(p).get("task") == "classification")
    assert len(names) == 10
    for name in names:
        assert get(name).task == "classification"


def test_japanese_vowels_loads_from_sktime_when_the_data_root_lacks_it(tmp_path):
    dataset = OmegaConf.to_container(OmegaConf.load(CONF / "JapaneseVowels.yaml"))
    dm = UEADataModule(dataset=dataset, data_root=str(tmp_path), seed=0)
    assert "sktime" in str(dm.files()[0])
    dm.setup()
    assert len(dm.splits["test"]) == 370
