"""``[data]`` of an experiment config: one data source and how it is split and scaled.

The sources are those :func:`nn_tuning.data.load_data` reads: a bundled
dataset or a CSV table (:mod:`nn_tuning.data`), an npz file of arrays
(:mod:`nn_tuning.arrays`) or a folder of images (:mod:`nn_tuning.images`).
Parsing only: nothing is read from disk here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import check_int, check_keys, in_source
from .data import BUNDLED, SCALES
from .exceptions import ConfigError
from .images import COLOR_MODES

__all__ = ["DataSection"]

_SOURCES = ("dataset", "csv", "npz", "images")
# Keys that only apply to some sources.
_SOURCE_KEYS = {"target": ("dataset", "csv"), "features": ("dataset", "csv"),
                "x_array": ("npz",), "y_array": ("npz",), "shape": ("dataset", "csv", "npz"),
                "image_size": ("images",), "color_mode": ("images",)}


def _check_dims(source: str, key: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    ok = isinstance(value, list) and value and (length is None or len(value) == length) \
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value)
    if not ok:
        what = "[height, width]" if length == 2 else "a list of sizes such as [8, 8, 1]"
        raise ConfigError(f"{source}: data.{key} must be {what} of integers >= 1, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class DataSection:
    """``[data]``: one source and how it is split and scaled (see :mod:`nn_tuning.data`).

    The source is one of ``dataset`` (a bundled name), ``csv`` (a path),
    ``npz`` (a path; arrays ``x_array`` and ``y_array``) or ``images`` (a
    folder with one sub-folder per class; ``image_size`` and ``color_mode``).
    ``shape`` reshapes each sample of a table or an npz array (``[8, 8, 1]``:
    the digits as images). ``scale`` is true, false or one of
    :data:`nn_tuning.data.SCALES`.
    """

    dataset: str | None = None
    csv: str | None = None
    npz: str | None = None
    images: str | None = None
    target: str | None = None
    features: tuple[str, ...] | None = None
    x_array: str | None = None
    y_array: str | None = None
    shape: tuple[int, ...] | None = None
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    test_size: float = 0.2
    scale: bool | str = True
    scale_target: bool = False
    split_seed: int | None = None

    @classmethod
    def parse(cls, source: str, table: dict[str, Any]) -> DataSection:
        check_keys(source, "data.", table, [f.name for f in dataclasses.fields(cls)])
        given = [k for k in _SOURCES if k in table]
        if len(given) != 1:
            raise ConfigError(f"{source}: [data] needs exactly one of 'dataset' (one of "
                              f"{', '.join(BUNDLED)}), 'csv' (a path), 'npz' (a path) or "
                              f"'images' (a folder); got {', '.join(given) or 'none'}")
        kind = given[0]
        if kind == "dataset" and table["dataset"] not in BUNDLED:
            raise ConfigError(f"{source}: unknown data.dataset {table['dataset']!r}; choose one "
                              f"of {', '.join(BUNDLED)}")
        for key, allowed in _SOURCE_KEYS.items():
            if key in table and kind not in allowed:
                raise ConfigError(f"{source}: data.{key} applies to data."
                                  f"{' or data.'.join(allowed)}, not to data.{kind}")
        for key, what in (("csv", "a path string"), ("npz", "a path string"),
                          ("images", "a folder path string"), ("target", "a column name"),
                          ("x_array", "an array name"), ("y_array", "an array name")):
            if key in table and not isinstance(table[key], str):
                raise ConfigError(f"{source}: data.{key} must be {what}, got {table[key]!r}")
        feats = table.get("features")
        if feats is not None and (not isinstance(feats, list) or not feats
                                  or not all(isinstance(f, str) for f in feats)):
            raise ConfigError(f"{source}: data.features must be a non-empty list of column "
                              f"names, got {feats!r}")
        shape = _check_dims(source, "shape", table["shape"]) if "shape" in table else None
        size = (_check_dims(source, "image_size", table["image_size"], 2)
                if "image_size" in table else None)
        if "color_mode" in table and table["color_mode"] not in COLOR_MODES:
            raise ConfigError(f"{source}: data.color_mode must be one of "
                              f"{', '.join(COLOR_MODES)}, got {table['color_mode']!r}")
        ts = table.get("test_size", 0.2)
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 < ts < 1:
            raise ConfigError(f"{source}: data.test_size must be a number in (0, 1), got {ts!r}")
        if "scale" in table and not isinstance(table["scale"], bool) \
                and table["scale"] not in SCALES:
            raise ConfigError(f"{source}: data.scale must be true, false or one of "
                              f"{', '.join(SCALES)}, got {table['scale']!r}")
        if "scale_target" in table and not isinstance(table["scale_target"], bool):
            raise ConfigError(f"{source}: data.scale_target must be true or false, got "
                              f"{table['scale_target']!r}")
        if "split_seed" in table:
            in_source(source, check_int, "data.split_seed", table["split_seed"], 0)
        return cls(**{**table, "features": tuple(feats) if feats else None, "shape": shape,
                      "image_size": size})

    def load_args(self, base_dir: Path) -> dict[str, Any]:
        """The source arguments of :func:`nn_tuning.data.load_data`, paths from ``base_dir``."""
        args: dict[str, Any] = {"dataset": self.dataset, "target": self.target,
                                "features": list(self.features) if self.features else None,
                                "shape": self.shape, "image_size": self.image_size}
        for key in ("csv", "npz", "images"):
            value = getattr(self, key)
            if value is not None:
                path = Path(value).expanduser()
                args[key] = path if path.is_absolute() else base_dir / path
        for key in ("x_array", "y_array", "color_mode"):
            if getattr(self, key) is not None:
                args[key] = getattr(self, key)
        return args
