"""Experiment data: a bundled data set, a CSV file, an ``.npz`` file or an image folder.

The data section of an experiment names one source: a bundled data set
(``advertising``, shipped with the package, or one of scikit-learn's
``iris``, ``wine``, ``breast_cancer``, ``digits``, ``diabetes``), a CSV file
with a target column, arrays in an ``.npz`` file (:mod:`nn_tuning.arrays`)
or a folder of images with one sub-folder per class (:mod:`nn_tuning.images`).
A table's rows can be reshaped to N-D samples (``shape = [8, 8, 1]`` loads the
digits as 8x8x1 images). :func:`load_data` checks the data, holds out a test
split and fits the scaler on the training part only.

Scaling (``scale``):

* ``"standard"``: standardise each feature (each pixel of an image), the
  default (``true``) for tables;
* ``"channel"``: standardise each channel, i.e. each index of the last axis
  (the R, G, B of (N, H, W, C) images, the features of (N, T, F) sequences),
  with one mean and one deviation over all samples and positions; the default
  (``true``) for N-D data. Grey images stored as (N, H, W) have their columns
  on the last axis: load them as (N, H, W, 1) or use ``"unit"``;
* ``"unit"``: divide by 255, so 8-bit images lie in [0, 1] (refused for
  values outside [0, 255]);
* ``"none"`` (``false``): the values as they are.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .exceptions import DataError

__all__ = ["BUNDLED", "SCALES", "DataSplit", "load_frame", "load_data", "scale_mode"]

logger = logging.getLogger("nn_tuning")

_SKLEARN = ("iris", "wine", "breast_cancer", "digits", "diabetes")
#: Names accepted by ``data.dataset``.
BUNDLED = ("advertising", *_SKLEARN)
_DEFAULT_TARGET = {"advertising": "Sales", **{name: "target" for name in _SKLEARN}}
#: Values of ``scale`` besides true and false; see the module's docstring.
SCALES = ("standard", "channel", "unit", "none")


@dataclass
class DataSplit:
    """Training and held-out test data, scaled with statistics of the training part.

    ``y_train`` is standardised when the target is scaled; ``y_test`` always
    stays in the original units, so test metrics are in the target's units
    (predictions go through :meth:`inverse_target`).
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    features: list[str]
    target: str
    source: str
    x_scaler: StandardScaler | None = None
    y_scaler: StandardScaler | None = None
    scale: str = "none"  # one of SCALES, as applied
    classes: list[str] | None = None  # an image folder's class folders

    def inverse_target(self, y_pred: Any) -> np.ndarray:
        """Predictions of a model trained on ``y_train`` in the target's own units."""
        y_pred = np.asarray(y_pred, dtype="float64").reshape(-1, 1)
        if self.y_scaler is not None:
            y_pred = self.y_scaler.inverse_transform(y_pred)
        return y_pred.ravel()

    def describe(self) -> dict[str, Any]:
        """Plain data about the split and the scalers (saved beside the results)."""
        info: dict[str, Any] = {
            "source": self.source, "target": self.target, "features": self.features,
            "train_rows": len(self.X_train), "test_rows": len(self.X_test),
            "sample_shape": list(self.X_train.shape[1:]), "scale": self.scale,
        }
        if self.classes is not None:
            info["classes"] = self.classes
        if self.scale == "unit":
            info["feature_divisor"] = 255.0
        if self.x_scaler is not None:
            info["feature_mean"] = self.x_scaler.mean_.tolist()
            info["feature_scale"] = self.x_scaler.scale_.tolist()
        if self.y_scaler is not None:
            info["target_mean"] = float(self.y_scaler.mean_[0])
            info["target_scale"] = float(self.y_scaler.scale_[0])
        return info


def _bundled_frame(name: str) -> pd.DataFrame:
    if name == "advertising":
        text = resources.files("nn_tuning").joinpath("data/advertising.csv").read_text()
        return pd.read_csv(io.StringIO(text))
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
    frame["target"] = bunch.target
    return frame


