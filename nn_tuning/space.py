"""Search spaces: what is searched, declared once and run by every strategy.

Entries are immutable values validated at construction. They compare by value,
round-trip through JSON and translate to a scikit-learn parameter grid, to
scipy distributions for ``RandomizedSearchCV`` and to keras-tuner
hyperparameters.

>>> space = SearchSpace(neurons=Choice([5, 10]), learning_rate=Float(1e-4, 1e-1, log=True))
>>> SearchSpace.from_json(space.to_json()) == space
True
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from .exceptions import SearchSpaceError

__all__ = ["Choice", "Fixed", "Float", "Int", "SearchSpace", "Entry"]

_SCALARS = (bool, int, float, str)


def _freeze(value: Any, where: str) -> Any:
    """Turn lists into tuples recursively and check the value is JSON-able."""
    if value is None or isinstance(value, _SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise SearchSpaceError(f"{where} must be finite, got {value!r}")
        return value
    if isinstance(value, np.generic):
        return _freeze(value.item(), where)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, where) for v in value)
    raise SearchSpaceError(
        f"{where} must be a number, string, bool, None or a list of them, got {value!r}"
    )


def _thaw(value: Any) -> Any:
    """JSON has no tuples: give back lists as tuples (the frozen form)."""
    return tuple(_thaw(v) for v in value) if isinstance(value, list) else value


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Entry:
    """Base class of search-space entries."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def grid_values(self, name: str) -> list[Any]:
        """The points a grid search visits."""
        raise NotImplementedError

    def distribution(self, name: str) -> Any:
        """A list or a scipy distribution for ``ParameterSampler``."""
        raise NotImplementedError

    def declare(self, hp: Any, name: str) -> None:
        """Declare this entry on a keras-tuner ``HyperParameters`` object."""
        raise NotImplementedError

    def decode(self, value: Any) -> Any:
        """Turn a keras-tuner value back into the builder's value."""
        return value


@dataclass(frozen=True)
class Int(Entry):
    """Integers from ``low`` to ``high`` inclusive, every ``step``, optionally on a log scale."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    kind: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        for field in ("low", "high", "step"):
            value = getattr(self, field)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise SearchSpaceError(f"Int {field} must be an integer, got {value!r}")
        if self.low > self.high:
            raise SearchSpaceError(
                f"Int needs low <= high, got (low={self.low!r}, high={self.high!r})"
            )
        if self.step < 1:
            raise SearchSpaceError(f"Int step must be >= 1, got {self.step!r}")
        if self.log and (self.low < 1 or self.step != 1):
            raise SearchSpaceError(
                f"Int with log=True needs low >= 1 and step=1, got (low={self.low!r}, step={self.step!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "low": self.low, "high": self.high, "step": self.step, "log": self.log}

    def grid_values(self, name: str) -> list[Any]:
        return list(range(self.low, self.high + 1, self.step))

    def distribution(self, name: str) -> Any:
        if self.log:
            return _LogUniformInt(self.low, self.high)
        if self.step == 1:
            return stats.randint(self.low, self.high + 1)
        return self.grid_values(name)

    def declare(self, hp: Any, name: str) -> None:
        hp.Int(name, self.low, self.high, step=self.step, sampling="log" if self.log else "linear")


@dataclass(frozen=True)
class Float(Entry):
    """Real numbers in ``[low, high]``, optionally on a log scale or every ``step``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    kind: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        for field in ("low", "high"):
            value = getattr(self, field)
            if not _is_real(value) or not math.isfinite(value):
                raise SearchSpaceError(f"Float {field} must be a finite number, got {value!r}")
        if self.low > self.high:
            raise SearchSpaceError(
                f"Float needs low <= high, got (low={self.low!r}, high={self.high!r})"
            )
        if self.log and self.low <= 0:
            raise SearchSpaceError(f"Float with log=True needs low > 0, got low={self.low!r}")
        if self.step is not None and (not _is_real(self.step) or self.step <= 0):
            raise SearchSpaceError(f"Float step must be a number > 0, got {self.step!r}")
        if self.step is not None and self.log:
            raise SearchSpaceError("Float takes either step or log=True, not both")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "low": self.low, "high": self.high, "log": self.log, "step": self.step}

    def grid_values(self, name: str) -> list[Any]:
        if self.step is None:
            raise SearchSpaceError(
                f"search space entry {name!r} is a continuous Float({self.low}, {self.high}); "
                "a grid search needs grid points: use Choice([...]) or give Float a step"
            )
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [float(self.low + i * self.step) for i in range(n)]

    def distribution(self, name: str) -> Any:
        if self.step is not None:
            return self.grid_values(name)
        if self.log:
            return stats.loguniform(self.low, self.high)
        return stats.uniform(self.low, self.high - self.low)

    def declare(self, hp: Any, name: str) -> None:
        hp.Float(
            name, float(self.low), float(self.high), step=self.step,
            sampling="log" if self.log else "linear",
        )


