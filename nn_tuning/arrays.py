"""N-D data sources: arrays in an ``.npz`` file, and the memory check every N-D source passes.

An ``npz`` source holds the features and the target as two named arrays
(``X`` and ``y`` by default). ``X`` has samples on its first axis and at least
2 dimensions: (N, features), images (N, H, W[, C]), sequences (N, T, F).
The arrays' shapes are read from the file's headers and checked against the
memory available (:func:`check_memory`) before any array is loaded.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from .exceptions import DataError

__all__ = ["PEAK_COPIES", "available_memory", "check_memory", "load_npz", "npz_shapes"]

logger = logging.getLogger("nn_tuning")

#: Copies of the float32 features alive at once while loading: the loaded
#: array, its train/test split, and the scaled split.
PEAK_COPIES = 3
_MIB = 2**20


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (psutil's ``available``), or None."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    return int(psutil.virtual_memory().available)


def check_memory(n_values: int, what: str, *, source_itemsize: int = 4,
                 hint: str = "use fewer samples") -> int:
    """Refuse features of ``n_values`` float32 values that would not fit; return their bytes.

    The features are held as float32 (4 bytes a value: 4x the size of 8-bit
    images); about :data:`PEAK_COPIES` copies are alive at once while the data
    are split and scaled. The estimate is compared with psutil's available
    memory (``psutil.virtual_memory().available``: on Linux, /proc/meminfo's
    MemAvailable).
    """
    nbytes = int(n_values) * 4
    peak = nbytes * PEAK_COPIES
    available = available_memory()
    growth = f", {4 // source_itemsize}x their size on disk" if source_itemsize < 4 else ""
    logger.info("%s: %.1f MiB as float32%s; about %.1f MiB at peak while splitting and "
                "scaling; %s MiB available", what, nbytes / _MIB, growth, peak / _MIB,
                "unknown" if available is None else f"{available / _MIB:.0f}")
    if available is not None and peak > available:
        raise DataError(f"{what} need about {peak / _MIB:.0f} MiB ({nbytes / _MIB:.0f} MiB as "
                        f"float32, x{PEAK_COPIES} while splitting and scaling), but only "
                        f"{available / _MIB:.0f} MiB of memory is available; {hint}")
    return nbytes


def npz_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in an ``.npz`` file, read from the headers only."""
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(fh)
                out[info.filename[:-4]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"data.npz {str(path)!r} is not a readable .npz file: {exc}") from None
    return out


def load_npz(path: Path, x_name: str = "X", y_name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``x_name`` and ``y_name`` of an ``.npz`` file, checked.

    Raises a one-line :class:`DataError` when the file or an array is missing,
    ``X`` is not numeric or has fewer than 2 dimensions, the lengths differ, or
    the features would not fit in memory.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.npz file not found: {str(path)!r}")
    shapes = npz_shapes(path)
    for key, name in (("x_array", x_name), ("y_array", y_name)):
        if name not in shapes:
            raise DataError(f"data.npz {str(path)!r} has no array {name!r} (data.{key}); it "
                            f"holds: {', '.join(sorted(shapes)) or 'no arrays'}")
    (x_shape, x_dtype), (y_shape, _) = shapes[x_name], shapes[y_name]
    if x_dtype.kind not in "biuf":
        raise DataError(f"data.npz array {x_name!r} must be numeric, got dtype {x_dtype}")
    if len(x_shape) < 2:
        raise DataError(f"data.npz array {x_name!r} must have samples on its first axis and at "
                        f"least 2 dimensions, such as (rows, features) or images (N, H, W, C); "
                        f"got shape {x_shape}")
    if len(y_shape) == 0 or y_shape[0] != x_shape[0]:
        raise DataError(f"data.npz arrays {x_name!r} and {y_name!r} must have the same number "
                        f"of samples, got shapes {x_shape} and {y_shape}")
    check_memory(int(np.prod(x_shape)), f"data.npz {path.name}: {x_shape[0]} samples of shape "
                 f"{x_shape[1:]}", source_itemsize=x_dtype.itemsize)
    try:
        with np.load(path, allow_pickle=False) as data:
            X = data[x_name].astype("float32", copy=False)
            y = data[y_name]
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise DataError(f"data.npz {str(path)!r}: cannot load the arrays: {exc}") from None
    return X, y
