"""The TPP network around the backbone (the task's `model.py`): the event embedding, a mark embedding plus a
projection of sinusoidal temporal encodings of t and τ (the heads: lognormal_mixture.py, mark_likelihood.py).

    TE(x)_{2i} = sin(x / 10000^{2i/D}),  TE(x)_{2i+1} = cos(x / 10000^{2i/D})       (THP, Zuo et al. 2020, eq. 1;
                                                                  tasks/base/positional.py)
    e_i = E[m_i] + W [TE(t_i); TE(τ_i)]                                            (B, N, D)

THP encodes the absolute time t; Meta-TPP's THP+ encodes its npz `times`, which are the inter-event times τ.
Both are given here (a periodic process needs t, a self-exciting one needs τ); W (D × 2D) lets the model mix them.
Times are in the task's rescaled unit (tasks/tpp/data.py).
"""
import torch
from torch import Tensor, nn

from tasks.base.positional import sinusoid


class EventEmbedding(nn.Module):
    """(time (...), tau (...), marks (...) long in [0, num_marks)) → (..., d_model)."""

    def __init__(self, *, num_marks: int, d_model: int):
        super().__init__()
        if num_marks < 1:
            raise ValueError(f"EventEmbedding: num_marks must be >= 1, got {num_marks}")
        self.d_model = d_model
        self.mark = nn.Embedding(num_marks, d_model)
        self.time = nn.Linear(2 * d_model, d_model, bias=False)

    def forward(self, time: Tensor, tau: Tensor, marks: Tensor) -> Tensor:
        encodings = torch.cat([sinusoid(time, self.d_model), sinusoid(tau, self.d_model)], -1)
        return self.mark(marks) + self.time(encodings)
