"""Files a kill or a full disk leaves behind never block a run: corrupt checkpoints and fit markers are moved aside
(the warning names the file) and the run resumes from the newest checkpoint that loads, ending with one record;
checkpoint writes are atomic; stale record temporaries are cleaned; bad lengths and batch sizes are ConfigErrors."""
import logging
import os
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks import fileio  # noqa: E402
from tasks.harness import resume, store  # noqa: E402
from tasks.harness.checks import check_run_config  # noqa: E402
from tasks.errors import ConfigError  # noqa: E402
from tests.harness_toy.helpers import compose_config, records, run_in_process  # noqa: E402

TOY = ["task=toy", "task.trainer.max_epochs=2", "task.patience=null"]


def _run_dir(tmp_path: Path) -> Path:
    [folder] = (tmp_path / "outputs" / "runs" / "toy" / "toy_sine").iterdir()
    return folder


def _interrupted_run(tmp_path: Path) -> tuple[dict, Path]:
    """A finished run with its record and fit marker removed: a relaunch has to resume from its checkpoints."""
    first = run_in_process(tmp_path, TOY)
    for path in records(tmp_path):
        path.unlink()
    run_dir = _run_dir(tmp_path)
    (run_dir / resume.FIT_DONE).unlink()
    return first, run_dir


def test_last_checkpoint_is_the_latest_validation_even_without_improvement(tmp_path):
    """A kill resumes from the latest validation, not from the last improvement of the monitor (Lightning's
    save_last on a monitored callback writes last.ckpt only when it improves)."""
    # val/loss falls epoch after epoch, so under monitor_mode=max epoch 0 is the only improvement
    run_in_process(tmp_path, [*TOY, "task.trainer.max_epochs=3", "task.monitor_mode=max"])
    run_dir = _run_dir(tmp_path)
    best = run_dir / "checkpoints" / "best-epoch=0.ckpt"
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt")) == [best.name, "last.ckpt"]
    last = torch.load(run_dir / resume.LAST_CHECKPOINT, map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == torch.load(best, weights_only=True)["global_step"] * 3
    assert resume._best_path(last) == str(best)   # the monitored callback's best, not last.ckpt itself
    assert resume.loadable_checkpoint(run_dir) == run_dir / resume.LAST_CHECKPOINT


def test_the_record_names_the_code_each_process_ran(tmp_path, monkeypatch):
    """`git`: the code the recording process started with (read once, at its start, not when the record is
    written); `git_training`: that of every process that trained the run, kept across a resume in checkpoints."""
    from tasks.harness import runner
    code_a, code_b = {"sha": "a" * 40, "dirty": False}, {"sha": "b" * 40, "dirty": True}
    states = iter([code_a, code_b])
    monkeypatch.setattr(runner, "git_state", lambda repo: next(states))
    first, run_dir = _interrupted_run(tmp_path)
    assert first["git"] == code_a and first["git_training"] == [code_a]
    again = run_in_process(tmp_path, TOY)   # resumed from last.ckpt under other code
    assert again["resumed"] and again["git"] == code_b and again["git_training"] == [code_a, code_b]


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated"])
def test_corrupt_last_checkpoint_is_moved_aside_and_the_run_ends_with_one_record(tmp_path, caplog, damage):
    first, run_dir = _interrupted_run(tmp_path)
    last = run_dir / resume.LAST_CHECKPOINT
    last.write_bytes(damage)  # a kill during the write (0 bytes) or a full disk (a torn zip)
    with caplog.at_level(logging.WARNING, logger="aaren.harness"):
        again = run_in_process(tmp_path, TOY)
    assert f"checkpoint {last} cannot be loaded" in caplog.text
    assert list((run_dir / resume.CORRUPT).glob("last.ckpt.*"))
    assert again["metrics"] == first["metrics"] and len(records(tmp_path)) == 1


def test_corrupt_fit_marker_is_moved_aside(tmp_path, caplog):
    first, run_dir = _interrupted_run(tmp_path)
    (run_dir / resume.FIT_DONE).write_text("{")
    with caplog.at_level(logging.WARNING, logger="aaren.harness"):
        again = run_in_process(tmp_path, TOY)
    assert f"fit marker {run_dir / resume.FIT_DONE} is unreadable" in caplog.text
    assert again["metrics"] == first["metrics"] and len(records(tmp_path)) == 1


def test_corrupt_best_checkpoint_trains_again_from_scratch(tmp_path, caplog):
    first = run_in_process(tmp_path, TOY)
    for path in records(tmp_path):
        path.unlink()
    run_dir = _run_dir(tmp_path)
    [best] = (run_dir / "checkpoints").glob("best-*.ckpt")
    best.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="aaren.harness"):
        again = run_in_process(tmp_path, TOY)
    assert f"names best checkpoint {best}, which cannot be loaded" in caplog.text
    assert again["metrics"] == first["metrics"] and len(records(tmp_path)) == 1


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    io = resume.AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    def killed(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(resume.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_the_harness_writes_its_checkpoints_atomically(tmp_path, monkeypatch):
    saved = []
    original = resume.AtomicCheckpointIO.save_checkpoint
    monkeypatch.setattr(resume.AtomicCheckpointIO, "save_checkpoint",
                        lambda self, checkpoint, path, storage_options=None: saved.append(Path(path).name)
                        or original(self, checkpoint, path, storage_options))
    run_in_process(tmp_path, TOY)
    assert "last.ckpt" in saved and any(name.startswith("best-") for name in saved)


def test_stale_temporary_records_are_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "records" / "toy" / "toy_sine"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".aaren_s0_x.json.ab12cd.tmp", folder / ".aaren_s1_x.json.ef34gh.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    old = time.time() - fileio.STALE_TMP_S - 60
    os.utime(stale, (old, old))
    fileio.write_json_atomic(folder / "aaren_s2_x.json", {"ok": 1})
    assert not stale.exists() and fresh.exists()  # a young one may be a live writer's


def test_temporary_files_are_git_ignored():
    assert ".*.tmp" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("override,key", [
    ("task.trainer.max_epochs=0", "task.trainer.max_epochs"),
    ("task.trainer.max_epochs=-2", "task.trainer.max_epochs"),
    ("+task.trainer.max_steps=0", "task.trainer.max_steps"),
    ("task.datamodule.batch_size=0", "task.datamodule.batch_size"),
    ("task.datamodule.batch_size=-4", "task.datamodule.batch_size"), ("threads=0", "threads"),
])
def test_zero_lengths_and_batch_sizes_are_config_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        check_run_config(compose_config(["task=toy", override]))


def test_eval_batch_size_is_checked_where_a_task_has_one():
    with pytest.raises(ConfigError, match="'task.datamodule.eval_batch_size'"):
        check_run_config(compose_config(["task=tpp", "task.datamodule.eval_batch_size=0"]))
