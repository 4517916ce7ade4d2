"""Dataset facts live in two places: tasks/datasets/registry.yaml (what a dataset is, its files) and
conf/dataset/<Name>.yaml (what the loader needs). Every fact both state must agree; this test checks each overlap.

Not an overlap: the registry's `freq` is the data's sampling interval, a forecasting config's `time_feature_freq`
is TSLib's timeF setting ("h" for every dataset, see conf/dataset/ETTh1.yaml)."""
import re
from pathlib import Path

import pytest
import yaml

from tasks.datasets import registry

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
IN_MEMORY = {"Hawkes"}  # drawn from the seed in its config, no file, so no registry entry
# (config key, registry fact) pairs stating the same thing, per task
SAME_FACT = {
    "forecasting": [("channels", "channels"), ("target", "target")],
    "classification": [("n_train", "n_train"), ("n_test", "n_test"), ("n_channels", "channels"),
                       ("n_classes", "classes"), ("max_length", "length")],
    "tpp": [("num_marks", "num_marks")],
    "rl": [("env", "env"), ("level", "level")],
}


def _configs() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(CONF.glob("*.yaml"))}


def _longest(length):
    """A registry `length` is an int or "min-max" (UEA sets with unequal lengths): the longest sequence."""
    return int(str(length).rpartition("-")[2])


def _file_paths(cfg: dict) -> list[str]:
    """The files a config names (forecasting/rl `file`, tpp `files`), its `${dataset.fold}` resolved."""
    named = [cfg["file"]] if "file" in cfg else list((cfg.get("files") or {}).values())
    return [re.sub(r"\$\{dataset\.fold\}", str(cfg.get("fold")), path) for path in named]


def overlap_mismatches(name: str, cfg: dict) -> list[str]:
    """Every fact `cfg` (conf/dataset/<name>.yaml) and the registry both state and disagree on."""
    info = registry.get(name)
    wrong = [f"task: config {cfg['task']!r}, registry {info.task!r}"] if cfg["task"] != info.task else []
    if "format" in cfg and cfg["format"] != info.format:
        wrong.append(f"format: config {cfg['format']!r}, registry {info.format!r}")
    for key, fact in SAME_FACT[info.task]:
        if key in cfg and fact in info.facts:
            expected = _longest(info.facts[fact]) if fact == "length" else info.facts[fact]
            if cfg[key] != expected:
                wrong.append(f"{key}: config {cfg[key]!r}, registry facts.{fact} {info.facts[fact]!r}")
    files = {f.path for f in info.files}
    wrong += [f"file {path!r} is not a registry file of {name}" for path in _file_paths(cfg) if path not in files]
    return wrong


def test_every_dataset_config_has_a_registry_entry():
    configs = _configs()
    assert all(cfg["name"] == stem for stem, cfg in configs.items())
    assert set(configs) - set(registry.names()) == IN_MEMORY


@pytest.mark.parametrize("name", sorted(set(_configs()) - IN_MEMORY))
def test_dataset_config_agrees_with_the_registry(name):
    assert overlap_mismatches(name, _configs()[name]) == []


def test_a_disagreeing_fact_is_reported():
    cfg = _configs()["JapaneseVowels"]
    assert overlap_mismatches("JapaneseVowels", {**cfg, "n_classes": 8, "max_length": 7}) == [
        "n_classes: config 8, registry facts.classes 9", "max_length: config 7, registry facts.length '7-29'"]
    assert overlap_mismatches("ETTh1", {**_configs()["ETTh1"], "file": "ETTh2.csv"}) == [
        "file 'ETTh2.csv' is not a registry file of ETTh1"]
