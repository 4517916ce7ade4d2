"""Experiment loggers from `cfg.logger.kind`: wandb (offline by default), csv, none; the W&B metrics table."""
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig

TABLE_COLUMNS = ["task", "dataset", "variant", "model", "seed", "metric", "value"]


def build_logger(cfg: DictConfig, *, rid: str, run_dir: Path, config: dict, experiment: str) -> Logger | None:
    kind = cfg.logger.kind
    if kind == "none":
        return None
    if kind == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv")
    # wandb: one W&B run per harness run (id = run id, so a resumed run continues it), grouped per (task, dataset)
    return WandbLogger(project=cfg.logger.project, entity=cfg.logger.entity, name=rid, id=rid,
                       group=f"{cfg.task.name}/{cfg.dataset.name}", job_type=cfg.model.kind,
                       tags=[experiment, cfg.task.name, cfg.dataset.name, cfg.model.kind, *cfg.logger.tags],
                       save_dir=str(run_dir), mode=cfg.logger.mode, config={**config, "experiment": experiment})


def log_record(logger: Logger | None, record: dict) -> None:
    """A W&B Table of the run's test metrics (one row per metric) and the metrics in the run summary."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    variant = ",".join(f"{key}={value}" for key, value in sorted(record["variant"].items()))
    rows = [[record["task"], record["dataset"], variant, record["model"], record["seed"], name, value]
            for name, value in sorted(record["metrics"].items())]
    logger.experiment.log({"test_metrics": wandb.Table(columns=TABLE_COLUMNS, data=rows)})
    logger.experiment.summary.update({f"test/{name}": value for name, value in record["metrics"].items()})


def finish_logger(logger: Logger | None, *, failed: bool) -> None:
    """Close the W&B run so the next run of a multirun (same process) starts its own."""
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish(exit_code=1 if failed else 0)
