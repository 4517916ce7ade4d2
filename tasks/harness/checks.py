"""Validation of a composed run config before anything is built: every failure names the key and the problem."""
import logging
from collections.abc import Mapping
from pathlib import Path

from aaren.backbone import KINDS
from omegaconf import DictConfig, OmegaConf

from tasks.errors import ConfigError

log = logging.getLogger("aaren.harness")

MODEL_KINDS = tuple(KINDS)
LOGGER_KINDS = ("wandb", "csv", "none")
MONITOR_MODES = ("min", "max")


def _get(cfg: DictConfig, key: str):
    try:
        return OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as error:  # an unresolvable interpolation or a ??? value
        raise ConfigError(f"config key {key!r} cannot be read: {error}") from error


def _require_mapping(cfg: DictConfig, key: str, *, with_target: bool = False) -> None:
    node = _get(cfg, key)
    if not isinstance(node, (DictConfig, Mapping)):
        raise ConfigError(f"config key {key!r} must be a mapping, got {node!r}")
    if with_target and not isinstance(node.get("_target_"), str):
        raise ConfigError(f"config key {key!r} must name the class to build in `_target_`")


def _require_str(cfg: DictConfig, key: str) -> str:
    value = _get(cfg, key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"config key {key!r} must be a non-empty string, got {value!r}")
    return value


def _require_int(cfg: DictConfig, key: str, *, minimum: int, allow_null: bool = False) -> None:
    value = _get(cfg, key)
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        null = " or null" if allow_null else ""
        raise ConfigError(f"config key {key!r} must be an int >= {minimum}{null}, got {value!r}")


def _require_choice(cfg: DictConfig, key: str, choices: tuple) -> None:
    value = _get(cfg, key)
    if value not in choices:
        raise ConfigError(f"config key {key!r} must be one of {list(choices)}, got {value!r}")


def check_run_config(cfg: DictConfig) -> None:
    """Raise ConfigError on the first malformed value of a composed train.yaml config (tasks/README.md)."""
    for group in ("task", "dataset", "model", "trainer", "logger", "paths"):
        if _get(cfg, group) is None:
            raise ConfigError(f"config group {group!r} is missing; choose one with `{group}=<name>`")
    task = _require_str(cfg, "task.name")
    dataset = _require_str(cfg, "dataset.name")
    dataset_task = _require_str(cfg, "dataset.task")
    if dataset_task != task:
        raise ConfigError(f"dataset {dataset!r} belongs to task {dataset_task!r}, not to task {task!r}")
    _require_choice(cfg, "model.kind", MODEL_KINDS)
    _require_int(cfg, "seed", minimum=0)
    _require_int(cfg, "threads", minimum=1)
    _require_choice(cfg, "force", (True, False))
    _require_str(cfg, "task.monitor")
    _require_choice(cfg, "task.monitor_mode", MONITOR_MODES)
    _require_int(cfg, "task.patience", minimum=0, allow_null=True)
    for key in ("task.variant", "task.protocol", "task.trainer", "trainer"):
        _require_mapping(cfg, key)
    for key in ("task.datamodule", "task.module"):
        _require_mapping(cfg, key, with_target=True)
    _require_choice(cfg, "logger.kind", LOGGER_KINDS)
    for key in ("paths.data_root", "paths.output_root", "paths.results_root"):
        _require_str(cfg, key)
    for key in ("task.trainer.max_epochs", "trainer.max_epochs", "task.trainer.max_steps", "trainer.max_steps"):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value == 0 or value < -1):
            raise ConfigError(f"config key {key!r} must be an int >= 1, or -1 / null for no limit, got {value!r}")
    for key in ("task.datamodule.batch_size", "task.datamodule.eval_batch_size"):
        if OmegaConf.select(cfg, key, default=None) is not None:
            _require_int(cfg, key, minimum=1)
    for name, value in _get(cfg, "task.variant").items():
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"config key 'task.variant.{name}' must be a scalar, got {value!r}")


def warn_on_data_drift(cfg: DictConfig, record: dict, record_path: Path) -> bool:
    """Warn (True) when the data file a finished run recorded (`data.sha256`) differs from the file now on disk.
    The data's location is not part of a run's identity (paths are ignored); its content is checked here."""
    recorded = (record.get("data") or {}).get("sha256")
    if not recorded:
        return False
    try:
        import hydra

        datamodule = hydra.utils.instantiate(cfg.task.datamodule, _convert_="all")
        path = datamodule.file()
        from tasks.datasets.download import sha256_of

        current = sha256_of(path)
    except Exception as error:  # the data may be gone: the record stands, say so
        log.warning("cannot check the data of finished run %s (%s): %s", record.get("run_id"), record_path, error)
        return True
    if current != recorded:
        log.warning("finished run %s (%s) read data with sha256 %s; %s now has sha256 %s: its numbers are not "
                    "from this data (force=true reruns it)", record.get("run_id"), record_path, recorded, path,
                    current)
        return True
    return False
