"""Reader for D4RL gym-mujoco v2 HDF5 files (Fu et al. 2020), as used by Decision Transformer.

A file holds flat transition arrays of one length N: `observations` (N, obs_dim), `actions` (N, act_dim),
`rewards` (N,), `terminals` (N,), `timeouts` (N,). Episodes end where `terminals` or `timeouts` is set; the
RL task splits them into trajectories. Other keys (`next_observations`, `infos/*`, `metadata/*`) are not read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetFormatError
from ._common import require_file

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
_DAMAGED = (OSError, RuntimeError, KeyError, TypeError, ValueError)  # what h5py raises inside a corrupt file
_NDIM = {"observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1}


def open_hdf5(path: Path | str):
    """`h5py.File(path, "r")`, or DatasetFormatError naming the file when it is not HDF5 or is truncated.
    (HDF5 holds typed arrays only: reading one never runs code from the file.)"""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DatasetFormatError(path, f"not a readable HDF5 file ({error})") from None


def _damaged(path: Path | str, error: Exception) -> DatasetFormatError:
    return DatasetFormatError(path, f"damaged HDF5 file ({type(error).__name__}: {error})")


def read_hdf5_attr(path: Path | str, name: str):
    """The root attribute `name` of an HDF5 file (None when absent); DatasetFormatError naming a bad file."""
    with open_hdf5(path) as handle:
        try:
            return handle.attrs.get(name)
        except _DAMAGED as error:
            raise _damaged(path, error) from None


def read_d4rl_hdf5(path: Path | str) -> dict[str, np.ndarray]:
    """Return {observations (N, obs_dim) float32, actions (N, act_dim) float32, rewards (N,) float32,
    terminals (N,) bool, timeouts (N,) bool}; raise DatasetFormatError on missing keys, bad shapes or values."""
    path = require_file(path)
    with open_hdf5(path) as handle:
        try:
            names = sorted(str(k) for k in handle.keys())
            missing = [k for k in D4RL_KEYS if k not in names]
            if missing:
                raise DatasetFormatError(path, f"missing HDF5 datasets {missing}; has {names}")
            arrays = {k: np.asarray(handle[k][()]) for k in D4RL_KEYS}  # a group here raises TypeError
        except DatasetFormatError:
            raise
        except _DAMAGED as error:
            raise _damaged(path, error) from None
    for key, array in arrays.items():
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DatasetFormatError(path, f"{key!r} has dtype {array.dtype}, expected numbers")
        if array.ndim != _NDIM[key]:
            raise DatasetFormatError(path, f"{key!r} has shape {array.shape}, expected {_NDIM[key]} dimension(s)")
    lengths = {key: array.shape[0] for key, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetFormatError(path, f"arrays have mismatched lengths {lengths}")
    if lengths["observations"] == 0:
        raise DatasetFormatError(path, "no transitions (N = 0)")
    for key in ("observations", "actions", "rewards"):
        if not np.isfinite(arrays[key]).all():
            raise DatasetFormatError(path, f"{key!r} has NaN or infinite values")
    return {
        "observations": arrays["observations"].astype(np.float32, copy=False),
        "actions": arrays["actions"].astype(np.float32, copy=False),
        "rewards": arrays["rewards"].astype(np.float32, copy=False),
        "terminals": arrays["terminals"].astype(bool),
        "timeouts": arrays["timeouts"].astype(bool),
    }
