"""Experiment data: a bundled data set or a CSV file, split and scaled.

The data section of an experiment names either a bundled data set
(``advertising``, shipped with the package, or one of scikit-learn's
``iris``, ``wine``, ``breast_cancer``, ``digits``, ``diabetes``) or a CSV file
with a target column. :func:`load_data` checks it (target present, numeric
features, no missing values), holds out a test split and fits the scalers on
the training part only.
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

__all__ = ["BUNDLED", "DataSplit", "load_frame", "load_data"]

logger = logging.getLogger("nn_tuning")

_SKLEARN = ("iris", "wine", "breast_cancer", "digits", "diabetes")
#: Names accepted by ``data.dataset``.
BUNDLED = ("advertising", *_SKLEARN)
_DEFAULT_TARGET = {"advertising": "Sales", **{name: "target" for name in _SKLEARN}}


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
        }
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
    if frame[target].isna().any():
        row = int(np.argmax(frame[target].isna().to_numpy()))
        raise DataError(f"{source}: target column {target!r} has a missing value at row {row}")
    return list(features)


def load_data(
    *,
    dataset: str | None = None,
    csv: str | Path | None = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    test_size: float = 0.2,
    scale: bool = True,
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
    target : str, optional
        The target column; ``Sales`` for ``advertising``, ``target`` for
        scikit-learn's data sets. Required with ``csv``.
    features : list of str, optional
        Feature columns; every other column by default.
    test_size : float, default=0.2
        Fraction held out for the test metrics (stratified for classification).
    scale : bool, default=True
        Standardise the features (statistics of the training part only).
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
    """
    frame, source = load_frame(dataset, csv)
    if target is None:
        if dataset is None:
            raise DataError(f"{source}: data.target is required with data.csv")
        target = _DEFAULT_TARGET[dataset]
    features = _check_columns(frame, source, target, features)
    X = frame[features].apply(pd.to_numeric).to_numpy(dtype="float32")
    y = frame[target].to_numpy()
    if task == "regression":
        try:
            y = y.astype("float32")
        except (TypeError, ValueError):
            raise DataError(f"{source}: target column {target!r} must be numeric for a regression "
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
    x_scaler = y_scaler = None
    if scale:
        x_scaler = StandardScaler().fit(X_train)
        X_train = x_scaler.transform(X_train).astype("float32")
        X_test = x_scaler.transform(X_test).astype("float32")
    if scale_target:
        y_scaler = StandardScaler().fit(y_train.reshape(-1, 1))
        y_train = y_scaler.transform(y_train.reshape(-1, 1)).ravel().astype("float32")
    logger.info("data %s: %d training and %d test rows, %d features", source, len(X_train),
                len(X_test), len(features))
    return DataSplit(X_train, X_test, y_train, y_test, features, target, source,
                     x_scaler, y_scaler)
