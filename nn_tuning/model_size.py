"""How big a configuration's network is: its number of trainable parameters.

Counted when a configuration is trained, from the model it trained, and kept
with its trial in the store, so that reports (score against size, the
smallest good network) never need TensorFlow or a model. scikit-learn's
searches discard their fitted estimators, so there the count travels as a
second "score" of each fold (scikit-learn's multi-metric scoring), computed
on the fitted model where it was trained: no extra model is built.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["trainable_params", "SIZE_SCORING", "size_from_results"]


def trainable_params(model: Any) -> int:
    """The number of trainable weights of a built ``keras.Model``."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def _size_scorer(estimator: Any, X: Any, y: Any) -> float:
    return float(trainable_params(estimator.model_))


#: Extra ``scoring`` entry for scikit-learn's searches: the fitted model's size.
SIZE_SCORING = {"n_params": _size_scorer}


def size_from_results(results: dict[str, Any], index: int) -> int | None:
    """The size of candidate ``index`` from a search's ``cv_results_``; None if unknown."""
    column = results.get("split0_test_n_params")
    if column is None:
        return None
    value = float(column[index])
    return int(value) if math.isfinite(value) else None
