"""Where a number came from: git commit, package versions, machine. Recorded with every run."""
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

RESULTS_DIR = "results"
PACKAGES = ("torch", "lightning", "hydra-core", "omegaconf", "numpy", "wandb", "aaren")


def git_state(repo: Path) -> dict:
    """{sha, dirty}; both None outside a git checkout (e.g. an installed copy)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"sha": None, "dirty": None}
        # dirty: any change to tracked files or any new file, except the results store itself
        status = git("status", "--porcelain", "--", ".", f":(exclude){RESULTS_DIR}")
        return {"sha": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None}


def package_versions(extra: tuple = ()) -> dict:
    """{python, <package>: version or None} for PACKAGES plus `extra` (distribution names)."""
    versions = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpus, "os": platform.platform(),
            "torch_threads": torch.get_num_threads()}
