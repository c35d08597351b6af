"""nn-tuning: tune the hyperparameters of Keras models with one search space and
five strategies (manual, grid, random, Bayesian, Hyperband) under one
evaluation protocol.

>>> from nn_tuning import SearchSpace, Choice, Float, tune
"""

from __future__ import annotations

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
from .strategies import STRATEGIES
from .tune import tune
from .wrappers import KerasClassifier, KerasRegressor

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
    "tune",
]
