"""``model.fit`` settings of a run: ``tune(fit=...)`` and a config's ``[training.fit]`` table.

:func:`check_fit` checks a ``fit`` mapping against the data before anything
is written and returns it normalised; :func:`estimator_args` is what the
estimator wrapper takes (everything but ``sample_weight``, which travels with
the data: each fold fits on its own training rows' weights, the refit on all
of them); :func:`fit_identity` is the part of a run's fingerprint it makes.
:func:`parse_fit_table` and :func:`fit_from_table` read ``[training.fit]``,
where a callback is written as ``early_stopping = {...}`` or
``reduce_lr_on_plateau = {...}`` (the keyword arguments of
``keras.callbacks.EarlyStopping`` or ``ReduceLROnPlateau``): a TOML file
cannot hold one.

Which settings the stacked engine trains (:data:`STACKED`) and which send a
configuration to the per-configuration path is said in
:meth:`nn_tuning.wrappers.KerasRegressor.stacking_obstacle`.

>>> sorted(check_fit({"shuffle": False}, n_rows=4, task="regression"))
['shuffle']
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from .exceptions import ConfigError

__all__ = ["FIT_KEYS", "STACKED", "TABLE_KEYS", "check_fit", "estimator_args", "fit_from_table",
           "fit_identity", "parse_fit_table", "row_weights"]

#: The ``model.fit`` arguments ``tune(fit=...)`` takes.
FIT_KEYS = ("validation_split", "callbacks", "class_weight", "shuffle", "sample_weight")
#: Those the stacked engine trains as ``model.fit`` does (the others fall back).
STACKED = ("class_weight", "sample_weight", "shuffle")
#: The keys of a config's ``[training.fit]`` table.
TABLE_KEYS = ("validation_split", "class_weight", "shuffle", "early_stopping",
              "reduce_lr_on_plateau")
#: The callbacks a ``[training.fit]`` table writes as tables of their arguments.
_CALLBACKS = {"early_stopping": "EarlyStopping", "reduce_lr_on_plateau": "ReduceLROnPlateau"}


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_fit(fit: Mapping[str, Any] | None, *, n_rows: int, task: str,
              y: np.ndarray | None = None, where: str = "fit") -> dict[str, Any]:
    """``fit`` checked and normalised, or a one-line ConfigError naming the key and value.

    ``n_rows`` and ``y`` are the run's data (``sample_weight`` is one weight
    per row; ``class_weight``'s labels are ``y``'s classes); ``task`` refuses
    class weights for regression. ``where`` names the mapping in messages.
    """
    if fit is None:
        return {}
    if not isinstance(fit, Mapping):
        raise ConfigError(f"{where} must be a mapping of model.fit settings "
                          f"({', '.join(FIT_KEYS)}), got {fit!r}")
    out: dict[str, Any] = {}
    for key, value in fit.items():
        if key not in FIT_KEYS:
            raise ConfigError(f"unknown {where} setting {key!r}; allowed: {', '.join(FIT_KEYS)}")
        out[key] = _CHECKS[key](value, f"{where}.{key}", n_rows=n_rows, task=task, y=y)
    return out


def _validation_split(value: Any, name: str, **_: Any) -> float:
    if not _number(value) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _shuffle(value: Any, name: str, **_: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _callbacks(value: Any, name: str, **_: Any) -> list[Any]:
    import keras

    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of keras.callbacks.Callback, got {value!r}")
    for cb in value:
        if not isinstance(cb, keras.callbacks.Callback):
            raise ConfigError(f"{name} must be a list of keras.callbacks.Callback, "
                              f"got an item {cb!r}")
    return list(value)


def _class_weight(value: Any, name: str, *, task: str, y: np.ndarray | None,
                  **_: Any) -> str | dict[Any, float]:
    if task != "classification":
        raise ConfigError(f"{name} is for classification only, got {value!r} for a "
                          f"{task} task")
    if isinstance(value, str):
        if value != "balanced":
            raise ConfigError(f"{name} must be 'balanced' or a mapping label -> weight, "
                              f"got {value!r}")
        return value
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{name} must be 'balanced' or a mapping label -> weight, "
                          f"got {value!r}")
    classes = [] if y is None else list(np.unique(y))
    by_text = {str(c): c for c in classes}
    out = {}
    for label, weight in value.items():
        if not _number(weight) or not np.isfinite(weight) or weight < 0:
            raise ConfigError(f"{name}[{label!r}] must be a finite number >= 0, got {weight!r}")
        if classes:
            if str(label) not in by_text:  # a TOML table's keys are strings: match by text
                raise ConfigError(f"{name} has label {label!r}, which is not a class of y; "
                                  f"classes: {', '.join(map(str, classes))}")
            label = by_text[str(label)]
            label = label.item() if isinstance(label, np.generic) else label
        out[label] = float(weight)
    return out


def _sample_weight(value: Any, name: str, *, n_rows: int, **_: Any) -> np.ndarray:
    try:
        w = np.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be numbers, one per row of X, got {value!r}") from None
    if w.ndim != 1 or len(w) != n_rows:
        raise ConfigError(f"{name} must be 1-D with one weight per row of X ({n_rows}), "
                          f"got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        bad = int(np.argwhere(~(np.isfinite(w) & (w >= 0)))[0][0])
        raise ConfigError(f"{name} must be finite and >= 0, got {float(w[bad])!r} at row {bad}")
    return w


_CHECKS = {"validation_split": _validation_split, "callbacks": _callbacks,
           "class_weight": _class_weight, "shuffle": _shuffle, "sample_weight": _sample_weight}


def estimator_args(fit: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the estimator wrapper holds (``sample_weight`` goes with the data)."""
    return {k: v for k, v in fit.items() if k != "sample_weight"}


