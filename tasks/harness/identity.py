"""Run identity: which experiment asked for the run, and the resolved config VALUES that define its result.

- `identity_config(cfg)`: the resolved config minus `identity_ignore` keys (paths, logging, `report` prose, ...),
  with every constructor argument of a `_target_` node that equals the constructor's default dropped (so
  `+task.datamodule.num_workers=0`, the default, is the same run as leaving it out).
- `config_hash`: a short hash of those values. Two launches with the same values compute the same result.
- `run_id`: `<model>_s<seed>_<hash of (experiment, config_hash)>`: names the run folder and the record. The same
  values launched by two experiments are two runs of two tables (the runner copies the finished one, see runner.py).
"""
import hashlib
import importlib
import inspect
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

HASH_CHARS = 10
IGNORED = "<ignored>"
ADHOC = "adhoc"  # the experiment of a bare command line (no `experiment=...`)


def experiment_name(choices=None) -> str:
    """Hydra's chosen `experiment` option ("cpu/forecasting", "smoke/tpp", ...) or "adhoc".

    `choices`: hydra.runtime.choices; by default read from the running Hydra app (train.py)."""
    if choices is None:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return choices.get("experiment") or ADHOC


def _blank(node) -> None:
    """Replace every leaf under a DictConfig node with a constant (interpolations into it then hash the same)."""
    for key in list(node.keys()):
        if isinstance(node[key], DictConfig):
            _blank(node[key])
        else:
            node[key] = IGNORED


def _constructor_defaults(target: str) -> dict:
    module, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
        parameters = inspect.signature(obj).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return {}  # the runner reports a target that cannot be built; identity stays defined
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def drop_constructor_defaults(node):
    """Recursively drop the arguments of `_target_` nodes that equal the constructor's default (in place)."""
    if isinstance(node, dict):
        for value in node.values():
            drop_constructor_defaults(value)
        if isinstance(node.get("_target_"), str):
            defaults = _constructor_defaults(node["_target_"])
            for key in [k for k, v in node.items() if k in defaults and type(v) is type(defaults[k])
                        and v == defaults[k]]:
                del node[key]
    elif isinstance(node, list):
        for value in node:
            drop_constructor_defaults(value)
    return node


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
    return drop_constructor_defaults(resolved)


def values_hash(identity: dict) -> str:
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def config_hash(cfg: DictConfig) -> str:
    return values_hash(identity_config(cfg))


def run_id_of(*, model: str, seed: int, experiment: str, config_hash: str) -> str:
    """`<model>_s<seed>_<hash>`: readable prefix; the hash covers the experiment and the config values."""
    digest = hashlib.sha256(f"{experiment}\n{config_hash}".encode()).hexdigest()[:HASH_CHARS]
    return f"{model}_s{seed}_{digest}"


def run_id(cfg: DictConfig, *, experiment: str) -> str:
    return run_id_of(model=cfg.model.kind, seed=cfg.seed, experiment=experiment, config_hash=config_hash(cfg))


def run_dir(cfg: DictConfig, rid: str) -> Path:
    """<output_root>/runs/<task>/<dataset>/<run_id>: checkpoints, logs, resolved config of one run."""
    return Path(cfg.paths.output_root) / "runs" / cfg.task.name / cfg.dataset.name / rid
