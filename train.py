"""Train, test and record one run:  python train.py task=<task> model=<aaren|transformer> [dataset=<name>] [seed=<n>]

Sweeps:  python train.py -m experiment=paper/<task> [hydra/launcher=local_parallel|slurm]
Everything task-specific comes from the config (conf/task/<task>.yaml); the harness is tasks/harness/runner.py.
"""
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tasks.harness.identity import experiment_name
from tasks.harness.runner import run

REPO_ROOT = Path(__file__).resolve().parent


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    return run(cfg, repo_root=REPO_ROOT, experiment=experiment_name())  # Hydra's `experiment` choice or "adhoc"


if __name__ == "__main__":
    main()
