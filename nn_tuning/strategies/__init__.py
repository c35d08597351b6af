"""The search strategies, one module each, all run on one search space."""

from __future__ import annotations

from ..exceptions import ConfigError
from .base import SearchContext, Strategy
from .keras_tuner_search import BayesianSearch, HyperbandSearch
from .manual import ManualSearch
from .sklearn_search import GridSearch, RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (ManualSearch, GridSearch, RandomSearch, BayesianSearch, HyperbandSearch)
}

# The strategies whose trials keras-tuner's oracles propose (chief/worker mode).
KERAS_TUNER_STRATEGIES = (BayesianSearch.name, HyperbandSearch.name)


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``, or a ConfigError listing the known ones."""
    try:
        return STRATEGIES[name]()
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None


__all__ = ["KERAS_TUNER_STRATEGIES", "STRATEGIES", "SearchContext", "Strategy", "get_strategy",
           "BayesianSearch", "GridSearch", "HyperbandSearch", "ManualSearch", "RandomSearch"]
