"""The search strategies, one module each, all run on one search space.

:data:`STRATEGIES` is the one registry: strategy name -> class, in the order
reports list them. Its names are known without importing any strategy; a
class is imported when it is first looked up. Everything strategy-specific is
asked of the class (:class:`~nn_tuning.strategies.base.Strategy` lists what),
so a new strategy is a subclass in its own module plus one registry entry:
one line in :data:`_BUILTIN` here, or one :func:`register_strategy` call
from any package.

Examples
--------
>>> from nn_tuning.strategies import STRATEGIES
>>> list(STRATEGIES)[:3]
['manual', 'grid', 'random']
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import Any

from ..exceptions import ConfigError

# name -> "module:Class", in the order reports list them.
_BUILTIN: dict[str, str] = {
    "manual": "nn_tuning.strategies.manual:ManualSearch",
    "grid": "nn_tuning.strategies.sklearn_search:GridSearch",
    "random": "nn_tuning.strategies.sklearn_search:RandomSearch",
    "bayesian": "nn_tuning.strategies.keras_tuner_search:BayesianSearch",
    "hyperband": "nn_tuning.strategies.keras_tuner_search:HyperbandSearch",
    "asha": "nn_tuning.strategies.asha:AshaSearch",
}

# name -> a class, or "module:Class" until it is first looked up.
_REGISTRY: dict[str, Any] = dict(_BUILTIN)
_NAME = re.compile(r"[a-z][a-z0-9_]*")

#: What ``tune(max_seconds=...)`` runs when no strategy is named: successive halving
#: inside the stack (README, "The best network for the time you have").
TIME_BUDGET_STRATEGY = "asha"


def unknown_strategy(name: object) -> ConfigError:
    """The one wording of an unknown strategy name."""
    return ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(_REGISTRY)}")


def _load(name: str, target: Any) -> type:
    from .base import Strategy

    cls = target
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"strategy {name!r}: cannot import {target!r} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"strategy {name!r} must be a Strategy subclass, got {cls!r}")
    if getattr(cls, "name", None) != name:
        raise ConfigError(f"strategy {name!r}: the class {cls.__qualname__} is named "
                          f"{getattr(cls, 'name', None)!r}; set name = {name!r}")
    return cls


def register_strategy(name: str, strategy: type | str) -> None:
    """Make a strategy known to ``tune()``, configs, the CLI, the report and the conformance tests.

    Parameters
    ----------
    name : str
        Its name: lower case letters, digits and ``_``, starting with a
        letter; it must equal the class's ``name``.
    strategy : type or str
        A :class:`~nn_tuning.strategies.base.Strategy` subclass, or its import
        path ``"package.module:Class"``, imported when the strategy is first
        looked up (so that listing names stays cheap).

    Raises
    ------
    ConfigError
        A malformed name, a name already registered for another class, or a
        class that is no Strategy named ``name``.

    Examples
    --------
    >>> from nn_tuning import register_strategy
    >>> register_strategy("manual", "nn_tuning.strategies.manual:ManualSearch")  # already so
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"strategy name must be lower case letters, digits and _, starting "
                          f"with a letter, got {name!r}")
    if isinstance(strategy, str):
        if not re.fullmatch(r"[\w.]+:\w+", strategy):
            raise ConfigError(f"strategy {name!r} must be a Strategy subclass or "
                              f"'package.module:Class', got {strategy!r}")
    else:
        strategy = _load(name, strategy)
    current = _REGISTRY.get(name)
    if current is not None and _path(current) != _path(strategy):
        raise ConfigError(f"strategy {name!r} is already registered as {_path(current)!r}; "
                          "choose another name")
    if current is None or not isinstance(current, type):
        _REGISTRY[name] = strategy


def _path(strategy: type | str) -> str:
    return strategy if isinstance(strategy, str) else f"{strategy.__module__}:{strategy.__qualname__}"


def unregister_strategy(name: str) -> None:
    """Forget a strategy registered with :func:`register_strategy` (built-in ones stay)."""
    if name in _BUILTIN:
        raise ConfigError(f"strategy {name!r} is built in and cannot be unregistered")
    _REGISTRY.pop(name, None)


class _Registry(Mapping):
    """Strategy name -> class, importing a strategy's module on first lookup."""

    def __getitem__(self, name: str) -> type:
        try:
            target = _REGISTRY[name]
        except (KeyError, TypeError):
            raise KeyError(name) from None
        if not isinstance(target, type):
            target = _REGISTRY[name] = _load(name, target)
        return target

    def __iter__(self) -> Iterator[str]:
        return iter(list(_REGISTRY))

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


def supporting(attribute: str, value: Any) -> list[str]:
    """The registered strategies whose class attribute ``attribute`` holds ``value``
    (a member of a set, or equal), in registry order."""
    found = []
    for name in list(_REGISTRY):
        held = getattr(STRATEGIES[name], attribute)
        if value in held if isinstance(held, (set, frozenset)) else held == value:
            found.append(name)
    return found


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


__all__ = ["STRATEGIES", "TIME_BUDGET_STRATEGY", "get_strategy", "register_strategy",
           "strategy_class", "supporting", "unknown_strategy", "unregister_strategy", *_LAZY]
