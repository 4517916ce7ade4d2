"""Backends of `aaren.scan`: the same many-to-many attention-as-RNN output, computed three ways.

Each backend takes scores (..., N), values (..., N, D), mask (..., N) bool or None (already validated and
cast to the accumulation dtype) and an initial ScanState, and returns (o (..., N, D), final ScanState).
"""
from .chunked import chunked_scan
from .hillis_steele import hillis_steele_scan
from .naive import naive_scan

BACKENDS = {"naive": naive_scan, "hillis_steele": hillis_steele_scan, "chunked": chunked_scan}
