"""Export the trained model of a finished run as one streaming step (ONNX or TorchScript), and check it.

    python scripts/export.py --run <run folder | record .json> --format onnx --out model.onnx [--check]

The run folder (<output_root>/runs/<task>/<dataset>/<run_id>, or the one a record names through its task,
dataset and run_id) holds the resolved config.yaml and fit_done.json, which names the best checkpoint; its
weights are loaded with torch.load(weights_only=True) (no code is unpickled). The task's `online.py` turns the
module into an `aaren.export.OnlineStep` (`export_step`) and names its test stream (`test_streams`: the first
test windows / sequences / an episode, through the task's torch online predictor). --check replays that stream
through the exported file (onnxruntime or torch.jit) and prints the largest absolute difference; the exit code
is 1 when it exceeds --tolerance (1e-4). Beside the file, <out>.json describes its inputs (shapes, dtypes, the
initial state's values) and outputs for runtimes without torch (aaren.export.describe_step).
"""
import argparse
import importlib
import json
import os
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aaren.export import (OnnxStep, describe_step, export_step_onnx, export_step_torchscript,  # noqa: E402
                          max_abs_difference, replay)
from tasks import fileio  # noqa: E402
from tasks.harness import resume, store  # noqa: E402

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
TARGET_PREFIX = "tasks."


def run_folder(path: Path, output_root: Path | None) -> Path:
    """A run folder, or the run folder of a record (under output_root, default $AAREN_OUTPUT_ROOT or outputs/)."""
    if path.is_dir():
        return path
    if path.suffix != ".json" or not path.is_file():
        raise SystemExit(f"--run {path}: neither a run folder nor a record .json file")
    record = store.read_record(path)
    root = output_root or Path(os.environ.get("AAREN_OUTPUT_ROOT", REPO / "outputs"))
    folder = Path(root) / "runs" / record["task"] / record["dataset"] / record["run_id"]
    if not folder.is_dir():
        raise SystemExit(f"--run {path}: its run folder {folder} is missing (checkpoints are not committed: "
                         "train the run here, or pass --output-root where its outputs are)")
    return folder


def check_target(node, where: str) -> None:
    """A run's config may only build the project's own classes (`_target_` under tasks.): loading it runs no
    other code."""
    if OmegaConf.is_dict(node):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(TARGET_PREFIX):
            raise SystemExit(f"{where}: _target_ {target!r} is not under {TARGET_PREFIX!r}; refusing to build it")
        for key, value in node.items():
            check_target(value, f"{where}.{key}")
    elif OmegaConf.is_list(node):
        for i, value in enumerate(node):
            check_target(value, f"{where}[{i}]")


def load_run(folder: Path):
    """→ (resolved config, task module with the best checkpoint's weights, eval mode; its datamodule)."""
    config_path = folder / "config.yaml"
    if not config_path.is_file():
        raise SystemExit(f"{folder}: no config.yaml, not a run folder")
    cfg = OmegaConf.load(config_path)
    for key in ("task.module", "task.datamodule"):  # refuse foreign code before reading anything else
        check_target(OmegaConf.select(cfg, key), f"{config_path}: {key}")
    fit = resume.read_fit_done(folder, move_aside=False)  # exporting never changes the run folder
    if fit is None:
        raise SystemExit(f"{folder}: {resume.FIT_DONE} is missing, unreadable or names a checkpoint that cannot "
                         "be loaded: training has not finished")
    module = hydra.utils.instantiate(cfg.task.module, _convert_="all")
    checkpoint = torch.load(fit["best_checkpoint"], map_location="cpu", weights_only=True)
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    datamodule = hydra.utils.instantiate(cfg.task.datamodule, _convert_="all")
    return cfg, module.eval(), datamodule


def online_module(task: str):
    """The task's online.py (export_step, test_streams)."""
    try:
        return importlib.import_module(f"tasks.{task}.online")
    except ModuleNotFoundError as error:
        raise SystemExit(f"task {task!r} has no tasks/{task}/online.py to export ({error})") from error


def load_exported(path: Path, fmt: str):
    return OnnxStep(path) if fmt == "onnx" else torch.jit.load(str(path))


def check(exported, step, streams) -> float:
    """The largest |exported − torch online predictor| over every step of every test stream."""
    worst = 0.0
    for observations, reference in streams:
        batch = observations[0][0].shape[0]
        predictions, _ = replay(exported, observations, step.initial_state(batch))
        worst = max(worst, max_abs_difference(predictions, reference))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder or its record (.json)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", type=Path, required=True, help="the file to write (.onnx / .pt)")
    parser.add_argument("--check", action="store_true", help="replay the run's test stream, compare with torch")
    parser.add_argument("--output-root", type=Path, help="where a record's run folders live (default outputs/)")
    parser.add_argument("--streams", type=int, default=2, help="--check: test windows/sequences/episodes")
    parser.add_argument("--steps", type=int, default=200, help="--check: at most this many steps per stream")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = run_folder(args.run, args.output_root)
    cfg, module, datamodule = load_run(folder)
    online = online_module(cfg.task.name)
    step = online.export_step(module, datamodule)
    export = export_step_onnx if args.format == "onnx" else export_step_torchscript
    path = export(step, args.out)
    signature = path.with_name(path.name + ".json")  # the calling convention, for runtimes without torch
    extra = getattr(online, "deploy_info", None)  # optional: what a runtime needs to prepare the raw data
    fileio.write_json_atomic(signature, {"task": cfg.task.name, "run": str(folder), **describe_step(step),
                                        **({"data": extra(module, datamodule)} if extra else {})})
    summary = {"run": str(folder), "task": cfg.task.name, "format": args.format, "out": str(path),
               "bytes": path.stat().st_size, "signature": str(signature), "inputs": list(step.input_names), "outputs": list(step.output_names)}
    if args.check:
        streams = online.test_streams(module, datamodule, n_streams=args.streams, max_steps=args.steps)
        worst = check(load_exported(path, args.format), step, streams)
        summary.update(max_abs_difference=worst, steps=sum(len(obs) for obs, _ in streams),
                       tolerance=args.tolerance, passed=worst <= args.tolerance)
    print(json.dumps(summary, indent=2))
    return 0 if summary.get("passed", True) else 1


if __name__ == "__main__":
    sys.exit(main())