@dataclass(frozen=True)
class Choice(Entry):
    """One of a list of values (numbers, strings, bools, None, or tuples of them)."""

    values: tuple[Any, ...]
    kind: ClassVar[str] = "choice"

    def __init__(self, values: Any) -> None:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise SearchSpaceError(f"Choice needs a list of values, got {values!r}")
        frozen = tuple(_freeze(v, "Choice value") for v in values)
        if not frozen:
            raise SearchSpaceError("Choice needs at least one value, got []")
        if len(set(map(repr, frozen))) != len(frozen):
            raise SearchSpaceError(f"Choice values must be distinct, got {list(values)!r}")
        object.__setattr__(self, "values", frozen)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "values": list(self.values)}

    def grid_values(self, name: str) -> list[Any]:
        return list(self.values)

    def distribution(self, name: str) -> Any:
        return list(self.values)

    def _native(self) -> bool:
        # keras-tuner's Choice takes scalars of one type only.
        types = {type(v) for v in self.values}
        return len(types) == 1 and types.pop() in _SCALARS

    def declare(self, hp: Any, name: str) -> None:
        if self._native():
            hp.Choice(name, list(self.values))
        else:
            hp.Choice(name, [json.dumps(v) for v in self.values])

    def decode(self, value: Any) -> Any:
        return value if self._native() else _thaw(json.loads(value))


@dataclass(frozen=True)
class Fixed(Entry):
    """A value that is not searched but recorded with the space."""

    value: Any
    kind: ClassVar[str] = "fixed"

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "value", _freeze(value, "Fixed value"))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "value": self.value}

    def grid_values(self, name: str) -> list[Any]:
        return [self.value]

    def distribution(self, name: str) -> Any:
        return [self.value]

    def declare(self, hp: Any, name: str) -> None:
        if isinstance(self.value, _SCALARS):
            hp.Fixed(name, self.value)
        else:
            hp.Fixed(name, json.dumps(self.value))

    def decode(self, value: Any) -> Any:
        return value if isinstance(self.value, _SCALARS) else _thaw(json.loads(value))


