"""scripts/export.py on a smoke-trained run of every task: the exported step (ONNX in onnxruntime, TorchScript)
replays the run's own test stream as the task's torch online predictor does (--check, 1e-4), from the run folder
or its record; a broken export makes --check fail."""
import json
import sys

import pytest
import torch

from tests.deploy_runs import smoke_run
from tests.harness_toy.helpers import REPO, isolated_torch

sys.path.insert(0, str(REPO))
from scripts import export  # noqa: E402

TASKS = ("forecasting", "classification", "tpp", "rl")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy_runs")
    return root, {task: smoke_run(root, task) for task in TASKS}


def _export(capsys, *args) -> tuple[int, dict]:
    with isolated_torch():
        code = export.main([str(a) for a in args])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("task", TASKS)
def test_onnx_export_of_a_trained_run_passes_check(runs, task, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    _, folders = runs
    code, summary = _export(capsys, "--run", folders[task], "--format", "onnx", "--out", tmp_path / "m.onnx",
                            "--check")
    assert code == 0 and summary["passed"] and summary["task"] == task
    assert summary["steps"] > 1 and summary["max_abs_difference"] <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]  # weights inside, no .data
    signature = json.loads((tmp_path / "m.onnx.json").read_text())
    assert [i["name"] for i in signature["inputs"]] == summary["inputs"]
    assert {i["name"]: i["initial"] for i in signature["inputs"] if "initial" in i}["m"] == "-inf"


@pytest.mark.parametrize("task", TASKS)
def test_torchscript_export_of_a_trained_run_passes_check(runs, task, tmp_path, capsys):
    _, folders = runs
    code, summary = _export(capsys, "--run", folders[task], "--format", "torchscript", "--out",
                            tmp_path / "m.pt", "--check")
    assert code == 0 and summary["max_abs_difference"] <= 1e-4
    assert torch.jit.load(str(tmp_path / "m.pt")) is not None


def test_a_record_names_its_run_folder(runs, tmp_path, capsys):
    root, folders = runs
    [record] = (root / "results" / "records").rglob("classification/**/*.json")
    code, summary = _export(capsys, "--run", record, "--output-root", root / "outputs", "--format", "torchscript",
                            "--out", tmp_path / "m.pt")
    assert code == 0 and summary["run"] == str(folders["classification"]) and "passed" not in summary


class _Shifted(torch.nn.Module):
    """A wrong export: the step's first prediction shifted by 1e-3."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def forward(self, *inputs):
        prediction, *rest = self.step(*inputs)
        return (prediction + 1e-3, *rest)


def _export_shifted(step, path):
    with torch.no_grad():
        torch.jit.trace(_Shifted(step).eval(), step.example_inputs(1)).save(str(path))
    return path


def test_check_fails_when_the_export_differs_from_torch(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export, "export_step_torchscript", _export_shifted)
    _, folders = runs
    code, summary = _export(capsys, "--run", folders["forecasting"], "--format", "torchscript", "--out",
                            tmp_path / "m.pt", "--check")
    assert code == 1 and not summary["passed"] and summary["max_abs_difference"] == pytest.approx(1e-3, rel=1e-2)


def test_an_unfinished_run_folder_is_refused_with_a_clear_error(tmp_path):
    (tmp_path / "config.yaml").write_text("task: {name: forecasting}\n")
    with pytest.raises(SystemExit, match="fit_done.json is missing"):
        export.main(["--run", str(tmp_path), "--out", str(tmp_path / "m.onnx")])


def test_a_corrupt_best_checkpoint_is_refused_and_left_in_place(tmp_path):
    (tmp_path / "config.yaml").write_text("task: {name: forecasting}\n")
    (tmp_path / "checkpoints").mkdir()
    best = tmp_path / "checkpoints" / "best.ckpt"
    best.write_bytes(b"")
    (tmp_path / "fit_done.json").write_text(json.dumps({"best_checkpoint": str(best)}))
    with pytest.raises(SystemExit, match="cannot be loaded"):
        export.main(["--run", str(tmp_path), "--out", str(tmp_path / "m.onnx")])
    assert best.is_file() and (tmp_path / "fit_done.json").is_file()  # exporting never moves files aside


def test_a_run_config_that_builds_foreign_code_is_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.ckpt").write_bytes(b"")
    (tmp_path / "fit_done.json").write_text(json.dumps({"best_checkpoint": str(tmp_path / "checkpoints/best.ckpt")}))
    (tmp_path / "config.yaml").write_text("task:\n  name: forecasting\n  module: {_target_: os.system, command: 'true'}"
                                          "\n  datamodule: {_target_: tasks.forecasting.data.ForecastingDataModule}\n")
    with pytest.raises(SystemExit, match="'os.system' is not under 'tasks.'"):
        export.main(["--run", str(tmp_path), "--out", str(tmp_path / "m.onnx")])