def load_frame(dataset: str | None = None,
               csv: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """The raw table of a bundled data set or a CSV file, and a name for messages."""
    if (dataset is None) == (csv is None):
        raise DataError("the data section needs exactly one of 'dataset' or 'csv'")
    if dataset is not None:
        if dataset not in BUNDLED:
            raise DataError(f"unknown data.dataset {dataset!r}; choose one of {', '.join(BUNDLED)}")
        return _bundled_frame(dataset), dataset
    path = Path(csv)  # type: ignore[arg-type]
    if not path.is_file():
        raise DataError(f"data.csv file not found: {str(path)!r}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read the CSV file: {first}") from None
    return frame, str(path)


def _check_columns(frame: pd.DataFrame, source: str, target: str,
                   features: Sequence[str] | None) -> list[str]:
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if target not in columns:
        raise DataError(f"{source}: data.target column {target!r} is not in the data; "
                        f"columns are {', '.join(columns)}")
    if features is None:
        features = [c for c in columns if c != target]
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(f"{source}: data.features column {missing[0]!r} is not in the data; "
                        f"columns are {', '.join(columns)}")
    if target in features:
        raise DataError(f"{source}: data.features must not contain the target {target!r}")
    if not features:
        raise DataError(f"{source}: no feature columns besides the target {target!r}")
    for col in features:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{source}: feature column {col!r} is not numeric "
                            f"(row {row}: {frame[col].iloc[row]!r})")
        if values.isna().any():
            row = int(np.argmax(values.isna().to_numpy()))
            raise DataError(f"{source}: feature column {col!r} has a missing value at row {row}")
        infinite = np.isinf(values.to_numpy(dtype="float64"))
        if infinite.any():
            row = int(np.argmax(infinite))
            raise DataError(f"{source}: feature column {col!r} has an infinite value at row {row} "
                            f"({frame[col].iloc[row]}); features must be finite numbers")
    if frame[target].isna().any():
        row = int(np.argmax(frame[target].isna().to_numpy()))
        raise DataError(f"{source}: target column {target!r} has a missing value at row {row}")
    return list(features)


def scale_mode(scale: bool | str, ndim: int) -> str:
    """The scaling ``scale`` means for data of ``ndim`` dimensions (one of :data:`SCALES`)."""
    if scale is True:
        return "standard" if ndim == 2 else "channel"
    if scale is False:
        return "none"
    if scale not in SCALES:
        raise DataError(f"data.scale must be true, false or one of {', '.join(SCALES)}, "
                        f"got {scale!r}")
    return str(scale)


def _reshape(X: np.ndarray, shape: Sequence[int] | None, source: str) -> np.ndarray:
    if shape is None:
        return X
    shape = tuple(int(d) for d in shape)
    per_sample = int(np.prod(X.shape[1:]))
    if int(np.prod(shape)) != per_sample:
        raise DataError(f"{source}: data.shape {list(shape)} holds {int(np.prod(shape))} values, "
                        f"but each sample has {per_sample} ({X.shape[1:]})")
    return X.reshape(len(X), *shape)


