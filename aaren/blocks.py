"""AarenBlock and TransformerBlock: the same residual block around a different attention."""
from torch import Tensor, nn

from .attention import Aaren, CausalSelfAttention
from .dropout import FastDropout

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class _Block(nn.Module):
    """x + Attn(LN(x)), then x + FFN(LN(x)) (pre-norm, norm_first=True) or LN(x + ...) (post-norm).

    FFN = Linear(D, d_ff) → activation → dropout → Linear(d_ff, D); dropout on both residual branches
    (FastDropout: nn.Dropout's distribution with a cheaper mask on CPU).
    """

    def __init__(self, *, attention: nn.Module, d_model: int, d_ff: int, dropout: float, norm_first: bool,
                 activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.attention, self.norm_first = attention, norm_first
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), ACTIVATIONS[activation](), FastDropout(dropout),
                                 nn.Linear(d_ff, d_model))
        self.dropout = FastDropout(dropout)

    def _residual(self, x: Tensor, attend) -> Tensor:
        if self.norm_first:
            x = x + self.dropout(attend(self.norm1(x)))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(attend(x)))
        return self.norm2(x + self.dropout(self.ffn(x)))

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, *, state=None, return_state: bool = False):
        """x (B, N, D), padding_mask (B, N) bool True=valid | None → (B, N, D) [, state] (see Backbone)."""
        if state is None and not return_state:
            return self._residual(x, lambda h: self.attention(h, padding_mask))
        return self._with_state(x, lambda h: self.attention(h, padding_mask, state=state, return_state=True))

    def init_state(self, batch_size: int, **kwargs):
        return self.attention.init_state(batch_size, **kwargs)

    def step(self, x_t: Tensor, state, mask_t: Tensor | None = None):
        """x_t (B, D) → (y_t (B, D), state)"""
        return self._with_state(x_t, lambda h: self.attention.step(h, state, mask_t))

    def _with_state(self, x: Tensor, attend):
        """The residual block around an attention that returns (output, state): → (y, state)."""
        out = {}

        def attend_keep_state(h):
            y, out["state"] = attend(h)
            return y

        return self._residual(x, attend_keep_state), out["state"]


class AarenBlock(_Block):
    """A Transformer block whose attention is Aaren's learned-query attention (§3.3)."""

    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = True,
                 activation: str = "gelu", backend: str = "auto", chunk_size: int | None = None):
        super().__init__(attention=Aaren(d_model=d_model, n_heads=n_heads, backend=backend, chunk_size=chunk_size),
                         d_model=d_model, d_ff=d_ff, dropout=dropout, norm_first=norm_first, activation=activation)


class TransformerBlock(_Block):
    """The causal Transformer block the paper compares against."""

    def __init__(self, *, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = True,
                 activation: str = "gelu"):
        super().__init__(attention=CausalSelfAttention(d_model=d_model, n_heads=n_heads), d_model=d_model,
                         d_ff=d_ff, dropout=dropout, norm_first=norm_first, activation=activation)
