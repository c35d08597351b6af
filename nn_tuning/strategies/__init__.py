"""The search strategies, one module each, all run on one search space.

:data:`STRATEGIES` is the one registry: strategy name -> class. Its names are
known without importing any strategy (so ``nn-tune report`` and the config
parser need neither TensorFlow nor keras-tuner); a class is imported when it
is first looked up. A new strategy is a :class:`~nn_tuning.strategies.base.Strategy`
subclass in its own module, registered in :data:`_REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import Any

from ..exceptions import ConfigError

# name -> (module, class), in the order reports list them.
_REGISTRY: dict[str, tuple[str, str]] = {
    "manual": ("manual", "ManualSearch"),
    "grid": ("sklearn_search", "GridSearch"),
    "random": ("sklearn_search", "RandomSearch"),
    "bayesian": ("keras_tuner_search", "BayesianSearch"),
    "hyperband": ("keras_tuner_search", "HyperbandSearch"),
    "asha": ("asha", "AshaSearch"),
}

#: What ``tune(max_seconds=...)`` runs when no strategy is named: successive halving
#: inside the stack gave the best test RMSE for the time in experiments/bench_quality.py
#: (README, "The best network for the time you have").
TIME_BUDGET_STRATEGY = "asha"

#: The strategies whose trials keras-tuner's oracles propose (chief/worker mode).
KERAS_TUNER_STRATEGIES = ("bayesian", "hyperband")


def unknown_strategy(name: object) -> ConfigError:
    """The one wording of an unknown strategy name."""
    return ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(_REGISTRY)}")


class _Registry(Mapping):
    """Strategy name -> class, importing a strategy's module on first lookup."""

    def __getitem__(self, name: str) -> type:
        try:
            module, cls = _REGISTRY[name]
        except (KeyError, TypeError):
            raise KeyError(name) from None
        return getattr(import_module(f".{module}", __name__), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return f"STRATEGIES({', '.join(_REGISTRY)})"


STRATEGIES: Mapping[str, type] = _Registry()


def strategy_class(name: object) -> type:
    """The strategy class called ``name``, or a ConfigError listing the known ones."""
    try:
        return STRATEGIES[name]  # type: ignore[index]
    except KeyError:
        raise unknown_strategy(name) from None


def get_strategy(name: object) -> Any:
    """A strategy instance called ``name``, or a ConfigError listing the known ones."""
    return strategy_class(name)()


_LAZY = {
    "SearchContext": "base", "Strategy": "base", "BudgetSpent": "base",
    "ManualSearch": "manual", "GridSearch": "sklearn_search", "RandomSearch": "sklearn_search",
    "BayesianSearch": "keras_tuner_search", "HyperbandSearch": "keras_tuner_search",
    "AshaSearch": "asha",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KERAS_TUNER_STRATEGIES", "STRATEGIES", "TIME_BUDGET_STRATEGY", "get_strategy", "strategy_class",
           "unknown_strategy", *_LAZY]
