"""run(cfg): config → trained model → tested best checkpoint → one record in the results store.

Nothing here is task-specific: `cfg.task.datamodule` and `cfg.task.module` are instantiated from their `_target_`.
Finished runs (record present) are skipped unless `force=true`: their recorded metrics are printed as a finished
run prints them. A run whose config values another experiment already recorded is not retrained: an experiment
gets a copy of that record (`copied_from`), an ad-hoc command line is shown it. Interrupted runs resume from the
newest checkpoint that loads (resume.py). Under DDP every rank runs this; only rank 0 locks, skips, writes.
"""
import inspect
import logging
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from tasks.errors import ConfigError
from tasks.fileio import write_json_atomic
from tasks.provenance import git_state

from . import checks, identity, loggers, record, resume, store

log = logging.getLogger("aaren.harness")
log.setLevel(logging.INFO)  # the harness's own lines reach train.log even where the root logger is at WARNING
PATH_KEYS = ("data_root", "output_root", "results_root")
# Trainer arguments the harness itself sets from the run folder and task.monitor
RESERVED_TRAINER_KEYS = {"callbacks", "logger", "default_root_dir", "enable_checkpointing", "plugins"}


def prepare_config(cfg: DictConfig, repo_root: Path) -> DictConfig:
    """Validate, then make relative paths absolute from the repository root (not the shell's cwd)."""
    checks.check_run_config(cfg)
    with open_dict(cfg):
        for key in PATH_KEYS:
            path = Path(cfg.paths[key]).expanduser()
            cfg.paths[key] = str(path if path.is_absolute() else Path(repo_root) / path)
    return cfg


def trainer_kwargs(cfg: DictConfig) -> dict:
    """conf/trainer with `task.trainer` merged over it (task keys win), checked against lightning.Trainer."""
    merged = {**OmegaConf.to_container(cfg.trainer, resolve=True),
              **OmegaConf.to_container(cfg.task.trainer, resolve=True)}
    allowed = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"} - RESERVED_TRAINER_KEYS
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise ConfigError(f"trainer / task.trainer: {unknown} are not lightning.Trainer arguments the harness "
                          f"accepts (it sets {sorted(RESERVED_TRAINER_KEYS)} itself)")
    return merged


