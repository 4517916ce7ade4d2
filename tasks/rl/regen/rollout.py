"""Roll a behaviour policy out into D4RL-format transitions, following D4RL's collection rules.

D4RL rules (Fu et al. 2020, gym-mujoco v2 data): episodes of at most 1000 steps; `terminals[i]` is True when the
environment terminated at transition i (the agent fell), `timeouts[i]` when it hit the 1000-step limit instead;
trajectories are stored whole and contiguous, one after another; the file holds exactly `n_transitions`, so its last
trajectory is cut short with neither flag set (readers drop that unfinished tail). `infos/qpos`, `infos/qvel` hold
the simulator state before each step.

E environments run side by side (one batched policy call per step); each finished episode is appended whole,
in the order episodes finish. Episode k is reset with seed `seed + k`, so a run is reproducible.
"""
from pathlib import Path

import numpy as np
import torch

from ..d4rl_format import KEYS, dtype_of
from ..envs import make_env, simulator_state


class _Episode:
    def __init__(self):
        self.columns = {key: [] for key in KEYS}

    def add(self, **row):
        for key, value in row.items():
            self.columns[key].append(value)

    def __len__(self):
        return len(self.columns["rewards"])


def rollout(policy, *, env_name: str, n_transitions: int, seed: int, n_envs: int = 10, deterministic: bool = False,
            progress=None) -> tuple[dict, list[float]]:
    """Collect `n_transitions` D4RL-format transitions; returns (arrays, returns of the complete episodes).

    arrays: observations / next_observations (n, obs_dim) float32, actions (n, act_dim) float32, rewards (n,)
    float32, terminals / timeouts (n,) bool, infos/qpos (n, nq), infos/qvel (n, nv) float64 (simulator state kept
    at full precision for replay checks).
    """
    if n_transitions < 1 or n_envs < 1:
        raise ValueError(f"rollout: n_transitions and n_envs must be positive, got {n_transitions}, {n_envs}")
    torch.manual_seed(seed)  # the policy's action sampling
    envs = [make_env(env_name) for _ in range(n_envs)]
    next_episode_seed = seed
    obs, steps, episodes = [], np.zeros(n_envs, dtype=np.int64), []
    for env in envs:
        obs.append(env.reset(seed=next_episode_seed)[0])
        next_episode_seed += 1
        episodes.append(_Episode())
    finished: list[_Episode] = []
    n_finished, returns = 0, []
    while n_finished < n_transitions:
        actions = policy.act(np.stack(obs).astype(np.float32), steps, deterministic=deterministic)
        for i, env in enumerate(envs):
            qpos, qvel = simulator_state(env)
            next_obs, reward, terminated, truncated, _ = env.step(actions[i])
            episodes[i].add(**{"observations": obs[i], "next_observations": next_obs, "actions": actions[i],
                               "rewards": reward, "terminals": terminated, "timeouts": truncated and not terminated,
                               "infos/qpos": qpos, "infos/qvel": qvel})
            steps[i] += 1
            obs[i] = next_obs
            if terminated or truncated:
                finished.append(episodes[i])
                n_finished += len(episodes[i])
                returns.append(float(np.sum(episodes[i].columns["rewards"])))
                if progress is not None:
                    progress(n_finished, returns)
                obs[i] = env.reset(seed=next_episode_seed)[0]
                next_episode_seed += 1
                steps[i] = 0
                episodes[i] = _Episode()
                if n_finished >= n_transitions:
                    break
    for env in envs:
        env.close()
    arrays = {}
    for key in KEYS:
        arrays[key] = np.concatenate([np.asarray(ep.columns[key], dtype=dtype_of(key))
                                      for ep in finished])[:n_transitions]
    if n_finished > n_transitions:  # the last trajectory is cut: it did not end here, so no flag (as in D4RL)
        arrays["terminals"][-1] = arrays["timeouts"][-1] = False
        returns.pop()
    return arrays, returns


def write_random_dataset(path, *, env_name: str, n_transitions: int, seed: int = 0) -> Path:
    """A small D4RL-format file from uniform random actions (D4RL's "random" recipe): smoke data for tests."""
    from ..d4rl_format import write_d4rl_hdf5
    from ..envs import env_spec
    from .policies import UniformPolicy

    policy = UniformPolicy(env_spec(env_name).act_dim, seed=seed)
    arrays, _ = rollout(policy, env_name=env_name, n_transitions=n_transitions, seed=seed, n_envs=2)
    return write_d4rl_hdf5(path, arrays, {"behaviour_policy": "uniform random (smoke data)"})
