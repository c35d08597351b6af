"""nn-tuning: tune the hyperparameters of Keras models with one search space and
five strategies (manual, grid, random, Bayesian, Hyperband) under one
evaluation protocol.

>>> from nn_tuning import SearchSpace, Choice, Float, tune

Importing the package has no side effects: TensorFlow, Keras and scikeras
(which patches ``keras.Model`` when imported) load only when :func:`tune` or
a wrapper is first used.
"""

from __future__ import annotations

import sys as _sys
import types as _types
from importlib import import_module as _import_module
from typing import Any as _Any

from .exceptions import (
    AllTrialsFailedError,
    ConfigError,
    DataError,
    NNTuningError,
    SearchSpaceError,
    StoreError,
    TrialFailedError,
)
from .result import Trial, TrialState, TuningResult
from .space import Choice, Fixed, Float, Int, SearchSpace
from .strategies import STRATEGIES, register_strategy

# Public names whose modules import TensorFlow: loaded on first use.
_LAZY = {"tune": "tune", "KerasClassifier": "wrappers", "KerasRegressor": "wrappers"}


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        value = getattr(_import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(_types.ModuleType):
    """``nn_tuning.tune`` is the function: importing the submodule of that name
    (which sets the package attribute) must not replace it."""

    def __setattr__(self, name: str, value: _Any) -> None:
        if name in _LAZY and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = [
    "AllTrialsFailedError",
    "Choice",
    "ConfigError",
    "DataError",
    "Fixed",
    "Float",
    "Int",
    "KerasClassifier",
    "KerasRegressor",
    "NNTuningError",
    "STRATEGIES",
    "SearchSpace",
    "SearchSpaceError",
    "StoreError",
    "Trial",
    "TrialFailedError",
    "TrialState",
    "TuningResult",
    "register_strategy",
    "tune",
]
