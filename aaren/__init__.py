"""aaren — Attention as an RNN (Feng et al. 2024). Depends on torch only.

    o = aaren.scan(scores, values, mask)              # many-to-many attention of one query, §3.2
    o_t, state = aaren.step(state, s_t, v_t)           # the same, one token at a time, §3.1
    model = aaren.Backbone(kind="aaren", d_model=128, n_layers=3, n_heads=4, d_ff=512, dropout=0.1)
"""
from .attention import Aaren, CausalSelfAttention
from .backbone import Backbone, state_detach, state_reset
from .blocks import AarenBlock, TransformerBlock
from .dropout import FastDropout
from .kv_cache import KVCache
from .scan import scan
from .state import ScanState, init_state, state_nbytes, step

__all__ = ["Aaren", "AarenBlock", "Backbone", "CausalSelfAttention", "FastDropout", "KVCache", "ScanState",
           "TransformerBlock", "init_state", "scan", "state_detach", "state_nbytes",
           "state_reset", "step"]
__version__ = "0.1.0"
