"""The Decision Transformer as an online policy: (return-to-go, state) in, action out, one env step at a time.

`PolicyStep` is the DT's stream mode (evaluate.py, mode="stream": the tokens R̂_t, s_t, a_t through
`backbone.step`) as one pure function of flat tensors, for export (ONNX / TorchScript). It takes the raw
return-to-go and the raw observation — the training data's state statistics and rtg_scale are inside — and
feeds its own action back, so a deployed policy is `action, *state = step(return_to_go, obs, *state)`.

`play` runs episodes of any such policy (a numpy callable, e.g. onnxruntime: no torch in the loop) with the
conventions of evaluate.py: episode i reset with seed + i, R̂ decreased by each reward, episodes side by side
until all are done or EPISODE_STEPS.
"""
import numpy as np
import torch
from aaren.export import OnlineStep, split_backbone
from torch import Tensor

from .envs import EPISODE_STEPS, EpisodeBatch


class _FlatBackbone:
    """Backbone.step's interface, (x_t, state) → (y_t, state), over the StreamingStep's flat (m, c, a)."""

    def __init__(self, step):
        self.step_fn = step

    def step(self, x_t: Tensor, state: tuple):
        y_t, *state = self.step_fn(x_t, *state)
        return y_t, tuple(state)


class PolicyStep(OnlineStep):
    """(return_to_go (B, 1), obs (B, S), *state) → (action (B, A), *state'), both inputs in the env's units.
    State, fixed size: the backbone's m, c (L, B, H), a (L, B, H, Dh) and timestep () int64 (< max_timestep)."""
    observation_names = ("return_to_go", "obs")
    prediction_names = ("action",)
    state_names = ("m", "c", "a", "timestep")

    def __init__(self, *, module):
        super().__init__()
        self.dt, self.backbone = split_backbone(module.dt)  # the policy alone: the module's snapshots stay behind
        self.rtg_scale = module.rtg_scale

    def initial_state(self, batch_size: int) -> tuple[Tensor, ...]:
        m, c, a = self.backbone.initial_state(batch_size)
        return m, c, a, torch.zeros((), dtype=torch.long, device=m.device)

    def example_observation(self, batch_size: int) -> tuple[Tensor, Tensor]:
        mean = self.dt.state_mean
        return mean.new_zeros(batch_size, 1), mean.new_zeros(batch_size, mean.shape[0])

    def forward(self, return_to_go, obs, m, c, a, timestep):
        dt, flat = self.dt, _FlatBackbone(self.backbone)
        rtg = return_to_go / self.rtg_scale                                     # (B, 1)
        s_t = dt.standardise(obs)                                               # (B, S)
        time = dt.embed_timestep(timestep)                                      # (D,), as dt._time but unchecked
        _, state = flat.step(dt.embed_norm(dt.embed_rtg(rtg) + time), (m, c, a))
        h, state = flat.step(dt.embed_norm(dt.embed_state(s_t) + time), state)
        action = dt.action_head(h)                                              # (B, A)
        _, state = flat.step(dt.embed_norm(dt.embed_action(action) + time), state)
        return (action, *state, timestep + 1)


def best_weights(module) -> None:
    """Load the run's best snapshot (the one its record's `best_*` numbers come from) into `module`, if it has one."""
    snapshot = module.snapshots.get("best") or module.snapshots.get("last")
    if snapshot is not None:
        module.load_state_dict(snapshot["weights"])


def play(policy, *, env_name: str, n_episodes: int, seed: int, target_return: float,
         max_steps: int = EPISODE_STEPS) -> dict:
    """policy(return_to_go (E, 1) float32, obs (E, S) float32) → action (E, A), carrying its own state; the E
    episodes run side by side (reset seeds seed + i) → {normalized_score, return_mean, returns, lengths,
    inputs: [(return_to_go, obs)] per step, actions: per step}."""
    episodes = EpisodeBatch(env_name, n_episodes, seed)
    return_to_go = np.full((n_episodes, 1), target_return, dtype=np.float32)
    inputs, actions = [], []
    for _ in range(max_steps):
        inputs.append((return_to_go.copy(), episodes.obs.copy()))
        action = np.asarray(policy(return_to_go, episodes.obs), dtype=np.float32)
        actions.append(action)
        return_to_go -= episodes.step(action)[:, None]
        if not episodes.alive.any():
            break
    scores = episodes.close()
    return {"normalized_score": float(scores.mean()), "return_mean": float(episodes.returns.mean()),
            "returns": episodes.returns.tolist(), "lengths": episodes.lengths.tolist(),
            "inputs": inputs, "actions": actions}


class TorchStreamPolicy:
    """The torch reference for `play`: the DT's own stream methods (stream_action, stream_feed_action), exactly
    as evaluate.py's stream mode calls them."""

    def __init__(self, module, n_episodes: int):
        self.dt, self.rtg_scale, self.t = module.eval().dt, module.rtg_scale, 0
        self.state = self.dt.start_stream(n_episodes)

    @torch.no_grad()
    def __call__(self, return_to_go: np.ndarray, obs: np.ndarray) -> np.ndarray:
        dt = self.dt
        rtg = torch.as_tensor(return_to_go) / self.rtg_scale
        s_t = dt.standardise(torch.as_tensor(obs))
        timestep = torch.full((obs.shape[0],), self.t, dtype=torch.long)
        action, self.state = dt.stream_action(self.state, rtg, s_t, timestep)
        self.state = dt.stream_feed_action(self.state, action, timestep)
        self.t += 1
        return action.numpy()


# ---- the interface scripts/export.py uses (the same in every task's online.py) ---------------------------------
def export_step(module, datamodule) -> PolicyStep:
    best_weights(module)
    return PolicyStep(module=module)


def test_streams(module, datamodule, *, n_streams: int, max_steps: int) -> list:
    """One episode of n_streams side by side from the test seeds, played by the torch stream policy →
    [(observations [(return_to_go, obs)], predictions [(action,)])]."""
    best_weights(module)
    played = play(TorchStreamPolicy(module, n_streams), env_name=module.env_name, n_episodes=n_streams,
                  seed=module.hparams.eval_seed_test, target_return=module.target_return, max_steps=max_steps)
    observations = [tuple(torch.from_numpy(x) for x in step) for step in played["inputs"]]
    return [(observations, [(torch.from_numpy(action),) for action in played["actions"]])]
