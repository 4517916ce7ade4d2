"""Per-step latency of each task's exported online predictor: onnxruntime against eager torch, batch 1, one thread.

    python scripts/bench_export.py [--rounds 7] [--steps 200] [--out results/efficiency/exported_tasks.json]

Each task's model is its default config (conf/task/<task>.yaml, the sizes the README's runs use), built with
seed 0: latency does not depend on the weights. Its `OnlineStep` (tasks/<task>/online.py) is exported to ONNX;
then, in this one process, rounds alternate between the two runtimes, each streaming `--steps` observations with
its state fed back (classification's flatten head restarts every max_length steps); the reported latency is the median over rounds of the mean time per step (the machine is
shared, so the two are measured interleaved, never one after the other). Writes the JSON atomically.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import hydra
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aaren.export import OnnxStep, export_step_onnx  # noqa: E402
from benchmarks.common import clock  # noqa: E402
from tasks.fileio import write_json_atomic  # noqa: E402
from tasks.provenance import machine  # noqa: E402
from tests.harness_toy.helpers import compose_config  # noqa: E402

TASKS = ("forecasting", "classification", "tpp", "rl")


def build_step(task: str):
    """The task's default-size model (random weights) as its exportable step."""
    cfg = compose_config([f"task={task}"])
    torch.manual_seed(0)
    module = hydra.utils.instantiate(cfg.task.module, _convert_="all").eval()
    if task == "forecasting":
        from tasks.forecasting.online import ForecastStep
        return ForecastStep(module=module), cfg
    if task == "classification":
        from tasks.classification.online import ClassifyStep
        return ClassifyStep(module=module), cfg
    if task == "tpp":
        from tasks.tpp.online import NextEventStep
        return NextEventStep(module=module, time_scale=1.0), cfg
    from tasks.rl.online import PolicyStep
    return PolicyStep(module=module), cfg


def stream_seconds(call, observation, empty, steps: int, max_steps: int | None) -> float:
    """Mean seconds per step of `steps` calls, the state fed back (a new stream every max_steps steps)."""
    n_state, state = len(empty), empty
    started = clock("cpu")
    for t in range(steps):
        if max_steps and t % max_steps == 0:
            state = empty
        outputs = call(*observation, *state)
        state = outputs[len(outputs) - n_state:]
    return (clock("cpu") - started) / steps


def measure(task: str, folder: Path, *, rounds: int, steps: int) -> dict:
    step, cfg = build_step(task)
    example = step.example_observation(1)
    observation = tuple(x + 0.1 if x.is_floating_point() else x for x in example)  # any valid values
    onnx = OnnxStep(export_step_onnx(step, folder / f"{task}.onnx"))
    session, names = onnx.session, onnx.input_names
    feeds_obs = [x.numpy() for x in observation]

    def run_onnx(*inputs):  # numpy in, numpy out: onnxruntime's own cost, no torch conversions
        return session.run(None, dict(zip(names, inputs)))

    torch_state, onnx_state = step.initial_state(1), [x.numpy() for x in step.initial_state(1)]
    times = {"torch": [], "onnxruntime": []}
    with torch.inference_mode():
        for _ in range(rounds):
            times["torch"].append(stream_seconds(step, observation, torch_state, steps, step.max_steps))
            times["onnxruntime"].append(stream_seconds(run_onnx, feeds_obs, onnx_state, steps, step.max_steps))
    torch_ms, onnx_ms = (1000 * float(np.median(times[k])) for k in ("torch", "onnxruntime"))
    state_bytes = sum(x.numel() * x.element_size() for x in step.initial_state(1))
    return {"task": task, "dataset": cfg.dataset.name, "backbone": dict(cfg.task.backbone),
            "n_parameters": sum(p.numel() for p in step.parameters()), "state_bytes": state_bytes,
            "torch_eager_ms": torch_ms, "onnxruntime_ms": onnx_ms, "speedup": torch_ms / onnx_ms,
            "onnx_bytes": (folder / f"{task}.onnx").stat().st_size}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "efficiency" / "exported_tasks.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(task, Path(folder), rounds=args.rounds, steps=args.steps) for task in args.tasks]
    write_json_atomic(args.out, {"rounds": args.rounds, "steps_per_round": args.steps, "batch": 1, "threads": 1,
                                 "versions": {"torch": torch.__version__,
                                              "onnxruntime": __import__("onnxruntime").__version__},
                                 "machine": machine(), "rows": rows})
    print("| task | dataset | parameters | state (bytes) | eager torch (ms/step) | onnxruntime (ms/step) | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['dataset']} | {r['n_parameters']:,} | {r['state_bytes']:,} | "
              f"{r['torch_eager_ms']:.3f} | {r['onnxruntime_ms']:.3f} | {r['speedup']:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
