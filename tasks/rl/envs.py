"""The four D4RL gym-mujoco environments as gymnasium v4 environments, and D4RL's normalised score.

D4RL's v2 datasets were recorded in gym `<Env>-v3` (mujoco-py). gymnasium's `<Env>-v4` (mujoco bindings) has the
same observation layout and reward, except Ant: D4RL's 111-dim Ant observation ends in 84 contact-force columns that
mujoco-py 2.x always left at zero (D4RL issue #143). We use `Ant-v4` with its default 27-dim observation (no
contact forces, no contact cost) and pad it with 84 zeros, which reproduces that layout exactly.
"""
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

EPISODE_STEPS = 1000  # D4RL / gym time limit of every gym-mujoco task


@dataclass(frozen=True)
class EnvSpec:
    name: str             # D4RL's env key: halfcheetah | hopper | walker2d | ant
    gym_id: str           # the gymnasium environment we evaluate and roll out in
    obs_dim: int          # D4RL observation width (after padding)
    act_dim: int
    pad_dim: int          # zeros appended to the gymnasium observation to reach obs_dim
    ref_min_score: float  # D4RL reference returns (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE,
    ref_max_score: float  # Farama-Foundation/D4RL 89141a6; the same values as shared/datasets/rl/d4rl_ref_scores.json)


ENVS = {
    "halfcheetah": EnvSpec("halfcheetah", "HalfCheetah-v4", 17, 6, 0, -280.178953, 12135.0),
    "hopper": EnvSpec("hopper", "Hopper-v4", 11, 3, 0, -20.272305, 3234.3),
    "walker2d": EnvSpec("walker2d", "Walker2d-v4", 17, 6, 0, 1.629008, 4592.3),
    "ant": EnvSpec("ant", "Ant-v4", 111, 8, 84, -325.6, 3879.7),
}


class EnvSpecError(ValueError):
    """An unknown environment name, or data whose shape does not fit the environment."""


def env_spec(name: str) -> EnvSpec:
    if name not in ENVS:
        raise EnvSpecError(f"unknown RL environment {name!r}; expected one of {sorted(ENVS)}")
    return ENVS[name]


def normalized_score(name: str, returns):
    """D4RL's normalised score, 100·(R − R_random)/(R_expert − R_random); works on floats and arrays."""
    spec = env_spec(name)
    return 100.0 * (np.asarray(returns, dtype=np.float64) - spec.ref_min_score) / (
        spec.ref_max_score - spec.ref_min_score)


class PadObservation(gym.ObservationWrapper):
    """Appends `pad_dim` zeros to every observation (Ant-v4's 27 dims → D4RL's 111)."""

    def __init__(self, env: gym.Env, pad_dim: int):
        super().__init__(env)
        self.pad_dim = pad_dim
        low = np.concatenate([env.observation_space.low, np.zeros(pad_dim)])
        high = np.concatenate([env.observation_space.high, np.zeros(pad_dim)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)

    def observation(self, observation):
        return np.concatenate([observation, np.zeros(self.pad_dim, dtype=observation.dtype)])


def make_env(name: str) -> gym.Env:
    """The gymnasium environment for D4RL env `name`, with D4RL's observation width and the 1000-step limit.

    Episodes end with `terminated` (the agent fell: hopper, walker2d, ant) or `truncated` (t = 1000).
    """
    spec = env_spec(name)
    with warnings.catch_warnings():  # gymnasium flags v4 as superseded by v5; v4 is the D4RL-compatible one
        warnings.simplefilter("ignore")
        env = gym.make(spec.gym_id, max_episode_steps=EPISODE_STEPS)
    if spec.pad_dim:
        env = PadObservation(env, spec.pad_dim)
    got = env.observation_space.shape[0]
    if got != spec.obs_dim or env.action_space.shape[0] != spec.act_dim:
        raise EnvSpecError(f"{spec.gym_id}: observation/action widths {got}/{env.action_space.shape[0]} "
                           f"differ from D4RL's {spec.obs_dim}/{spec.act_dim}")
    return env



class EpisodeBatch:
    """E episodes of one env side by side (reset seeds seed + i), stepped together until every one has ended.

    obs (E, S) float32, returns (E,), lengths (E,), alive (E,) bool; `step(action (E, A))` advances the running
    episodes (a finished one's row of `action` is ignored) and returns the rewards (E,) float32, 0 where finished.
    """

    def __init__(self, env_name: str, n_episodes: int, seed: int):
        self.env_name, self.envs = env_name, [make_env(env_name) for _ in range(n_episodes)]
        self.obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]).astype(np.float32)
        self.returns, self.lengths = np.zeros(n_episodes), np.zeros(n_episodes, dtype=np.int64)
        self.alive = np.ones(n_episodes, dtype=bool)

    def step(self, action: np.ndarray) -> np.ndarray:
        rewards = np.zeros(len(self.envs), dtype=np.float32)
        for i in np.flatnonzero(self.alive):
            next_obs, reward, terminated, truncated, _ = self.envs[i].step(action[i])
            self.obs[i], rewards[i] = next_obs, reward
            self.returns[i] += reward
            self.lengths[i] += 1
            self.alive[i] = not (terminated or truncated)
        return rewards

    def close(self) -> np.ndarray:
        """Close the envs → the episodes' D4RL-normalised scores (E,)."""
        for env in self.envs:
            env.close()
        return normalized_score(self.env_name, self.returns)

def simulator_state(env: gym.Env):
    """(qpos, qvel) of the MuJoCo simulator behind `env` (D4RL stores them as infos/qpos, infos/qvel)."""
    data = env.unwrapped.data
    return data.qpos.copy(), data.qvel.copy()
