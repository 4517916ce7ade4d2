"""Helpers for the harness tests: compose train.yaml with the toy task on the search path, run in or out of process.

Every helper sends outputs and records to a temporary folder (never the repository's outputs/ or results/).
"""
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
TOY_CONF = Path(__file__).resolve().parent / "conf"
SEARCHPATH = f"hydra.searchpath=[file://{TOY_CONF}]"
QUIET = ["trainer.enable_progress_bar=false"]


def path_overrides(root: Path) -> list[str]:
    return [f"paths.output_root={root / 'outputs'}", f"paths.results_root={root / 'results'}",
            f"paths.data_root={root / 'data'}"]


def compose_config(overrides: list[str], *, return_hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[SEARCHPATH, *overrides], return_hydra_config=return_hydra_config)


@contextmanager
def isolated_torch():
    """Lightning's deterministic mode and seeding are process-wide: put them back after an in-process run."""
    deterministic, threads, environ = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), \
        dict(os.environ)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environ)


def run_in_process(root: Path, overrides: list[str]) -> dict | None:
    """As `python train.py <overrides>` would: the record's experiment is Hydra's `experiment` choice."""
    from tasks.harness.identity import experiment_name
    from tasks.harness.runner import run

    logger = [] if any(o.startswith("logger=") for o in overrides) else ["logger=none"]
    cfg = compose_config([*QUIET, *logger, *path_overrides(root), *overrides], return_hydra_config=True)
    experiment = experiment_name(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    with isolated_torch():
        return run(cfg, repo_root=REPO, experiment=experiment)


def subprocess_env(root: Path, **extra) -> dict:
    env = dict(os.environ, AAREN_OUTPUT_ROOT=str(root / "outputs"), AAREN_RESULTS_ROOT=str(root / "results"),
               AAREN_DATA_ROOT=str(root / "data"), OMP_NUM_THREADS="1", WANDB_MODE="offline",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.update({key: str(value) for key, value in extra.items()})
    return env


def train_command(*args: str) -> list[str]:
    """python train.py [flags such as -m] <search path> <quiet> <overrides>"""
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return [sys.executable, str(REPO / "train.py"), *flags, SEARCHPATH, *QUIET, *overrides]


def run_train(root: Path, *overrides: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(*overrides), cwd=REPO, env=subprocess_env(root, **env),
                          capture_output=True, text=True, timeout=timeout)


def records(root: Path) -> list[Path]:
    return sorted((root / "results" / "records").rglob("*.json"))
