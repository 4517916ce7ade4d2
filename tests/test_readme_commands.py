"""The README's two fresh-machine commands are the contract CI runs: install + main job, and the test command."""
import re
from pathlib import Path

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