class DataStatistics(L.Callback):
    """At fit, after datamodule.setup: a datamodule's `data_statistics()` (e.g. the RL states' mean/std) → the
    module's `set_data_statistics(**them)`. Neither side knows the other; only datamodules that have them say so."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        statistics = getattr(trainer.datamodule, "data_statistics", None)
        if stage == "fit" and callable(statistics):
            pl_module.set_data_statistics(**statistics())


def build_callbacks(cfg: DictConfig, run_dir: Path, show_progress: bool, code: dict | None = None):
    # task.checkpoint_monitor (optional, same mode): select the tested checkpoint on another metric than the one
    # early stopping watches (Meta-TPP: checkpoint by val RMSE, early stopping on val NLL)
    selection = OmegaConf.select(cfg, "task.checkpoint_monitor", default=None) or cfg.task.monitor
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best-{epoch}", monitor=selection,
                                 mode=cfg.task.monitor_mode, save_top_k=1, enable_version_counter=False)
    # last.ckpt after every validation, improved or not: Lightning's save_last on the monitored callback writes it
    # only when the monitor improves, so a killed run would resume from its last improvement (and repeat up to
    # `patience` epochs, or for DT thousands of updates). Unmonitored, top-1, one fixed name: replaced atomically
    # (AtomicCheckpointIO) at every validation.
    latest = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename=Path(resume.LAST_CHECKPOINT).stem,
                             monitor=None, save_top_k=1, enable_version_counter=False)
    run_state = resume.RunStateCallback(code=code)
    callbacks = [checkpoint, latest, run_state, DataStatistics()]
    if cfg.task.patience is not None:
        callbacks.append(EarlyStopping(monitor=cfg.task.monitor, mode=cfg.task.monitor_mode,
                                       patience=cfg.task.patience))
    if show_progress:
        callbacks.append(RichProgressBar())
    return checkpoint, run_state, callbacks


def tested_checkpoint(module, fit: dict, run_dir: Path) -> str:
    """The checkpoint a finished fit is tested on: its best, or its last for a module that keeps its own
    snapshots in every checkpoint (`TaskModule.tested_checkpoint`)."""
    if module.tested_checkpoint == "last" and (run_dir / resume.LAST_CHECKPOINT).is_file():
        return str(run_dir / resume.LAST_CHECKPOINT)
    return fit["best_checkpoint"]


def _instantiate(cfg: DictConfig, key: str):
    try:
        return hydra.utils.instantiate(OmegaConf.select(cfg, key), _convert_="all")
    except hydra.errors.InstantiationException as error:
        if isinstance(error.__cause__, ValueError):
            raise error.__cause__  # the task's own clear error (ConfigError, DatasetFormatError, ...)
        raise ConfigError(f"cannot build {key} ({OmegaConf.select(cfg, key + '._target_')}): {error}") from error


def _add_file_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def _metrics_line(entry: dict) -> str:
    """The one line every run ends with: `<run id> [<experiment>] test <metric> <value> ...` (sorted)."""
    values = "  ".join(f"{name} {'nan' if value is None else f'{value:.6g}'}"
                       for name, value in sorted(entry["metrics"].items()))
    return f"run {entry['run_id']} [{entry.get('experiment', identity.ADHOC)}] test {values}"


def _recorded(cfg: DictConfig, *, experiment: str, config_hash: str, record_path: Path, rid: str) -> dict | None:
    """The finished record of this run, or of the same config values under another experiment (copied for an
    experiment, shown to an ad-hoc run); None when the run has to be trained."""
    if record_path.is_file():
        entry = store.read_record(record_path)
        log.info("%s", _metrics_line(entry))
        log.info("run %s is finished (recorded %s in %s); skipping (force=true reruns it)", rid,
                 entry.get("finished_at"), record_path)
        checks.warn_on_data_drift(cfg, entry, record_path)
        return entry
    twin = store.find_by_config_hash(record_path.parent, config_hash)
    if twin is None:
        return None
    twin_path, source = twin
    entry = source
    if experiment != identity.ADHOC:  # the experiment's own table needs its own record of the cell
        entry = {**source, "run_id": rid, "experiment": experiment, "copied_from": source["run_id"],
                 "report": record.report_of(cfg)}
        write_json_atomic(record_path, entry)
    log.info("%s", _metrics_line(entry))
    log.info("run %s: the same config values were recorded by experiment %s (%s in %s)%s; skipping "
             "(force=true reruns it)", rid, source.get("experiment", identity.ADHOC), source.get("finished_at"),
             twin_path, "" if entry is source else f"; copied to {record_path}")
    checks.warn_on_data_drift(cfg, entry, twin_path)
    return entry


def run(cfg: DictConfig, *, repo_root: Path, experiment: str | None = None) -> dict | None:
    """Train, test and record one run. Returns the record, or None when another process holds the run.

    `experiment`: the experiment that asks for the run (default: Hydra's `experiment` choice, else "adhoc")."""
    cfg = prepare_config(cfg, repo_root)
    resume.exit_with_parent()  # a sweep worker stops with its parent
    experiment = experiment or identity.experiment_name()
    is_rank_zero = rank_zero_only.rank == 0
    config_hash = identity.config_hash(cfg)
    rid = identity.run_id_of(model=cfg.model.kind, seed=cfg.seed, experiment=experiment, config_hash=config_hash)
    run_dir = identity.run_dir(cfg, rid)
    record_path = store.record_path(cfg.paths.results_root, cfg.task.name, cfg.dataset.name, rid)
    if is_rank_zero and not cfg.force:
        entry = _recorded(cfg, experiment=experiment, config_hash=config_hash, record_path=record_path, rid=rid)
        if entry is not None:
            return entry
    lock = resume.RunLock(run_dir)
    if is_rank_zero:
        try:
            lock.acquire()
        except resume.RunLockedError as error:
            log.warning("skipping: %s", error)
            return None
        if cfg.force:
            resume.clear_run_state(run_dir)
    handler = _add_file_log(run_dir) if is_rank_zero else None
    logger = None
    try:
        log.info("run %s [%s] → %s", rid, experiment, run_dir)
        code = git_state(repo_root)   # the code this process runs: read now, not when the record is written
        ident = identity.identity_config(cfg)
        if is_rank_zero:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        torch.set_num_threads(cfg.threads)  # part of the identity: float sums depend on the thread count
        L.seed_everything(cfg.seed, workers=True)
        datamodule = _instantiate(cfg, "task.datamodule")
        module = _instantiate(cfg, "task.module")
        kwargs = trainer_kwargs(cfg)
        checkpoint, run_state, callbacks = build_callbacks(cfg, run_dir, kwargs.get("enable_progress_bar", True),
                                                          code)
        logger = loggers.build_logger(cfg, rid=rid, run_dir=run_dir, config=ident, experiment=experiment)
        trainer = L.Trainer(**kwargs, callbacks=callbacks, logger=logger if logger else False,
                            default_root_dir=str(run_dir), plugins=[resume.AtomicCheckpointIO()])
        fit = resume.read_fit_done(run_dir, move_aside=is_rank_zero)  # every rank reads the same files
        last = resume.loadable_checkpoint(run_dir, move_aside=is_rank_zero) if fit is None else None
        resumed = last is not None or fit is not None
        if fit is None:
            if last is not None:
                log.info("resuming from %s", last)
            trainer.fit(module, datamodule=datamodule, ckpt_path=None if last is None else str(last),
                        weights_only=True)
            if trainer.interrupted:
                raise KeyboardInterrupt(f"training of {rid} was interrupted; relaunch to resume")
            best = trainer.strategy.broadcast(checkpoint.best_model_path)
            score = checkpoint.best_model_score
            fit = {"best_checkpoint": best or str(run_dir / resume.LAST_CHECKPOINT), "epochs": trainer.current_epoch,
                   "best_score": None if score is None else float(score), "elapsed_s": run_state.elapsed_s(),
                   "learning_curve": run_state.learning_curve, "training": record.training_summary(trainer),
                   "code_versions": run_state.code_versions}
            if is_rank_zero:
                resume.write_fit_done(run_dir, fit)
        else:
            log.info("training of %s had finished; testing it", rid)
        tested = tested_checkpoint(module, fit, run_dir)
        fit["tested_checkpoint"] = "best" if Path(tested).name.startswith("best") else "last"
        log.info("testing the %s checkpoint of %s: %s", fit["tested_checkpoint"], rid, tested)
        test_started = time.monotonic()
        results = trainer.test(module, datamodule=datamodule, ckpt_path=tested, weights_only=True)
        metrics = record.collect_test_metrics(results)
        if not trainer.is_global_zero:
            return None
        wall_time = fit["elapsed_s"] + time.monotonic() - test_started  # training (every segment) + test
        entry = record.build_record(cfg, rid=rid, experiment=experiment, config_hash=config_hash, identity=ident,
                                    metrics=metrics, module=module, git=code, wall_time_s=wall_time,
                                    resumed=resumed, fit=fit, world_size=trainer.world_size)
        if callable(getattr(datamodule, "data_fingerprint", None)):  # the file read, where a task names one
            entry["data"] = datamodule.data_fingerprint()
        write_json_atomic(record_path, entry)
        loggers.log_record(logger, entry)
        log.info("%s", _metrics_line(entry))
        log.info("run %s done: recorded in %s", rid, record_path)
        loggers.finish_logger(logger, failed=False)
        return entry
    except BaseException:
        loggers.finish_logger(logger, failed=True)
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        lock.release()
