"""The argument checks every layer shares: one wording, one place.

A leaf module (it imports only :mod:`nn_tuning.exceptions`), so the CLI, the
config parser and the library check integers and numbers the same way without
importing TensorFlow. ``model_builders`` keeps its own checks: it imports
nothing from nn-tuning.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import ConfigError

__all__ = ["check_int", "check_keys", "check_seconds", "in_source"]


def check_int(name: str, value: Any, low: int = 1) -> int:
    """``value`` as an int, or a one-line ConfigError unless it is an integer >= ``low``.

    >>> check_int("epochs", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_seconds(name: str, value: Any) -> float:
    """``value`` as a float, or a one-line ConfigError unless it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_keys(source: str, where: str, keys: Iterable[str], allowed: Iterable[str]) -> None:
    """A one-line ConfigError naming ``source`` and the first of ``keys`` not ``allowed``.

    ``where`` prefixes the key (``"data."``) as the config spells it.
    """
    allowed = list(allowed)
    for key in keys:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {where + key!r}; allowed: "
                              f"{', '.join(allowed) or 'none'}")


def in_source(source: str, check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``; its ConfigError names ``source`` (the config file) too."""
    try:
        return check(*args)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
