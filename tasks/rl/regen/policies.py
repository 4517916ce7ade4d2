"""Behaviour policies for regenerating D4RL-format data: pretrained zoo agents and SAC actors trained here.

Every policy maps a batch of D4RL observations (E, obs_dim) and the step index within each episode (E,) to
actions (E, act_dim) clipped to the action box; `deterministic=False` samples from the policy, as D4RL did.
The zoo agents (rl-baselines3-zoo, trained on gym v3) need the loading recipe of shared/rl-policies/*/SOURCE.md:
gymnasium spaces passed explicitly, VecNormalize statistics applied by hand, and sb3-contrib's time feature
(1 − t/1000 appended) for the agents trained with it.
"""
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ..envs import EPISODE_STEPS, env_spec, make_env

ALGOS = ("sac", "tqc", "ppo", "trpo", "ars")


class PolicyLoadError(ValueError):
    """A policy file that is missing or does not fit the environment."""


def _algo_class(algo: str):
    if algo in ("sac", "ppo"):
        import stable_baselines3 as sb3
        return getattr(sb3, algo.upper())
    if algo in ("tqc", "trpo", "ars"):
        import sb3_contrib
        return getattr(sb3_contrib, algo.upper())
    raise PolicyLoadError(f"unknown algorithm {algo!r}; expected one of {ALGOS}")


class UniformPolicy:
    """Actions uniform in [−1, 1]: D4RL's "random" behaviour, and a cheap policy for smoke data."""

    def __init__(self, act_dim: int, seed: int = 0):
        self.rng, self.act_dim = np.random.default_rng(seed), act_dim

    def act(self, obs: np.ndarray, t: np.ndarray, *, deterministic: bool) -> np.ndarray:
        return self.rng.uniform(-1, 1, (len(obs), self.act_dim)).astype(np.float32)


class BehaviourPolicy:
    """An SB3 model plus the observation transform it was trained with."""

    def __init__(self, *, model, description: str, obs_mean=None, obs_var=None, clip_obs: float = 10.0,
                 epsilon: float = 1e-8, time_feature: bool = False):
        self.model, self.description = model, description
        self.obs_mean, self.obs_var = obs_mean, obs_var
        self.clip_obs, self.epsilon, self.time_feature = clip_obs, epsilon, time_feature
        space = model.action_space
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)

    def transform(self, obs: np.ndarray, t: np.ndarray) -> np.ndarray:
        """obs (E, obs_dim), t (E,) → what the network was trained on: (E, obs_dim [+1])."""
        x = obs.astype(np.float32)
        if self.time_feature:  # sb3-contrib TimeFeatureWrapper: remaining-time fraction, 1 at reset
            x = np.concatenate([x, (1.0 - t / EPISODE_STEPS)[:, None].astype(np.float32)], axis=1)
        if self.obs_mean is not None:  # VecNormalize: clip((x − μ)/√(σ² + ε), ±clip)
            x = np.clip((x - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon), -self.clip_obs, self.clip_obs)
        return x.astype(np.float32)

    def act(self, obs: np.ndarray, t: np.ndarray, *, deterministic: bool) -> np.ndarray:
        actions, _ = self.model.predict(self.transform(obs, t), deterministic=deterministic)
        return np.clip(actions, self.low, self.high).astype(np.float32)


def _spaces(env_name: str, extra_obs_dims: int):
    """The policy's input space (D4RL observation [+ time feature]) and the env's action space."""
    env = make_env(env_name)
    obs_dim = env.observation_space.shape[0] + extra_obs_dims
    spaces = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), dtype=np.float32), env.action_space
    env.close()
    return spaces


def load_zoo_agent(agent_dir, *, env_name: str, algo: str, time_feature: bool = False) -> BehaviourPolicy:
    """A pretrained rl-baselines3-zoo agent from `agent_dir` (one `<Env>-v3.zip` [+ vecnormalize_stats.npz])."""
    agent_dir = Path(agent_dir)
    zips = sorted(agent_dir.glob("*.zip"))
    if len(zips) != 1:
        raise PolicyLoadError(f"{agent_dir}: expected exactly one agent .zip, found {[z.name for z in zips]}")
    obs_space, act_space = _spaces(env_name, int(time_feature))
    const = lambda _: 0.0  # noqa: E731 — stands in for the pickled Python-3.7 schedules the zips hold
    custom = dict(observation_space=obs_space, action_space=act_space, lr_schedule=const, learning_rate=0.0,
                  clip_range=const)
    model = _algo_class(algo).load(zips[0], custom_objects=custom, device="cpu")
    stats_file = agent_dir / "vecnormalize_stats.npz"
    norm = {}
    if stats_file.exists():
        with np.load(stats_file) as stats:
            norm = dict(obs_mean=stats["obs_mean"].astype(np.float32), obs_var=stats["obs_var"].astype(np.float32),
                        clip_obs=float(stats["clip_obs"]), epsilon=float(stats["epsilon"]))
        if norm["obs_mean"].shape != (obs_space.shape[0],):
            raise PolicyLoadError(f"{stats_file}: normalisation stats of width {norm['obs_mean'].shape[0]} do not "
                                  f"fit {env_name}'s {obs_space.shape[0]}-dim policy input")
    return BehaviourPolicy(model=model, description=f"zoo {algo} {zips[0]}", time_feature=time_feature, **norm)


def new_sac(env_name: str, *, seed: int, learning_starts: int, env=None):
    """stable-baselines3 SAC with its defaults (256×256 ReLU, lr 3e-4, batch 256, γ 0.99, auto entropy)."""
    from stable_baselines3 import SAC
    return SAC("MlpPolicy", env if env is not None else make_env(env_name), learning_starts=learning_starts,
               seed=seed, device="cpu", verbose=0)


def load_sac_actor(path, *, env_name: str) -> BehaviourPolicy:
    """A SAC actor saved as a `state_dict` (actor_<k>k.pt, written by tasks.rl.regen.sac_medium)."""
    path = Path(path)
    if not path.exists():
        raise PolicyLoadError(f"{path}: SAC actor file not found")
    model = new_sac(env_name, seed=0, learning_starts=0)
    try:
        model.actor.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except RuntimeError as err:
        raise PolicyLoadError(f"{path}: not a SAC actor for {env_name} "
                              f"({env_spec(env_name).obs_dim}-dim observations): {err}") from err
    return BehaviourPolicy(model=model, description=f"sac actor {path}")
