"""Train SAC from scratch until it reaches D4RL's "medium" level — resumably — recording everything it saw.

D4RL's recipe (Fu et al. 2020, §5): "medium" = a policy trained online with SAC and stopped early, at about a
third of expert performance; "medium-replay" = every transition in that agent's replay buffer up to the stop.
Here: stable-baselines3 SAC with its defaults, one environment, `learning_starts` random steps. Every
`eval_every` steps: `eval_episodes` deterministic episodes (reset seeds 10000, 10001, ...) on a separate env, the
actor's `state_dict` saved as `actor_<k>k.pt`, a row appended to `curve.json`, and a resumable checkpoint
(`checkpoint.zip`, the SB3 model without replay). Training stops at the first evaluation whose D4RL-normalised
score, rounded to one decimal as logged, reaches `target_normalized`, or at `max_steps` (then `state.json` says
the target was not reached).

Transitions are recorded through an env wrapper, in `seen_<k>.npz` chunks of finished episodes; the episode in
progress at the stop becomes `tail.npz` (the unfinished tail of the medium-replay file). A restarted run refills
SAC's replay buffer from the chunks; the episode cut by the restart is dropped (counted in `state.json`).
"""
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from tasks.fileio import write_json_atomic

from ..d4rl_format import KEYS, dtype_of, episode_ends
from ..envs import make_env, normalized_score, simulator_state

EVAL_SEED = 10000


class RecordTransitions(gym.Wrapper):
    """Puts the whole transition (pre-step observation and simulator state included) into `info`."""

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        qpos, qvel = simulator_state(self.env)
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["transition"] = {"observations": self._obs, "next_observations": obs, "actions": np.asarray(action),
                              "rewards": reward, "terminals": terminated, "timeouts": truncated and not terminated,
                              "infos/qpos": qpos, "infos/qvel": qvel}
        self._obs = obs
        return obs, reward, terminated, truncated, info


def _stack(rows: list[dict]) -> dict:
    out = {}
    for key in KEYS:
        out[key] = np.asarray([row[key] for row in rows], dtype=dtype_of(key))
    return out


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k.replace("/", "__"): v for k, v in arrays.items()})
    os.replace(tmp, path)


def load_npz(path: Path) -> dict:
    with np.load(path) as z:
        return {k.replace("__", "/"): z[k] for k in z.files}