def row_weights(fit_params: Mapping[str, Any], sample_weight: np.ndarray | None,
                y: np.ndarray) -> np.ndarray | None:
    """One fit's per-row loss weights: ``sample_weight`` times the class weights of ``y``.

    What a fit on ``(X, y)`` with these settings weighs each row by (the
    estimator turns ``class_weight`` into sample weights with scikit-learn's
    ``compute_sample_weight`` on the fit's own ``y``, ``"balanced"`` too); None
    when neither is set.
    """
    from sklearn.utils.class_weight import compute_sample_weight

    class_weight = fit_params.get("class_weight")
    if class_weight is None and sample_weight is None:
        return None
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, "float64")
    if class_weight is not None:
        w = w * compute_sample_weight(class_weight, y)
    return w


def _callback_identity(cb: Any) -> dict[str, Any]:
    """A callback as its class and its plain constructor settings (never its state)."""
    names = [n for n in inspect.signature(type(cb).__init__).parameters if n != "self"]
    settings = {n: getattr(cb, n) for n in names if hasattr(cb, n)
                and isinstance(getattr(cb, n), (str, int, float, bool, type(None)))}
    return {"class": f"{type(cb).__module__}.{type(cb).__qualname__}", **settings}


def fit_identity(fit: Mapping[str, Any]) -> dict[str, Any]:
    """What the checked ``fit`` settings make of a run's identity (plain JSON values)."""
    out: dict[str, Any] = {}
    for key, value in sorted(fit.items()):
        if key == "sample_weight":
            out[key] = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        elif key == "callbacks":
            out[key] = [_callback_identity(cb) for cb in value]
        elif key == "class_weight" and isinstance(value, Mapping):
            out[key] = sorted((str(k), v) for k, v in value.items())
        else:
            out[key] = value
    return out


def _callback_args(source: str, key: str, value: Any) -> dict[str, Any]:
    import keras

    name, cls = f"training.fit.{key}", getattr(keras.callbacks, _CALLBACKS[key])
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {name} must be a table of keras.callbacks.{cls.__name__} "
                          f"arguments, got {value!r}")
    allowed = [n for n in inspect.signature(cls.__init__).parameters
               if n not in ("self", "kwargs")]
    for arg in value:
        if arg not in allowed:
            raise ConfigError(f"{source}: unknown key '{name}.{arg}'; allowed: "
                              f"{', '.join(allowed)}")
    try:
        cls(**value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {name} {dict(value)!r}: {exc}") from None
    return dict(value)


def parse_fit_table(source: str, table: Any, task: str) -> dict[str, Any]:
    """A config's ``[training.fit]`` table checked (a one-line ConfigError naming
    ``training.fit.<key>`` and the value), as plain data."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: training.fit must be a table, got {table!r}")
    for key in table:
        if key not in TABLE_KEYS:
            raise ConfigError(f"{source}: unknown key 'training.fit.{key}'; allowed: "
                              f"{', '.join(TABLE_KEYS)}")
    out = dict(table)
    plain = {k: v for k, v in table.items() if k not in _CALLBACKS}
    try:
        check_fit(plain, n_rows=0, task=task, where="training.fit")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for key in _CALLBACKS:
        if key in table:
            out[key] = _callback_args(source, key, table[key])
    return out


def fit_from_table(table: Mapping[str, Any]) -> dict[str, Any] | None:
    """``tune()``'s ``fit`` from a checked ``[training.fit]`` table (a new callback each call)."""
    if not table:
        return None
    import keras

    fit = {k: v for k, v in table.items() if k not in _CALLBACKS}
    callbacks = [getattr(keras.callbacks, _CALLBACKS[k])(**v) for k, v in table.items()
                 if k in _CALLBACKS]  # in the table's order, as Keras runs a list
    if callbacks:
        fit["callbacks"] = callbacks
    return fit
