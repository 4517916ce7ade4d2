"""The README's two fresh-machine commands are the contract CI runs: install + main job, and the test command."""
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _fresh_machine_commands() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Fresh machine: two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_readme_has_two_commands_and_ci_runs_them():
    install_and_run, run_tests = _fresh_machine_commands()
    steps = [s.strip() for s in install_and_run.split("&&")]
    assert steps[-1] == "python train.py task=forecasting model=aaren"      # the main job, on its embedded default
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    install = next(s for s in steps if s.startswith("pip install"))
    assert any(line.replace(" -q", "") == install for line in ci), "CI must install exactly as the README says"
    test_command = run_tests.split("&&")[-1].strip()
    assert ci[-1] == test_command == "python -m pytest"
    assert "set -euo pipefail" in ci                                          # any failing step fails CI


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_main_command_on_a_fresh_clone_prints_the_recorded_test_metrics(tmp_path):
    """`python train.py task=forecasting model=aaren` in a fresh clone (of the committed HEAD): its config values
    are a committed run of experiment cpu/forecasting_horizons, so it prints that run's MSE/MAE, where and when
    they were recorded and how to rerun, trains nothing and leaves the clone unchanged (as README.md says)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AAREN_", "PYTHONPATH"))}
    out = subprocess.run([sys.executable, "train.py", "task=forecasting", "model=aaren"], cwd=clone,
                         env={**env, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}, capture_output=True,
                         text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert re.search(r"\[cpu/forecasting_horizons\] test mae \d\.\d+  mse \d\.\d+", text), text[-3000:]
    assert "recorded by experiment cpu/forecasting_horizons" in text and "force=true reruns it" in text
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True)
    assert status.stdout == "" and not (clone / "outputs" / "runs").exists()


def test_the_library_distribution_holds_aaren_alone(tmp_path):
    """`pip install .` is the library alone (README "Layout"): a wheel built from the project has `aaren` only;
    tasks/ (and the test fixtures) stay in the checkout."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("aaren", "tasks", "tests"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("aaren-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"aaren"}
