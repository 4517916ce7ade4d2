"""Backends of `aaren.scan`: the same many-to-many attention-as-RNN output, computed five ways.

Each backend takes scores (..., N) (finite), values (..., N, D), mask (..., N) bool or None (already validated,
masked tokens' values zeroed, cast to the accumulation dtype) and an initial ScanState, or None for the empty
one, and returns (o (..., N, D), final ScanState).
"triton" needs the optional package triton (`pip install aaren[gpu]`); without it, it raises a clear error.
"""
from .chunked import chunked_scan
from .dense import dense_scan
from .hillis_steele import hillis_steele_scan
from .naive import naive_scan

try:
    from .triton_scan import fused_scan
    HAS_TRITON = True
except ImportError as err:
    HAS_TRITON, _triton_error = False, err

    def fused_scan(*args, **kwargs):
        raise ImportError("scan: backend='triton' needs the optional package triton (pip install 'aaren[gpu]'), "
                          f"which failed to import: {_triton_error}") from _triton_error

BACKENDS = {"naive": naive_scan, "hillis_steele": hillis_steele_scan, "chunked": chunked_scan,
            "dense": dense_scan, "triton": fused_scan}
