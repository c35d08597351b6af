"""How big a configuration's network is: its number of trainable parameters.

Counted once, when a configuration is trained, and kept with its trial in the
store, so that reports (score against size, the smallest good network) never
need TensorFlow or a model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["trainable_params", "configuration_params", "count_for"]

logger = logging.getLogger("nn_tuning")


def trainable_params(model: Any) -> int:
    """The number of trainable weights of a built ``keras.Model``."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def configuration_params(estimator: Any, X: Any, y: Any) -> int | None:
    """Trainable parameters of ``estimator``'s model, built without training.

    ``estimator`` is an unfitted nn-tuning wrapper set to one configuration;
    scikeras' ``initialize`` builds its model for the shapes of ``X`` and
    ``y``. None (unknown) when building fails: the trial's own training
    reports that failure.
    """
    try:
        return trainable_params(estimator.initialize(X, y).model_)
    except Exception as exc:  # a broken configuration fails its trial, not the count
        logger.debug("cannot count the parameters of %s: %s", estimator, exc)
        return None


def count_for(protocol: Any, params: Mapping[str, Any], X: Any, y: Any) -> int | None:
    """Trainable parameters of configuration ``params`` of ``protocol``."""
    try:
        estimator = protocol.estimator_for(params)
    except Exception:  # unknown parameter names: the trial itself fails on them
        return None
    return configuration_params(estimator, X, y)
