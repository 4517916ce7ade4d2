"""Smoke-trained runs for the deployment tests: conf/experiment/smoke/<task>.yaml trained into a temporary root
(checkpoints are not committed), as tests/test_harness_run.py trains them."""
from pathlib import Path

import hydra
from omegaconf import OmegaConf

from tasks.harness import identity
from tasks.harness.runner import prepare_config
from tests.harness_toy.helpers import REPO, compose_config, path_overrides, run_in_process


def smoke_run(root: Path, task: str) -> Path:
    """Train (or find) the smoke run of `task` under root → its run folder (config.yaml, checkpoints, fit_done)."""
    overrides = [f"experiment=smoke/{task}"]
    cfg = compose_config([*overrides, *path_overrides(root)])
    fixture = OmegaConf.select(cfg, "smoke.fixture")
    if fixture is not None:
        hydra.utils.instantiate(fixture)
    record = run_in_process(root, overrides)
    return identity.run_dir(prepare_config(cfg, REPO), record["run_id"])
