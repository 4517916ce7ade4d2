"""Decision Transformer (Chen et al. 2021) around a shared `aaren.Backbone`: only the backbone differs.

Each timestep t contributes three tokens, in order (R̂_t, s_t, a_t): return-to-go, state, action, each linearly
embedded, plus a learned embedding of the absolute timestep t (as in min-decision-transformer), then LayerNorm.
The causal backbone reads (R̂_1, s_1, a_1, ..., R̂_T, s_T, a_T); the action a_t is predicted (linear + tanh) from
the output at the state token s_t, which has seen R̂_≤t, s_≤t, a_<t only.

Two ways to run it: `forward` on a window of T timesteps (training, and the DT `window` evaluation), and
`start_stream` / `stream_action` / `stream_feed_action`, which feed the tokens one by one through
`backbone.step` (Aaren: constant-size state; Transformer: KV cache) — the `stream` evaluation. The DT owns its
backbone and the state statistics, so `DecisionTransformer` alone is the policy (evaluate.py, online.py).
"""
import torch
from torch import Tensor, nn

TOKENS_PER_STEP = 3  # (return-to-go, state, action)


class DecisionTransformer(nn.Module):
    """The whole DT policy: token embeddings, its causal `backbone` (an aaren.Backbone it owns), the action head,
    and the training data's state statistics (buffers, so they travel with the weights; `set_state_statistics`).

    rtg (B, T, 1), states (B, T, S) standardised, actions (B, T, A), timesteps (B, T) long, mask (B, T) bool
    True=valid.
    """

    def __init__(self, *, backbone: nn.Module, state_dim: int, act_dim: int, max_timestep: int):
        super().__init__()
        d_model = backbone.d_model
        self.state_dim, self.act_dim, self.max_timestep = state_dim, act_dim, max_timestep
        self.backbone = backbone
        self.embed_timestep = nn.Embedding(max_timestep, d_model)
        self.embed_rtg = nn.Linear(1, d_model)
        self.embed_state = nn.Linear(state_dim, d_model)
        self.embed_action = nn.Linear(act_dim, d_model)
        self.embed_norm = nn.LayerNorm(d_model)
        self.action_head = nn.Sequential(nn.Linear(d_model, act_dim), nn.Tanh())
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    def set_state_statistics(self, state_mean, state_std) -> None:
        """The training data's per-dimension state mean and std (S,): what `standardise` uses."""
        for name, value in (("state_mean", state_mean), ("state_std", state_std)):
            value = torch.as_tensor(value, dtype=torch.float32)
            if value.shape != (self.state_dim,):
                raise ValueError(f"DecisionTransformer: {name} must have shape ({self.state_dim},), "
                                 f"got {tuple(value.shape)}")
            getattr(self, name).copy_(value)

    def standardise(self, obs: Tensor) -> Tensor:
        """Raw observations (..., S) → the standardised states the model reads."""
        return (obs - self.state_mean) / self.state_std

    def _time(self, timesteps: Tensor) -> Tensor:
        if timesteps.numel() and (timesteps.min() < 0 or timesteps.max() >= self.max_timestep):
            raise ValueError(f"DecisionTransformer: timesteps must lie in [0, {self.max_timestep}), "
                             f"got [{int(timesteps.min())}, {int(timesteps.max())}]")
        return self.embed_timestep(timesteps)

    def tokens(self, rtg: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor) -> Tensor:
        """→ (B, 3T, D), interleaved R̂_1, s_1, a_1, R̂_2, ..."""
        B, T, _ = states.shape
        time = self._time(timesteps)                                            # (B, T, D)
        per_kind = (self.embed_rtg(rtg) + time, self.embed_state(states) + time, self.embed_action(actions) + time)
        x = torch.stack(per_kind, dim=2).reshape(B, TOKENS_PER_STEP * T, -1)   # (B, 3T, D)
        return self.embed_norm(x)

    def forward(self, rtg: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor,
                mask: Tensor | None = None) -> Tensor:
        """→ predicted actions (B, T, A); position t is predicted from the state token s_t."""
        B, T, _ = states.shape
        x = self.tokens(rtg, states, actions, timesteps)
        token_mask = None if mask is None else mask.repeat_interleave(TOKENS_PER_STEP, dim=1)   # (B, 3T)
        h = self.backbone(x, token_mask).reshape(B, T, TOKENS_PER_STEP, -1)    # (B, T, 3, D)
        return self.action_head(h[:, :, 1])

    # --- streaming: one token at a time through backbone.step ---------------------------------------------
    def start_stream(self, batch_size: int):
        return self.backbone.init_state(batch_size)

    def stream_action(self, state, rtg_t: Tensor, state_t: Tensor, timestep_t: Tensor):
        """Feed R̂_t (B, 1) and the standardised s_t (B, S) at timestep t (B,); → (action (B, A), new state)."""
        time = self._time(timestep_t)                                           # (B, D)
        _, state = self.backbone.step(self.embed_norm(self.embed_rtg(rtg_t) + time), state)
        h, state = self.backbone.step(self.embed_norm(self.embed_state(state_t) + time), state)
        return self.action_head(h), state

    def stream_feed_action(self, state, action_t: Tensor, timestep_t: Tensor):
        """Feed the action a_t (B, A) that was taken; → new state."""
        x = self.embed_norm(self.embed_action(action_t) + self._time(timestep_t))
        return self.backbone.step(x, state)[1]
