"""Loading pickled and `.npz` data without running code from the file.

A pickle names the Python callables that rebuild its objects, so `pickle.load` on a downloaded file runs whatever
the file names (`os.system`, ...). Data files need only numpy's array and scalar reconstruction, so:
- `restricted_load(handle, path)` unpickles with an allow-list: builtins (lists, dicts, numbers, strings need no
  global) and numpy's ndarray / dtype / scalar rebuilders; any other global raises DatasetFormatError.
- `read_npz(path)` reads an `.npz` archive member by member: plain arrays with `allow_pickle=False`, object arrays
  (ifl-tpp's ragged sequences are pickled inside the `.npy`) through `restricted_load`. A file that is not a
  readable archive (garbage, truncated, bad CRC) raises DatasetFormatError naming it.
"""
from __future__ import annotations

import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetFormatError

_ALLOWED = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),  # protocol-5 in-band arrays
    ("_codecs", "encode"),  # protocol-2 pickles (Python 2 era files) encode raw bytes with it
}
_BROKEN = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
           KeyError, MemoryError, OverflowError, UnicodeDecodeError, struct.error)  # what a corrupt stream raises


class _AllowListUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (~5x slower; fine for these files): its memo is a dict, where the C unpickler
    grows an array to whatever memo index the file names (one damaged LONG_BINPUT asked for 600 M slots)."""

    def __init__(self, handle, path: Path):
        super().__init__(handle, encoding="latin-1")  # latin-1: Python 2 pickles of numpy arrays (numpy's advice)
        self.path = path

    def find_class(self, module, name):
        if module.startswith("numpy.core"):  # numpy < 2 wrote numpy.core.*; numpy 2 reads it as numpy._core.*
            module = module.replace("numpy.core", "numpy._core", 1)
        if (module, name) not in _ALLOWED:
            raise DatasetFormatError(self.path, f"pickled data names {module}.{name}, which a data file has no "
                                                "use for (only numpy arrays and plain values are loaded; refusing "
                                                "to run code from the file)")
        return super().find_class(module, name)


def restricted_load(handle, path: Path | str):
    """Unpickle `handle` (a binary file) allowing only numpy arrays / scalars and plain values."""
    path = Path(path)
    try:
        return _AllowListUnpickler(handle, path).load()
    except DatasetFormatError:
        raise
    except _BROKEN as error:
        raise DatasetFormatError(path, f"not a readable pickle ({type(error).__name__}: {error})") from None


def read_npz(path: Path | str) -> dict[str, np.ndarray]:
    """Every array of an `.npz` archive by name (member `x.npy` -> "x"), loaded without running code."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return {name.removesuffix(".npy"): _read_member(archive, name, path)
                    for name in archive.namelist() if name.endswith(".npy")}
    except DatasetFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
        raise DatasetFormatError(path, f"not a readable .npz archive ({type(error).__name__}: {error})") from None


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise DatasetFormatError(path, f"member {name}: unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else (
            np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(member)
        if not dtype.hasobject:
            member.seek(0)
            return np.lib.format.read_array(member, allow_pickle=False)
        array = restricted_load(member, path)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise DatasetFormatError(path, f"member {name}: its pickle holds {type(array).__name__} "
                                       f"{getattr(array, 'shape', '')}, the header says an array of shape {shape}")
    return array
