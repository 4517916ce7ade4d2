"""Decision Transformer (Chen et al. 2021) around a shared `aaren.Backbone`: only the backbone differs.

Each timestep t contributes three tokens, in order (R̂_t, s_t, a_t): return-to-go, state, action, each linearly
embedded, plus a learned embedding of the absolute timestep t (as in min-decision-transformer), then LayerNorm.
The causal backbone reads (R̂_1, s_1, a_1, ..., R̂_T, s_T, a_T); the action a_t is predicted (linear + tanh) from
the output at the state token s_t, which has seen R̂_≤t, s_≤t, a_<t only.

Two ways to run it: `forward` on a window of T timesteps (training, and the DT `window` evaluation), and
`start_stream` / `stream_action` / `stream_feed_action`, which feed the tokens one by one through
`backbone.step` (Aaren: constant-size state; Transformer: KV cache) — the `stream` evaluation.
"""
import torch
from torch import Tensor, nn

TOKENS_PER_STEP = 3  # (return-to-go, state, action)


class DecisionTransformer(nn.Module):
    """Token embeddings and the action head of DT; the backbone is passed in (it belongs to the TaskModule).

    rtg (B, T, 1), states (B, T, S), actions (B, T, A), timesteps (B, T) long, mask (B, T) bool True=valid.
    """

    def __init__(self, *, state_dim: int, act_dim: int, d_model: int, max_timestep: int):
        super().__init__()
        self.state_dim, self.act_dim, self.max_timestep = state_dim, act_dim, max_timestep
        self.embed_timestep = nn.Embedding(max_timestep, d_model)
        self.embed_rtg = nn.Linear(1, d_model)
        self.embed_state = nn.Linear(state_dim, d_model)
        self.embed_action = nn.Linear(act_dim, d_model)
        self.embed_norm = nn.LayerNorm(d_model)
        self.action_head = nn.Sequential(nn.Linear(d_model, act_dim), nn.Tanh())

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

    def forward(self, backbone: nn.Module, rtg: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor,
                mask: Tensor | None = None) -> Tensor:
        """→ predicted actions (B, T, A); position t is predicted from the state token s_t."""
        B, T, _ = states.shape
        x = self.tokens(rtg, states, actions, timesteps)
        token_mask = None if mask is None else mask.repeat_interleave(TOKENS_PER_STEP, dim=1)   # (B, 3T)
        h = backbone(x, token_mask).reshape(B, T, TOKENS_PER_STEP, -1)         # (B, T, 3, D)
        return self.action_head(h[:, :, 1])

    # --- streaming: one token at a time through backbone.step ---------------------------------------------
    def start_stream(self, backbone: nn.Module, batch_size: int):
        return backbone.init_state(batch_size)

    def stream_action(self, backbone: nn.Module, state, rtg_t: Tensor, state_t: Tensor, timestep_t: Tensor):
        """Feed R̂_t (B, 1) and s_t (B, S) at timestep t (B,); → (action (B, A), new state)."""
        time = self._time(timestep_t)                                           # (B, D)
        _, state = backbone.step(self.embed_norm(self.embed_rtg(rtg_t) + time), state)
        h, state = backbone.step(self.embed_norm(self.embed_state(state_t) + time), state)
        return self.action_head(h), state

    def stream_feed_action(self, backbone: nn.Module, state, action_t: Tensor, timestep_t: Tensor):
        """Feed the action a_t (B, A) that was taken; → new state."""
        x = self.embed_norm(self.embed_action(action_t) + self._time(timestep_t))
        return backbone.step(x, state)[1]
