"""Run identity: a short hash of the resolved config (minus `identity_ignore` keys, seed included).

The hash names the run folder and the record, so two launches of the same config + seed are the same run
(skipped when finished, resumed when interrupted) and two different runs never share a folder.
"""
import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

HASH_CHARS = 10
IGNORED = "<ignored>"


def _blank(node) -> None:
    """Replace every leaf under a DictConfig node with a constant (interpolations into it then hash the same)."""
    for key in list(node.keys()):
        if isinstance(node[key], DictConfig):
            _blank(node[key])
        else:
            node[key] = IGNORED


def identity_config(cfg: DictConfig) -> dict:
    """The resolved config that defines a run's result: ignored keys blanked before resolving, then dropped."""
    ignored = list(cfg.get("identity_ignore") or [])
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(copy):
        for key in ignored:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(copy, parent) if parent else copy
            if node is None or leaf not in node:
                continue
            if isinstance(node[leaf], DictConfig):
                _blank(node[leaf])
            else:
                node[leaf] = IGNORED
        resolved = OmegaConf.to_container(copy, resolve=True)
    for key in ignored:
        parent, _, leaf = key.rpartition(".")
        node = resolved
        for part in parent.split(".") if parent else []:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return resolved


def config_hash(cfg: DictConfig) -> str:
    text = json.dumps(identity_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def run_id(cfg: DictConfig) -> str:
    """`<model>_s<seed>_<hash>`: readable prefix, the hash decides."""
    return f"{cfg.model.kind}_s{cfg.seed}_{config_hash(cfg)}"


def run_dir(cfg: DictConfig, rid: str) -> Path:
    """<output_root>/runs/<task>/<dataset>/<run_id>: checkpoints, logs, resolved config of one run."""
    return Path(cfg.paths.output_root) / "runs" / cfg.task.name / cfg.dataset.name / rid
