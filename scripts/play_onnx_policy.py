"""Play episodes of an exported Decision Transformer in MuJoCo with onnxruntime: numpy and the ONNX file only in
the loop (no torch), and report the normalised score.

    python scripts/export.py --run <rl run> --format onnx --out dt.onnx
    python scripts/play_onnx_policy.py --model dt.onnx --run <rl run> --episodes 10

The environment, the target return and the first reset seed default to the run's (its config.yaml:
task.module.env, target_return, eval_seed_test), so the episodes are those of the run's test, and the score
equals evaluate.py's stream mode on the same seeds up to float rounding (tests/test_deploy_rl.py).
The empty state is built from <model>.json (written by scripts/export.py).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.rl.online import play  # noqa: E402

DTYPES = {"float32": np.float32, "int64": np.int64}


def empty_state(signature: dict, n_streams: int) -> list[np.ndarray]:
    """The initial state tensors for n_streams, from describe_step's JSON."""
    state = []
    for entry in signature["inputs"]:
        if "initial" not in entry:
            continue
        shape = list(entry["shape"])
        if entry["stream_dim"] is not None:
            shape[entry["stream_dim"]] = n_streams
        state.append(np.full(shape, float(entry["initial"]), dtype=DTYPES[entry["dtype"]]))
    return state


class OnnxPolicy:
    """policy(return_to_go (E, 1), obs (E, S)) → action (E, A), carrying the exported step's state."""

    def __init__(self, model: Path, n_streams: int):
        signature = json.loads(Path(f"{model}.json").read_text())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.names = [entry["name"] for entry in signature["inputs"]]
        self.state = empty_state(signature, n_streams)

    def __call__(self, return_to_go: np.ndarray, obs: np.ndarray) -> np.ndarray:
        action, *self.state = self.session.run(None, dict(zip(self.names, [return_to_go, obs, *self.state])))
        return action


def run_settings(run: Path) -> dict:
    if not (run / "config.yaml").is_file():
        raise SystemExit(f"--run {run}: not a run folder (no config.yaml)")
    module = OmegaConf.load(run / "config.yaml").task.module
    return {"env": module.env, "target_return": float(module.target_return), "seed": int(module.eval_seed_test)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the exported .onnx (scripts/export.py)")
    parser.add_argument("--run", type=Path, help="the run folder: env, target return and seed default to its")
    parser.add_argument("--env", help="e.g. hopper-medium's env (overrides the run's)")
    parser.add_argument("--target-return", type=float)
    parser.add_argument("--seed", type=int, help="episode i is reset with seed + i")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=1000)
    args = parser.parse_args(argv)
    settings = run_settings(args.run) if args.run else {}
    for key, value in (("env", args.env), ("target_return", args.target_return), ("seed", args.seed)):
        if value is not None:
            settings[key] = value
    missing = [key for key in ("env", "target_return", "seed") if key not in settings]
    if missing:
        raise SystemExit(f"play_onnx_policy: give --run or {', '.join('--' + k.replace('_', '-') for k in missing)}")
    result = play(OnnxPolicy(args.model, args.episodes), env_name=settings["env"], n_episodes=args.episodes,
                  seed=settings["seed"], target_return=settings["target_return"], max_steps=args.max_steps)
    print(json.dumps({**settings, "episodes": args.episodes, "normalized_score": result["normalized_score"],
                      "return_mean": result["return_mean"], "returns": result["returns"],
                      "lengths": result["lengths"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
