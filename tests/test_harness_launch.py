"""The harness from the command line: kill-and-resume, a partly finished multirun, DDP on CPU, W&B offline."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.harness import store  # noqa: E402
from tests.harness_toy.helpers import records, run_in_process, run_train, subprocess_env, train_command  # noqa: E402

RESUMABLE = ["task=toy", "logger=csv", "task.trainer.max_epochs=6", "task.patience=null"]


def test_a_run_killed_mid_training_resumes_and_ends_with_one_record(tmp_path):
    proc = subprocess.Popen(train_command(*RESUMABLE), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=subprocess_env(tmp_path, HARNESS_TOY_STEP_DELAY_S=0.15))
    deadline = time.monotonic() + 240
    last = None
    while time.monotonic() < deadline and proc.poll() is None:
        last = next((tmp_path / "outputs").rglob("last.ckpt"), None)
        if last is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert records(tmp_path) == [] and last is not None

    resumed = run_in_process(tmp_path, RESUMABLE)  # the relaunch: same config → same run folder → resume
    assert resumed["resumed"] is True and resumed["epochs_trained"] == 6
    assert "resuming from" in (last.parent.parent / "train.log").read_text()
    assert [p.name for p in records(tmp_path)] == [f"{resumed['run_id']}.json"]
    # the RNG states travel in the checkpoint: the resumed run equals an uninterrupted one
    uninterrupted = run_in_process(tmp_path / "uninterrupted", RESUMABLE)
    assert uninterrupted["run_id"] == resumed["run_id"] and uninterrupted["metrics"] == resumed["metrics"]
    # the learning curve travels in the checkpoint too: every round once, as in the uninterrupted run
    assert [p["epoch"] for p in resumed["learning_curve"]] == list(range(6))
    assert resumed["learning_curve"] == uninterrupted["learning_curve"]


@pytest.mark.parametrize("launcher", [
    "basic",  # Hydra's default: the jobs one after the other in this process
    pytest.param("local_parallel", marks=pytest.mark.slow),  # joblib: 2 worker processes, each imports torch
])
def test_multirun_of_four_where_two_finished_runs_only_the_missing_two(tmp_path, launcher):
    tiny = ["task=toy", "task.trainer.max_epochs=1"]
    done = {r["seed"]: r for r in (run_in_process(tmp_path, [*tiny, f"seed={s}"]) for s in (0, 1))}
    before = {p: p.stat().st_mtime_ns for p in records(tmp_path)}
    out = run_train(tmp_path, "-m", *tiny, "logger=none", "seed=0,1,2,3", f"hydra/launcher={launcher}")
    assert out.returncode == 0, out.stderr[-3000:]
    after = {store.read_record(p)["seed"]: p for p in records(tmp_path)}
    assert sorted(after) == [0, 1, 2, 3]
    assert all(p.stat().st_mtime_ns == before[p] for p in before)  # finished runs untouched
    assert (out.stdout + out.stderr).count("is finished") == 2 and (out.stdout + out.stderr).count(" done: ") == 2
    assert store.read_record(after[0]) == done[0]


@pytest.mark.slow  # two fresh processes importing torch + Lightning: ~15–35 s on the shared 2-core box
def test_ddp_on_cpu_with_two_processes_writes_one_record(tmp_path):
    out = run_train(tmp_path, "task=toy", "logger=none", "trainer=ddp", "task.trainer.max_epochs=1")
    assert out.returncode == 0, out.stderr[-3000:]
    [path] = records(tmp_path)
    record = store.read_record(path)
    assert record["world_size"] == 2 and record["config"]["trainer"]["strategy"] == "ddp"
    assert "GLOBAL_RANK: 1" in out.stdout + out.stderr


def test_wandb_offline_writes_its_run_files_and_metrics_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    record = run_in_process(tmp_path, ["task=toy", "task.trainer.max_epochs=1", "logger=wandb"])
    [run] = list((tmp_path / "outputs").rglob(f"offline-run-*-{record['run_id']}"))
    assert (run / f"run-{record['run_id']}.wandb").stat().st_size > 0
    assert list((run / "files" / "media" / "table").glob("test_metrics_*.table.json"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited; only its exit status is left to reap


@pytest.mark.slow  # two loky workers importing torch: ~30 s on the shared 2-core box
def test_killing_a_local_parallel_sweep_stops_its_workers(tmp_path):
    proc = subprocess.Popen(train_command("-m", "task=toy", "logger=none", "task.trainer.max_epochs=50",
                                          "task.patience=null", "seed=0,1", "hydra/launcher=local_parallel"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=subprocess_env(tmp_path, HARNESS_TOY_STEP_DELAY_S=0.2))
    deadline, workers = time.monotonic() + 240, set()
    while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
        for lock in (tmp_path / "outputs").rglob(".lock"):
            text = lock.read_text().strip()
            if text.startswith("pid ") and (tmp_path / "outputs").exists():
                workers.add(int(text.split()[1]))
        time.sleep(0.2)
    assert len(workers) == 2 and proc.poll() is None, "the sweep did not start two runs"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a sweep worker kept running after its parent was killed"
    assert records(tmp_path) == []
