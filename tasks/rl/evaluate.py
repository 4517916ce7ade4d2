"""Evaluate a Decision Transformer in its MuJoCo environment: episodes side by side, one batched model call per step.

Conditioning (DT): R̂_0 = target return / rtg_scale, then R̂_{t+1} = R̂_t − r_t / rtg_scale; states standardised
with the training data's statistics (the DT's own buffers); actions are the model's outputs (deterministic). Episodes end at
termination or at 1000 steps; the return is the undiscounted sum of rewards. Episode i is reset with seed + i.

Modes (both recorded with every number):
- window: the DT protocol. At step t the model reads the last K timesteps (all of them while t < K) and is run
  from scratch on that window, for the episodes still running only (a finished episode costs no model call).
- stream: the tokens of the whole episode go through `backbone.step` one at a time; Aaren carries its
  constant-size state, the Transformer a KV cache that grows with t. Reports the model's wall time per env step
  (all episodes together) and the state held per episode at the end.

Precision: the model runs under whatever autocast the caller set (the harness: trainer.precision); its actions
are cast to float32 before they reach the environment (NumPy has no bfloat16).
"""
import time

import numpy as np
import torch

from .envs import EPISODE_STEPS, EpisodeBatch

MODES = ("window", "stream")


@torch.no_grad()
def evaluate(dt, *, env_name: str, mode: str, n_episodes: int, target_return: float, rtg_scale: float,
             context_len: int, seed: int, max_steps: int = EPISODE_STEPS) -> dict:
    """→ {return_mean, return_std, normalized_score (mean), normalized_score_std, episode_length_mean,
    step_latency_ms, [state_bytes_per_episode (stream)], returns (list)}."""
    if mode not in MODES:
        raise ValueError(f"evaluate: mode must be one of {MODES}, got {mode!r}")
    was_training = dt.training
    dt.eval()
    device = next(dt.parameters()).device
    E, S, A = n_episodes, dt.state_dim, dt.act_dim
    episodes = EpisodeBatch(env_name, E, seed)
    rtg = torch.full((E, 1), target_return / rtg_scale, device=device)
    if mode == "window":  # histories (E, T, ·); the model reads the last K rows
        hist_rtg = torch.zeros(E, max_steps, 1, device=device)
        hist_states = torch.zeros(E, max_steps, S, device=device)
        hist_actions = torch.zeros(E, max_steps, A, device=device)
        all_timesteps = torch.arange(max_steps, device=device).expand(E, max_steps)
    else:
        state = dt.start_stream(E)
    model_seconds = 0.0
    t = 0
    for t in range(max_steps):
        s_t = dt.standardise(torch.as_tensor(episodes.obs, device=device))                     # (E, S)
        started = time.perf_counter()
        if mode == "window":
            hist_rtg[:, t], hist_states[:, t] = rtg, s_t
            lo = max(0, t - context_len + 1)
            running = torch.as_tensor(np.flatnonzero(episodes.alive), device=device)           # (E',) episodes not done
            window = (hist_rtg[running, lo:t + 1], hist_states[running, lo:t + 1], hist_actions[running, lo:t + 1],
                      all_timesteps[running, lo:t + 1])
            action = torch.zeros(E, A, device=device)
            action[running] = dt(*window)[:, -1].float()                              # (E, A); 0 where done
            hist_actions[:, t] = action
        else:
            timestep = torch.full((E,), t, device=device, dtype=torch.long)
            action, state = dt.stream_action(state, rtg, s_t, timestep)
            state = dt.stream_feed_action(state, action, timestep)
            action = action.float()
        model_seconds += time.perf_counter() - started
        rewards = episodes.step(action.cpu().numpy())
        rtg = rtg - torch.as_tensor(rewards, device=device).unsqueeze(-1) / rtg_scale
        if not episodes.alive.any():
            break
    norm = episodes.close()
    returns, lengths = episodes.returns, episodes.lengths
    dt.train(was_training)
    result = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
              "normalized_score": float(norm.mean()), "normalized_score_std": float(norm.std()),
              "episode_length_mean": float(lengths.mean()), "step_latency_ms": 1000.0 * model_seconds / (t + 1),
              "returns": returns.tolist()}
    if mode == "stream":
        import aaren
        result["state_bytes_per_episode"] = aaren.state_nbytes(state) / E
    return result
