"""The run record written to the results store (one JSON file per run; see store.py)."""
import math
from datetime import datetime, timezone

from omegaconf import DictConfig, OmegaConf

from tasks.provenance import machine, package_versions

SCHEMA_VERSION = 2  # 2: experiment, learning_curve, training, report, copied_from (tasks/README.md)
TEST_PREFIX = "test/"


class NoTestMetricsError(RuntimeError):
    """The task module logged no `test/<metric>` value during trainer.test."""


def collect_test_metrics(results: list[dict]) -> dict:
    """`test/<name>` values returned by trainer.test → {name: float | None (non-finite)}."""
    metrics = {}
    for per_dataloader in results:
        for key, value in per_dataloader.items():
            if key.startswith(TEST_PREFIX):
                value = float(value)
                metrics[key[len(TEST_PREFIX):]] = value if math.isfinite(value) else None
    if not metrics:
        raise NoTestMetricsError("the task module logged no `test/<metric>` value in test_step/on_test_epoch_end "
                                 "(tasks/README.md: log every test metric as `test/<metric>`)")
    return metrics


def report_of(cfg: DictConfig) -> dict | None:
    """The `report:` prose of task + experiment (recorded, not hashed)."""
    node = OmegaConf.select(cfg, "report")
    return None if node is None else OmegaConf.to_container(node, resolve=True)


def training_summary(trainer) -> dict:
    """How training ended: early stopping triggered, or the epoch / update limit reached (either = converged)."""
    epochs, steps = int(trainer.current_epoch), int(trainer.global_step)
    max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
    reached_limit = bool((max_epochs is not None and max_epochs > 0 and epochs >= max_epochs)
                         or (max_steps is not None and max_steps > 0 and steps >= max_steps))
    stopping = trainer.early_stopping_callback
    stopped_early = bool(stopping is not None and stopping.wait_count >= stopping.patience and trainer.should_stop)
    return {"epochs": epochs, "steps": steps, "stopped_early": stopped_early, "reached_limit": reached_limit,
            "converged": stopped_early or reached_limit}


def build_record(cfg: DictConfig, *, rid: str, experiment: str, config_hash: str, identity: dict, metrics: dict,
                 module, git: dict, wall_time_s: float, resumed: bool, fit: dict, world_size: int) -> dict:
    """git: the code state the testing process started with; fit["code_versions"] (when the fit marker has it):
    those of every process that trained the run, recorded as `git_training`."""
    parameters = list(module.parameters())
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": rid,
        "experiment": experiment,
        "config_hash": config_hash,
        "task": cfg.task.name,
        "dataset": cfg.dataset.name,
        "model": cfg.model.kind,
        "seed": cfg.seed,
        "variant": OmegaConf.to_container(cfg.task.variant, resolve=True),
        "metrics": metrics,
        "protocol": OmegaConf.to_container(cfg.task.protocol, resolve=True),
        "data_label": OmegaConf.select(cfg, "task.data_label", default=None)
        or OmegaConf.select(cfg, "dataset.provenance", default=None),
        "monitor": {"name": OmegaConf.select(cfg, "task.checkpoint_monitor", default=None) or cfg.task.monitor,
                    "mode": cfg.task.monitor_mode, "best": fit["best_score"]},   # the tested checkpoint's metric
        "epochs_trained": fit["epochs"],
        "learning_curve": fit.get("learning_curve", []),
        "training": fit.get("training"),
        "report": report_of(cfg),
        "tested_checkpoint": fit["tested_checkpoint"],
        "n_parameters": sum(p.numel() for p in parameters),
        "n_trainable_parameters": sum(p.numel() for p in parameters if p.requires_grad),
        "wall_time_s": round(wall_time_s, 3),
        "resumed": resumed,
        "world_size": world_size,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git,
        "git_training": fit.get("code_versions"),
        "versions": package_versions(),
        "machine": machine(),
        "config": identity,
    }