class _LogUniformInt:
    """Integers drawn log-uniformly in [low, high]: an ``rvs`` for ParameterSampler."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._dist = stats.loguniform(low, high + 1)

    def rvs(self, size: Any = None, random_state: Any = None) -> Any:
        draw = np.floor(self._dist.rvs(size=size, random_state=random_state)).astype(int)
        return np.clip(draw, self.low, self.high) if size is not None else int(min(draw, self.high))


_KINDS: dict[str, type[Entry]] = {cls.kind: cls for cls in (Int, Float, Choice, Fixed)}


def entry_from_dict(data: Mapping[str, Any], name: str = "entry") -> Entry:
    """Build an entry from its ``to_dict`` form (as read from JSON or TOML)."""
    if not isinstance(data, Mapping) or "type" not in data:
        raise SearchSpaceError(f"search space entry {name!r} needs a 'type', got {data!r}")
    kind = data["type"]
    if kind not in _KINDS:
        raise SearchSpaceError(
            f"search space entry {name!r} has unknown type {kind!r}; use one of {sorted(_KINDS)}"
        )
    args = {k: v for k, v in data.items() if k != "type"}
    if kind == "choice":
        args["values"] = [_thaw(v) for v in args.get("values", [])]
    try:
        return _KINDS[kind](**args)
    except TypeError as exc:
        raise SearchSpaceError(f"search space entry {name!r}: {exc}") from None
    except SearchSpaceError as exc:
        raise SearchSpaceError(f"search space entry {name!r}: {exc}") from None


def as_entry(value: Any, name: str) -> Entry:
    """Coerce a plain value: a list becomes a Choice, a scalar a Fixed."""
    if isinstance(value, Entry):
        return value
    if isinstance(value, Mapping):
        return entry_from_dict(value, name)
    if isinstance(value, (list, tuple)):
        return Choice(value)
    return Fixed(value)


class SearchSpace(Mapping[str, Entry]):
    """An immutable mapping of hyperparameter names to entries.

    Names are the builder's keyword arguments; ``epochs`` and ``batch_size``
    may be searched too and go to training instead.

    Parameters
    ----------
    entries : mapping, optional
        Names to entries, or to plain values (a list is a :class:`Choice`,
        a scalar a :class:`Fixed`).
    **kwargs
        More entries.

    Examples
    --------
    >>> space = SearchSpace(neurons=Choice([5, 10, 25]), n_layers=Int(1, 3))
    >>> len(space.to_sklearn_grid()["model__neurons"])
    3
    """

    TRAINING_PARAMS: ClassVar[frozenset[str]] = frozenset({"epochs", "batch_size"})

    def __init__(self, entries: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        merged = dict(entries or {})
        merged.update(kwargs)
        if not merged:
            raise SearchSpaceError("the search space is empty: give at least one hyperparameter")
        built = {}
        for name, value in merged.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise SearchSpaceError(f"search space names must be identifiers, got {name!r}")
            built[name] = as_entry(value, name)
        self._entries: dict[str, Entry] = built

    # Mapping protocol
    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._entries.items())
        return f"SearchSpace({inner})"

    # Serialisation
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: entry.to_dict() for name, entry in self._entries.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(data, Mapping):
            raise SearchSpaceError(f"a search space must be a table of entries, got {data!r}")
        return cls({name: entry_from_dict(d, name) if isinstance(d, Mapping) else d
                    for name, d in data.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        return cls.from_dict(json.loads(text))

    # Translations
    @classmethod
    def param_key(cls, name: str) -> str:
        """The scikeras parameter a hyperparameter is routed to."""
        return name if name in cls.TRAINING_PARAMS else f"model__{name}"

    @classmethod
    def from_param_key(cls, key: str) -> str:
        return key.removeprefix("model__")

    @property
    def grid_size(self) -> int | None:
        """Number of grid points, or None when an entry is continuous."""
        try:
            return math.prod(len(e.grid_values(n)) for n, e in self._entries.items())
        except SearchSpaceError:
            return None

    def to_sklearn_grid(self) -> dict[str, list[Any]]:
        """A ``param_grid`` for ``GridSearchCV`` over the nn-tuning wrappers."""
        return {self.param_key(n): e.grid_values(n) for n, e in self._entries.items()}

    def to_sklearn_distributions(self) -> dict[str, Any]:
        """``param_distributions`` for ``RandomizedSearchCV``."""
        return {self.param_key(n): e.distribution(n) for n, e in self._entries.items()}

    def declare(self, hp: Any) -> None:
        """Declare every entry on a keras-tuner ``HyperParameters`` object."""
        for name, entry in self._entries.items():
            entry.declare(hp, name)

    def decode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Turn keras-tuner values into builder arguments (drops ``tuner/*`` keys)."""
        return {name: entry.decode(values[name]) for name, entry in self._entries.items()
                if name in values}

    def canonical(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise a configuration so equal configs compare and hash equal."""
        out = {}
        for name, value in params.items():
            value = _freeze(value, f"value of {name!r}")
            if isinstance(value, float) and value.is_integer() and isinstance(
                self._entries.get(name), Int
            ):
                value = int(value)
            out[name] = value
        return dict(sorted(out.items()))


# json.dumps with options makes an encoder per call; the store keys thousands a second.
_KEY_JSON = json.JSONEncoder(sort_keys=True, default=str).encode


def config_key(params: Mapping[str, Any]) -> str:
    """A stable text key for one configuration (used by the store to find finished trials)."""
    return _KEY_JSON({k: _freeze(v, k) for k, v in sorted(params.items())})
