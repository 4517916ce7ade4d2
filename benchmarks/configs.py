"""The backbones measured: the paper-size config of each task, read from the project's Hydra files (the single
source of truth), and a toy config for smoke tests."""
from pathlib import Path

import yaml

from .common import REPO, BenchmarkError

# name → (YAML file, keys down to the backbone node). Forecasting uses the paper's TSLib scale (512/8/2048).
PAPER_CONFIG_FILES = {
    "rl": ("conf/task/rl.yaml", ("task", "backbone")),
    "forecasting": ("conf/experiment/paper/forecasting.yaml", ("task", "backbone")),
    "tpp": ("conf/task/tpp.yaml", ("task", "backbone")),
    "classification": ("conf/task/classification.yaml", ("task", "backbone")),
}
TOY_CONFIGS = {"toy": {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "dropout": 0.1}}
BACKBONE_KEYS = ("d_model", "n_layers", "n_heads", "d_ff", "dropout", "norm_first", "activation")


def backbone_config(name: str, repo: Path = REPO) -> dict:
    """aaren.Backbone keyword arguments (without `kind`) of config `name`."""
    if name in TOY_CONFIGS:
        return dict(TOY_CONFIGS[name])
    if name not in PAPER_CONFIG_FILES:
        raise BenchmarkError(f"unknown config {name!r}; known: {sorted(PAPER_CONFIG_FILES) + sorted(TOY_CONFIGS)}")
    relative, keys = PAPER_CONFIG_FILES[name]
    path = repo / relative
    if not path.exists():
        raise BenchmarkError(f"config {name!r}: {path} does not exist")
    node = yaml.safe_load(path.read_text())
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise BenchmarkError(f"config {name!r}: {path} has no {'.'.join(keys)} node")
        node = node[key]
    config = {k: node[k] for k in BACKBONE_KEYS if k in node}
    missing = {"d_model", "n_layers", "n_heads", "d_ff"} - set(config)
    unresolved = [k for k, v in config.items() if isinstance(v, str) and "${" in v]
    if missing or unresolved:
        raise BenchmarkError(f"config {name!r}: {path} {'.'.join(keys)} lacks {sorted(missing)} or has "
                             f"interpolations {unresolved}")
    return config
