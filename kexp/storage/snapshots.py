"""Reading one kernel snapshot file (kernels/<label>.npz): its conv kernels and their biases,
checked. kexp.storage.runs, which names the snapshots and finds them in a run folder, hands
these readers on (runs.load_kernels, runs.load_biases); no Keras here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kexp.errors import RunError
from kexp.storage import files

BIAS_SUFFIX = "/bias"  # a snapshot keeps conv layer P's bias under "P/bias"


def read_snapshot(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A snapshot's kernels (kh, kw, c_in, c_out) and biases, each by layer path, from one read
    of the file ({} biases for snapshots written before kexp kept them)."""
    arrays = _read_arrays(path)
    kernels = {name: array for name, array in arrays.items() if not is_bias_key(name, arrays)}
    biases = {name[:-len(BIAS_SUFFIX)]: array for name, array in arrays.items()
              if is_bias_key(name, arrays)}
    return kernels, biases


def load_kernels(path: Path, like: dict[str, np.ndarray] | None = None
                 ) -> dict[str, np.ndarray]:
    """Kernel snapshot arrays by layer name (or path): float kernels (kh, kw, c_in, c_out),
    without the biases stored beside them (`load_biases`). With `like` (another snapshot of the
    run) the layers and shapes must be the same (`check_like`)."""
    kernels = read_snapshot(path)[0]
    return kernels if like is None else check_like(path, kernels, like)


def check_like(path: Path, kernels: dict[str, np.ndarray], like: dict[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
    """`kernels` (read from `path`), once their layers and shapes are those of `like`, so two
    snapshots can be drawn side by side; RunError naming `path` otherwise."""
    shapes = {name: array.shape for name, array in kernels.items()}
    if shapes != {name: array.shape for name, array in like.items()}:
        raise RunError(f"Cannot read '{path}': its layers {shapes} differ from the run's other "
                       "snapshots. Expected a snapshot of the same model.")
    return kernels


def load_biases(path: Path) -> dict[str, np.ndarray]:
    """The conv biases of a kernel snapshot by layer path ({} for snapshots written before
    kexp kept them)."""
    return read_snapshot(path)[1]


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a snapshot, checked: 4-D float kernels and their 1-D float biases."""
    arrays = files.read_npz(path, RunError, "a kernel snapshot written by kexp")
    for name, array in arrays.items():
        if (array.dtype.kind != "f" or array.size == 0
                or array.ndim != (1 if is_bias_key(name, arrays) else 4)):
            raise RunError(f"Cannot read '{path}': its array '{name}' has shape {array.shape} "
                           f"and dtype {array.dtype}. Expected float conv kernels "
                           "(kh, kw, c_in, c_out) by layer name, and their biases.")
    return arrays


def is_bias_key(key: str, keys) -> bool:
    """Whether snapshot key `key` is the bias of another key's layer ("conv1/bias" beside
    "conv1"), not the kernel of a nested layer named "bias"."""
    return key.endswith(BIAS_SUFFIX) and key[:-len(BIAS_SUFFIX)] in keys
