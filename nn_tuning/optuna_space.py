"""The search space in Optuna's terms: distributions, stored values, and back.

One translation for everything that talks to Optuna: the samplers of
successive halving (:mod:`nn_tuning.strategies.asha`) and the studies behind
the report's importance plots and ``nn-tune export`` (:mod:`nn_tuning.report`).
``Int`` becomes ``IntDistribution``, ``Float`` ``FloatDistribution``,
``Choice`` and ``Fixed`` ``CategoricalDistribution``; values Optuna's
categorical distributions cannot hold (tuples such as ``hidden_layers =
[8, 8]``) are stored as their JSON text.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from .space import Choice, Entry, Fixed, Float, Int, SearchSpace

__all__ = ["distribution", "distributions", "from_optuna", "optuna_value", "quiet_optuna"]


def optuna_value(value: Any) -> Any:
    """A hyperparameter value as Optuna stores it: scalars as they are, sequences as JSON."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # NumPy scalars
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def distribution(entry: Entry) -> Any:
    """The Optuna distribution of one search-space entry (None for an unknown kind)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(entry, Int):
        high = entry.low + (entry.high - entry.low) // entry.step * entry.step
        return IntDistribution(entry.low, high, log=entry.log, step=entry.step)
    if isinstance(entry, Float):
        if entry.step is not None:
            n = math.floor((entry.high - entry.low) / entry.step + 1e-9)
            return FloatDistribution(entry.low, entry.low + n * entry.step, step=entry.step)
        return FloatDistribution(entry.low, entry.high, log=entry.log)
    if isinstance(entry, Choice):
        return CategoricalDistribution([optuna_value(v) for v in entry.values])
    if isinstance(entry, Fixed):
        return CategoricalDistribution([optuna_value(entry.value)])
    return None


def distributions(space: SearchSpace) -> dict[str, Any]:
    """Every entry of ``space`` as an Optuna distribution."""
    return {name: distribution(entry) for name, entry in space.items()}


def from_optuna(space: SearchSpace, values: Mapping[str, Any]) -> dict[str, Any]:
    """Builder arguments from the values an Optuna trial holds (the inverse of :func:`distributions`)."""
    out = {}
    for name, entry in space.items():
        value = values[name]
        if isinstance(entry, Choice):
            stored = [optuna_value(v) for v in entry.values]
            value = entry.values[stored.index(value)]
        elif isinstance(entry, Fixed):
            value = entry.value
        elif isinstance(entry, Int):
            value = int(value)
        else:
            value = float(value)
        out[name] = value
    return out


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO messages ("A new study created ...") off, and back as they were."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