def evaluate_deterministic(predict, env_name: str, n_episodes: int) -> list[float]:
    env = make_env(env_name)
    returns = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(predict(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return returns


class MediumRun:
    """The state of one SAC-to-medium run in `workdir` (see the module docstring for the files)."""

    def __init__(self, workdir, *, env_name: str):
        self.dir, self.env_name = Path(workdir), env_name
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def state(self) -> dict:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"num_timesteps": 0, "stopped": False,
                                                                   "reached": False, "dropped_steps": 0}

    def write_state(self, state: dict) -> None:
        write_json_atomic(self.dir / "state.json", state)

    @property
    def curve(self) -> list:
        path = self.dir / "curve.json"
        return json.loads(path.read_text()) if path.exists() else []

    def chunks(self) -> list[Path]:
        return sorted(self.dir.glob("seen_*.npz"))

    def replay_arrays(self) -> dict:
        """Every recorded transition: the finished-episode chunks, then the unfinished tail (if stopped)."""
        parts = [load_npz(p) for p in self.chunks()]
        if (self.dir / "tail.npz").exists():
            parts.append(load_npz(self.dir / "tail.npz"))
        return {key: np.concatenate([p[key] for p in parts]) for key in KEYS}

    def medium_actor(self) -> Path:
        state = self.state
        if not state["stopped"]:
            raise RuntimeError(f"{self.dir}: the SAC run has not stopped yet (train it first)")
        return self.dir / state["medium_actor"]


def train_to_medium(run: MediumRun, *, target_normalized: float, max_steps: int, eval_every: int,
                    eval_episodes: int, learning_starts: int, seed: int, max_minutes: float | None = None,
                    log=print) -> dict:
    """Train (or resume) until the target level, `max_steps`, or `max_minutes` of wall time; returns the state."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from .policies import new_sac

    state = run.state
    if state["stopped"]:
        return state
    env = RecordTransitions(make_env(run.env_name))
    if (run.dir / "checkpoint.zip").exists():
        model = SAC.load(run.dir / "checkpoint.zip", env=env, device="cpu")
        (run.dir / "tail.npz").unlink(missing_ok=True)  # a tail left by an import is now a cut episode
        state["dropped_steps"] = model.num_timesteps - _refill(model, run)
        log(f"[{run.env_name}] resumed at {model.num_timesteps} steps, {model.replay_buffer.size()} in replay")
    else:
        model = new_sac(run.env_name, seed=seed, learning_starts=learning_starts, env=env)
    started, base_wall = time.time(), state.get("wall_s", 0.0)
    rows: list[dict] = []

    def checkpoint(stopped: bool, reached: bool):
        k = model.num_timesteps
        last_end = max((i for i, r in enumerate(rows) if r["terminals"] or r["timeouts"]), default=-1)
        if last_end >= 0:
            _save_npz(run.dir / f"seen_{k:08d}.npz", _stack(rows[:last_end + 1]))
        del rows[:last_end + 1]
        if stopped and rows:
            _save_npz(run.dir / "tail.npz", _stack(rows))
        model.save(run.dir / "checkpoint.zip")
        state.update(num_timesteps=k, stopped=stopped, reached=reached,
                     wall_s=round(base_wall + time.time() - started, 1))
        if stopped:
            state.update(medium_actor=f"actor_{k // 1000:04d}k.pt", target_normalized=target_normalized)
        run.write_state(state)

    class Recorder(BaseCallback):
        def _on_step(self) -> bool:
            rows.append(self.locals["infos"][0]["transition"])
            k = self.num_timesteps
            if k % eval_every:
                return True
            returns = evaluate_deterministic(lambda o: model.predict(o, deterministic=True)[0], run.env_name,
                                             eval_episodes)
            norm = float(normalized_score(run.env_name, np.mean(returns)))
            torch.save(model.actor.state_dict(), run.dir / f"actor_{k // 1000:04d}k.pt")
            curve = run.curve + [{"step": k, "elapsed_s": round(base_wall + time.time() - started, 1),
                                  "eval_mean": float(np.mean(returns)), "eval_norm": norm, "eval_returns": returns}]
            write_json_atomic(run.dir / "curve.json", curve)
            reached, capped = round(norm, 1) >= target_normalized, k >= max_steps
            out_of_time = max_minutes is not None and time.time() - started > 60 * max_minutes
            log(f"[{run.env_name}] step {k}: eval {np.mean(returns):.0f} (normalised {norm:.1f})")
            checkpoint(stopped=reached or capped, reached=reached)
            return not (reached or capped or out_of_time)

    if max_steps % eval_every:
        raise ValueError(f"max_steps ({max_steps}) must be a multiple of eval_every ({eval_every})")
    model.learn(total_timesteps=max_steps - model.num_timesteps, callback=Recorder(), reset_num_timesteps=False)
    return run.state


def _refill(model, run: MediumRun) -> int:
    """Put every recorded finished-episode transition back into SAC's replay buffer (resume); returns how many."""
    count = 0
    for chunk in run.chunks():
        arrays = load_npz(chunk)
        for i in range(len(arrays["rewards"])):
            done = bool(arrays["terminals"][i] or arrays["timeouts"][i])
            model.replay_buffer.add(arrays["observations"][i][None], arrays["next_observations"][i][None],
                                    arrays["actions"][i][None], arrays["rewards"][i:i + 1], np.array([done]),
                                    [{"TimeLimit.truncated": bool(arrays["timeouts"][i])}])
        count += len(arrays["rewards"])
    return count


def import_shared_run(run: MediumRun, shared_dir, *, target_normalized: float) -> dict:
    """Take a SAC run made earlier with this recipe (shared/rl-policies/<env>/sac-*-regen) as this run's output.

    Copies its actors and learning curve, its SB3 model as the checkpoint, and its `replay.npz` as recorded
    transitions. If its curve reaches `target_normalized`, the run is stopped at the first such evaluation (the
    replay cut to the transitions seen until then); otherwise `train_to_medium` continues it from its checkpoint.
    """
    import shutil
    shared_dir = Path(shared_dir)
    if run.state["num_timesteps"] or run.chunks():
        raise RuntimeError(f"{run.dir}: already holds a run; remove it to import {shared_dir}")
    if not (shared_dir / "replay.npz").exists() or not (shared_dir / "curve.json").exists():
        raise FileNotFoundError(f"{shared_dir}: a SAC run to import needs curve.json and replay.npz (its "
                                f"medium-replay data); train from scratch instead")
    curve = json.loads((shared_dir / "curve.json").read_text())
    replay = load_npz(shared_dir / "replay.npz")
    replay = {("infos/" + k if k in ("qpos", "qvel") else k): v for k, v in replay.items()}
    hit = next((row for row in curve if round(row["eval_norm"], 1) >= target_normalized), None)
    if hit is not None:
        curve = [row for row in curve if row["step"] <= hit["step"]]
        replay = {k: v[:hit["step"]] for k, v in replay.items()}
    for row in curve:
        name = f"actor_{row['step'] // 1000:04d}k.pt"
        shutil.copyfile(shared_dir / name, run.dir / name)
    write_json_atomic(run.dir / "curve.json", curve)
    if (shared_dir / "final_model.zip").exists() and hit is None:
        shutil.copyfile(shared_dir / "final_model.zip", run.dir / "checkpoint.zip")
    ends = episode_ends(replay["terminals"], replay["timeouts"])
    cut = ends[-1] + 1 if len(ends) else 0
    arrays = {k: np.asarray(replay[k], dtype=np.float64 if k.startswith("infos/") else replay[k].dtype)
              for k in KEYS}
    _save_npz(run.dir / f"seen_{curve[-1]['step']:08d}.npz", {k: v[:cut] for k, v in arrays.items()})
    if cut < len(arrays["rewards"]):
        _save_npz(run.dir / "tail.npz", {k: v[cut:] for k, v in arrays.items()})
    state = {"num_timesteps": curve[-1]["step"], "stopped": hit is not None, "reached": hit is not None,
             "dropped_steps": 0, "wall_s": curve[-1]["elapsed_s"], "source": f"imported from {shared_dir}"}
    if hit is not None:
        state.update(medium_actor=f"actor_{hit['step'] // 1000:04d}k.pt", target_normalized=target_normalized)
    run.write_state(state)
    return state
