"""The D4RL schema (keys, dtypes, where trajectories end), and writing and checking D4RL-format HDF5 files (the
regenerated datasets, tasks/rl/regen/); reading lives in the data layer, splitting into trajectories in data.py.

A D4RL gym-mujoco v2 file holds flat, aligned arrays (KEYS: `observations`, `next_observations`, `actions`,
`rewards`, `terminals`, `timeouts`, `infos/qpos`, `infos/qvel`). Files written here carry root attributes saying
they are regenerated (`provenance = "regenerated, not D4RL"`) and how (behaviour policy, seeds, package versions).
"""
import json
import os
from pathlib import Path

import h5py
import numpy as np

from .envs import EPISODE_STEPS, env_spec, make_env

PROVENANCE = "regenerated, not D4RL"
KEYS = ("observations", "next_observations", "actions", "rewards", "terminals", "timeouts", "infos/qpos",
        "infos/qvel")


def dtype_of(key: str) -> type:
    """D4RL's dtype of a key: flags bool, simulator states (infos/*) float64, everything else float32."""
    return bool if key in ("terminals", "timeouts") else np.float64 if key.startswith("infos/") else np.float32


class D4RLConsistencyError(ValueError):
    """A D4RL-format file (or arrays bound for one) whose contents break the D4RL rules or do not fit the env."""


def write_d4rl_hdf5(path, arrays: dict, attrs: dict) -> Path:
    """Write `arrays` (keys like "infos/qpos" become groups) atomically: a temporary file, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, compression="gzip", compression_opts=1)
        f.attrs["provenance"] = PROVENANCE
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
    os.replace(tmp, path)
    return path


def episode_ends(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Indices of the last transition of every finished trajectory (terminal or timeout)."""
    return np.flatnonzero(terminals | timeouts)


def check_d4rl_arrays(arrays: dict, *, env_name: str, source, sim_checks: int = 0, atol: float = 1e-6,
                      sim_rtol: float = 0.1) -> None:
    """Raise D4RLConsistencyError (naming `source`) unless `arrays` obey D4RL's rules for `env_name`.

    Checks: aligned lengths; observation/action widths of the environment; finite values; trajectories of at most
    1000 steps with `timeouts` exactly at step 1000 and never together with `terminals`; next-observation
    consistency (next_observations[i] == observations[i+1] inside a trajectory). With `sim_checks` > 0 (and
    infos/qpos, infos/qvel present), that many transitions are replayed in the simulator from their stored state:
    the step must reproduce the stored next observation and reward to `sim_rtol` × max(1, |next obs|) — loose,
    because MuJoCo's contact solver warm-starts from history the file does not store (Ant differs by ~1e-2), yet
    a misaligned action or state (off by one step) misses by O(1).
    """
    spec = env_spec(env_name)
    obs, next_obs, actions = arrays["observations"], arrays["next_observations"], arrays["actions"]
    rewards, terminals, timeouts = arrays["rewards"], arrays["terminals"], arrays["timeouts"]
    n = len(rewards)

    def fail(problem):
        raise D4RLConsistencyError(f"{source}: {problem}")

    for key in ("observations", "next_observations", "actions", "terminals", "timeouts", "infos/qpos", "infos/qvel"):
        if key in arrays and len(arrays[key]) != n:
            fail(f"'{key}' has {len(arrays[key])} rows but 'rewards' has {n}")
    if obs.ndim != 2 or obs.shape[1] != spec.obs_dim or next_obs.shape != obs.shape:
        fail(f"observations of shape {obs.shape} / next_observations {next_obs.shape} do not fit {spec.gym_id} "
             f"(expected (N, {spec.obs_dim}))")
    if actions.ndim != 2 or actions.shape[1] != spec.act_dim:
        fail(f"actions of shape {actions.shape} do not fit {spec.gym_id} (expected (N, {spec.act_dim}))")
    for key in ("observations", "next_observations", "actions", "rewards"):
        if not np.isfinite(arrays[key]).all():
            fail(f"'{key}' holds NaN or inf")
    if np.any(terminals & timeouts):
        fail("a transition is flagged both terminal and timeout")
    ends = episode_ends(terminals, timeouts)
    starts = np.concatenate([[0], ends + 1])
    lengths = np.diff(np.concatenate([starts, [n]]))  # the last one is the unfinished tail (may be 0)
    if lengths.max(initial=0) > EPISODE_STEPS:
        fail(f"a trajectory has {lengths.max()} steps, more than the {EPISODE_STEPS}-step limit")
    if np.any(lengths[:-1][timeouts[ends]] != EPISODE_STEPS):
        fail(f"a timeout flag falls before step {EPISODE_STEPS}")
    inside = np.ones(n, dtype=bool)
    inside[ends] = False
    inside[-1] = False  # the last row has no successor in the file
    gap = np.abs(next_obs[inside] - obs[1:][inside[:-1]]).max(initial=0.0)
    if gap > atol:
        fail(f"next-observation consistency broken inside a trajectory (max |next_obs[i] - obs[i+1]| = {gap:.3g})")
    if sim_checks and "infos/qpos" in arrays:
        _replay_in_simulator(arrays, env_name=env_name, n_checks=sim_checks, rtol=sim_rtol, fail=fail)


def _replay_in_simulator(arrays, *, env_name, n_checks, rtol, fail):
    env = make_env(env_name)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(arrays["rewards"]), size=min(n_checks, len(arrays["rewards"])), replace=False):
        env.unwrapped.set_state(arrays["infos/qpos"][i].astype(np.float64), arrays["infos/qvel"][i].astype(np.float64))
        next_obs, reward, *_ = env.step(arrays["actions"][i])
        err = max(np.abs(next_obs - arrays["next_observations"][i]).max(), abs(reward - arrays["rewards"][i]))
        if err > rtol * max(1.0, np.abs(next_obs).max()):
            fail(f"transition {i} does not replay in {env_spec(env_name).gym_id}: stepping from its stored "
                 f"qpos/qvel gives a next observation/reward off by {err:.3g}")
    env.close()


def dataset_statistics(arrays: dict, *, env_name: str) -> dict:
    """Size, trajectory count and lengths, and the returns of finished trajectories (raw and normalised)."""
    from .envs import normalized_score
    ends = episode_ends(arrays["terminals"], arrays["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    returns = np.array([arrays["rewards"][s:e + 1].sum(dtype=np.float64) for s, e in zip(starts, ends)])
    lengths = ends - starts + 1
    norm = normalized_score(env_name, returns)
    return {
        "provenance": PROVENANCE,
        "n_transitions": int(len(arrays["rewards"])),
        "n_trajectories": int(len(ends)),
        "n_terminals": int(arrays["terminals"].sum()),
        "n_timeouts": int(arrays["timeouts"].sum()),
        "unfinished_tail_steps": int(len(arrays["rewards"]) - (ends[-1] + 1 if len(ends) else 0)),
        "trajectory_length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "return_mean": float(returns.mean()) if len(returns) else float("nan"),
        "return_std": float(returns.std()) if len(returns) else float("nan"),
        "return_min": float(returns.min()) if len(returns) else float("nan"),
        "return_max": float(returns.max()) if len(returns) else float("nan"),
        "normalized_return_mean": float(norm.mean()) if len(norm) else float("nan"),
    }