class _Scaler:
    """Fits one of :data:`SCALES` on the training part and applies it to any part."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.scaler: StandardScaler | None = None

    def _rows(self, X: np.ndarray) -> np.ndarray:
        # "standard": one column per feature; "channel": one column per channel.
        return X.reshape(len(X), -1) if self.mode == "standard" else X.reshape(-1, X.shape[-1])

    def fit(self, X: np.ndarray, source: str) -> _Scaler:
        if self.mode == "unit" and len(X) and (X.min() < 0 or X.max() > 255):
            raise DataError(f"{source}: data.scale = 'unit' divides 8-bit images by 255, but the "
                            f"values lie in [{X.min():g}, {X.max():g}]; use 'standard' or "
                            "'channel'")
        if self.mode in ("standard", "channel"):
            self.scaler = StandardScaler().fit(self._rows(X))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.mode == "unit":
            return (X / np.float32(255)).astype("float32")
        if self.scaler is None:
            return X
        return self.scaler.transform(self._rows(X)).reshape(X.shape).astype("float32")


def _load_source(dataset: str | None, csv: str | Path | None, npz: str | Path | None,
                 images: str | Path | None, target: str | None,
                 features: Sequence[str] | None, x_array: str, y_array: str,
                 image_size: Sequence[int] | None, color_mode: str
                 ) -> tuple[np.ndarray, np.ndarray, str, list[str], str, list[str] | None]:
    """X, y, a name for messages, feature names, target name and class names of the source."""
    if sum(v is not None for v in (dataset, csv, npz, images)) != 1:
        raise DataError("the data section needs exactly one of 'dataset', 'csv', 'npz' or "
                        "'images'")
    if npz is not None:
        from .arrays import load_npz

        X, y = load_npz(Path(npz), x_array, y_array)
        return X, y, str(npz), [], y_array, None
    if images is not None:
        from .images import load_image_folder

        X, y, folder = load_image_folder(images, image_size, color_mode)
        return X, y, str(images), [], "class", list(folder.class_names)
    frame, source = load_frame(dataset, csv)
    if target is None:
        if dataset is None:
            raise DataError(f"{source}: data.target is required with data.csv")
        target = _DEFAULT_TARGET[dataset]
    features = _check_columns(frame, source, target, features)
    X = frame[features].apply(pd.to_numeric).to_numpy(dtype="float32")
    return X, frame[target].to_numpy(), source, features, target, None


def load_data(
    *,
    dataset: str | None = None,
    csv: str | Path | None = None,
    npz: str | Path | None = None,
    images: str | Path | None = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    x_array: str = "X",
    y_array: str = "y",
    shape: Sequence[int] | None = None,
    image_size: Sequence[int] | None = None,
    color_mode: str = "rgb",
    test_size: float = 0.2,
    scale: bool | str = True,
    scale_target: bool = False,
    task: str = "regression",
    seed: int = 0,
) -> DataSplit:
    """Load, check, split and scale the data of an experiment.

    Parameters
    ----------
    dataset : str, optional
        A name in :data:`BUNDLED`.
    csv : path, optional
        A CSV file with a header row.
    npz : path, optional
        An ``.npz`` file holding the arrays ``x_array`` and ``y_array``.
    images : path, optional
        A folder with one sub-folder of images per class (see
        :mod:`nn_tuning.images`); the target is each image's class name.
    target : str, optional
        The target column; ``Sales`` for ``advertising``, ``target`` for
        scikit-learn's data sets. Required with ``csv``.
    features : list of str, optional
        Feature columns; every other column by default.
    x_array, y_array : str
        The arrays of an ``npz`` file.
    shape : sequence of int, optional
        Reshape each sample to this shape (``[8, 8, 1]`` makes the digits'
        64 columns 8x8 grey images).
    image_size : (height, width), optional
        Resize every image to this size; without it, the images of a folder
        must share one size.
    color_mode : {"rgb", "grayscale", "rgba"}
        Channels of the loaded images (3, 1 or 4).
    test_size : float, default=0.2
        Fraction held out for the test metrics (stratified for classification).
    scale : bool or str, default=True
        One of :data:`SCALES` (see the module's docstring); ``True`` is
        ``"standard"`` for tables and ``"channel"`` for N-D data, ``False`` is
        ``"none"``. Statistics come from the training part only.
    scale_target : bool, default=False
        Standardise a regression target; CV scores are then on the scaled
        target and test metrics on the original one.
    task : {"regression", "classification"}
    seed : int
        Seeds the test split.

    Returns
    -------
    DataSplit

    Examples
    --------
    >>> split = load_data(dataset="advertising", scale_target=True)
    >>> split.X_train.shape, split.X_test.shape
    ((160, 3), (40, 3))
    >>> load_data(dataset="digits", shape=[8, 8, 1], task="classification").X_train.shape
    (1437, 8, 8, 1)
    """
    X, y, source, features, target, classes = _load_source(
        dataset, csv, npz, images, target, features, x_array, y_array, image_size, color_mode)
    X = _reshape(X, shape, source)
    mode = scale_mode(scale, X.ndim)
    if task == "regression":
        try:
            y = y.astype("float32")
        except (TypeError, ValueError):
            raise DataError(f"{source}: target {target!r} must be numeric for a regression "
                            "builder") from None
    elif scale_target:
        raise DataError(f"{source}: data.scale_target = true only applies to regression, "
                        "not to a classifier builder")
    if not 0 < test_size < 1:
        raise DataError(f"data.test_size must be a number in (0, 1), got {test_size!r}")
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=seed,
            stratify=y if task == "classification" else None)
    except ValueError as exc:
        raise DataError(f"{source}: cannot hold out data.test_size={test_size!r}: {exc}") from None
    del X
    scaler = _Scaler(mode).fit(X_train, source)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    y_scaler = None
    if scale_target:
        y_scaler = StandardScaler().fit(y_train.reshape(-1, 1))
        y_train = y_scaler.transform(y_train.reshape(-1, 1)).ravel().astype("float32")
    logger.info("data %s: %d training and %d test samples of shape %s, scale %s", source,
                len(X_train), len(X_test), X_train.shape[1:], mode)
    return DataSplit(X_train, X_test, y_train, y_test, features, target, source,
                     scaler.scaler, y_scaler, mode, classes)
