"""Dense references the fast paths are tested against (float64, O(N²), obviously correct)."""
import torch


def dense_prefix_attention(scores, values, mask=None):
    """o_k = Σ_{i≤k} softmax(s_{1..k})_i v_i by materialising the causal N×N weights; 0 for empty prefixes."""
    n = scores.shape[-1]
    allowed = torch.ones(n, n, dtype=torch.bool, device=scores.device).tril()
    if mask is not None:
        allowed = allowed & mask.unsqueeze(-2)
    logits = scores.unsqueeze(-2).expand(*scores.shape[:-1], n, n)
    logits = logits.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # all-masked rows → 0
    return weights @ values
