"""Experiment configs: a TOML file parsed into typed sections. Parsing only; runner.py runs them.

A config has six parts (see ``experiments/*.toml``)::

    name = "advertising"            # names the default run folder
    description = "..."

    [data]                          # dataset, csv, npz or images = "<path>"          -> DataSection
    [builder]                       # name = "mlp_regressor", args = {...}             -> BuilderSection
    [space]                         # the search space, as in SearchSpace.from_dict   -> SearchSpace
    [training]                      # cv, scoring, epochs, batch_size, seed, device,
                                    # workers, engine                                  -> TrainingSection
    [strategies.<name>]             # its budget and its options                       -> StrategySection

Budgets: ``max_trials`` where the strategy's class takes one
(:attr:`~nn_tuning.strategies.base.Strategy.takes_max_trials`: random,
Bayesian and Hyperband; grid runs the whole grid, manual its ``configs``);
``max_seconds`` for any strategy, a wall-clock budget after which no new trial
starts (see :func:`nn_tuning.tune`). A strategy's options are its own typed
options class's fields (:attr:`nn_tuning.strategies.base.Strategy.Options`).

Parsing is strict: an unknown key, builder, strategy, option or builder
argument is a one-line :class:`~nn_tuning.exceptions.ConfigError` naming the
file, the key and the value. Nothing is trained or written while a config is read.
"""

from __future__ import annotations

import dataclasses
import inspect
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import model_builders

from .checks import check_int, check_seconds
from .data import BUNDLED, SCALES
from .devices import DEVICES
from .exceptions import ConfigError, NNTuningError
from .images import COLOR_MODES
from .scaleout import ENGINES
from .space import SearchSpace
from .strategies import STRATEGIES, strategy_class

__all__ = ["BuilderSection", "DataSection", "DEFAULT_CONFIG", "Experiment", "Overrides",
           "StrategySection", "TrainingSection"]

#: The embedded default experiment (the Advertising study), shipped as package data.
DEFAULT_CONFIG = "advertising.toml"
_TOP = ("name", "description", "data", "builder", "space", "training", "strategies")


def _unknown(source: str, where: str, keys: Iterable[str], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in keys:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {where + key!r}; allowed: "
                              f"{', '.join(allowed) or 'none'}")


def _table(source: str, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {key!r} must be a table ([{key}]), got {value!r}")
    return dict(value)


def _named(source: str, check: Any, *args: Any) -> Any:
    """Run a shared check; its error names the file too."""
    try:
        return check(*args)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


_SOURCES = ("dataset", "csv", "npz", "images")
# Keys that only apply to some sources.
_SOURCE_KEYS = {"target": ("dataset", "csv"), "features": ("dataset", "csv"),
                "x_array": ("npz",), "y_array": ("npz",), "shape": ("dataset", "csv", "npz"),
                "image_size": ("images",), "color_mode": ("images",)}


def _check_dims(source: str, key: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    ok = isinstance(value, list) and value and (length is None or len(value) == length) \
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value)
    if not ok:
        what = "[height, width]" if length == 2 else "a list of sizes such as [8, 8, 1]"
        raise ConfigError(f"{source}: data.{key} must be {what} of integers >= 1, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class DataSection:
    """``[data]``: one source and how it is split and scaled (see :mod:`nn_tuning.data`).

    The source is one of ``dataset`` (a bundled name), ``csv`` (a path),
    ``npz`` (a path; arrays ``x_array`` and ``y_array``) or ``images`` (a
    folder with one sub-folder per class; ``image_size`` and ``color_mode``).
    ``shape`` reshapes each sample of a table or an npz array (``[8, 8, 1]``:
    the digits as images). ``scale`` is true, false or one of
    :data:`nn_tuning.data.SCALES`.
    """

    dataset: str | None = None
    csv: str | None = None
    npz: str | None = None
    images: str | None = None
    target: str | None = None
    features: tuple[str, ...] | None = None
    x_array: str | None = None
    y_array: str | None = None
    shape: tuple[int, ...] | None = None
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    test_size: float = 0.2
    scale: bool | str = True
    scale_target: bool = False
    split_seed: int | None = None

    @classmethod
    def parse(cls, source: str, table: dict[str, Any]) -> DataSection:
        _unknown(source, "data.", table, _fields(cls))
        given = [k for k in _SOURCES if k in table]
        if len(given) != 1:
            raise ConfigError(f"{source}: [data] needs exactly one of 'dataset' (one of "
                              f"{', '.join(BUNDLED)}), 'csv' (a path), 'npz' (a path) or "
                              f"'images' (a folder); got {', '.join(given) or 'none'}")
        kind = given[0]
        if kind == "dataset" and table["dataset"] not in BUNDLED:
            raise ConfigError(f"{source}: unknown data.dataset {table['dataset']!r}; choose one "
                              f"of {', '.join(BUNDLED)}")
        for key, allowed in _SOURCE_KEYS.items():
            if key in table and kind not in allowed:
                raise ConfigError(f"{source}: data.{key} applies to data."
                                  f"{' or data.'.join(allowed)}, not to data.{kind}")
        for key, what in (("csv", "a path string"), ("npz", "a path string"),
                          ("images", "a folder path string"), ("target", "a column name"),
                          ("x_array", "an array name"), ("y_array", "an array name")):
            if key in table and not isinstance(table[key], str):
                raise ConfigError(f"{source}: data.{key} must be {what}, got {table[key]!r}")
        feats = table.get("features")
        if feats is not None and (not isinstance(feats, list) or not feats
                                  or not all(isinstance(f, str) for f in feats)):
            raise ConfigError(f"{source}: data.features must be a non-empty list of column "
                              f"names, got {feats!r}")
        shape = _check_dims(source, "shape", table["shape"]) if "shape" in table else None
        size = (_check_dims(source, "image_size", table["image_size"], 2)
                if "image_size" in table else None)
        if "color_mode" in table and table["color_mode"] not in COLOR_MODES:
            raise ConfigError(f"{source}: data.color_mode must be one of "
                              f"{', '.join(COLOR_MODES)}, got {table['color_mode']!r}")
        ts = table.get("test_size", 0.2)
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 < ts < 1:
            raise ConfigError(f"{source}: data.test_size must be a number in (0, 1), got {ts!r}")
        if "scale" in table and not isinstance(table["scale"], bool) \
                and table["scale"] not in SCALES:
            raise ConfigError(f"{source}: data.scale must be true, false or one of "
                              f"{', '.join(SCALES)}, got {table['scale']!r}")
        if "scale_target" in table and not isinstance(table["scale_target"], bool):
            raise ConfigError(f"{source}: data.scale_target must be true or false, got "
                              f"{table['scale_target']!r}")
        if "split_seed" in table:
            _named(source, check_int, "data.split_seed", table["split_seed"], 0)
        return cls(**{**table, "features": tuple(feats) if feats else None, "shape": shape,
                      "image_size": size})

    def load_args(self, base_dir: Path) -> dict[str, Any]:
        """The source arguments of :func:`nn_tuning.data.load_data`, paths from ``base_dir``."""
        args: dict[str, Any] = {"dataset": self.dataset, "target": self.target,
                                "features": list(self.features) if self.features else None,
                                "shape": self.shape, "image_size": self.image_size}
        for key in ("csv", "npz", "images"):
            value = getattr(self, key)
            if value is not None:
                path = Path(value).expanduser()
                args[key] = path if path.is_absolute() else base_dir / path
        for key in ("x_array", "y_array", "color_mode"):
            if getattr(self, key) is not None:
                args[key] = getattr(self, key)
        return args


@dataclass(frozen=True)
class BuilderSection:
    """``[builder]``: one of :mod:`model_builders` and its fixed (not searched) arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def function(self) -> Any:
        return getattr(model_builders, self.name)

    @property
    def parameters(self) -> list[str]:
        """The builder's tunable arguments (not the ones scikeras fills in)."""
        sig = inspect.signature(self.function)
        return [n for n in sig.parameters if n not in ("input_dim", "n_classes", "meta")]

    @classmethod
    def parse(cls, source: str, table: dict[str, Any]) -> BuilderSection:
        _unknown(source, "builder.", table, _fields(cls))
        name = table.get("name")
        if name not in model_builders.__all__:
            raise ConfigError(f"{source}: unknown builder.name {name!r}; choose one of "
                              f"{', '.join(model_builders.__all__)}")
        args = table.get("args", {})
        if not isinstance(args, Mapping):
            raise ConfigError(f"{source}: builder.args must be a table, got {args!r}")
        section = cls(name=name, args=dict(args))
        _unknown(source, "builder.args.", args, section.parameters)
        return section


@dataclass(frozen=True)
class TrainingSection:
    """``[training]``: the protocol every strategy shares, and how it runs."""

    cv: int = 5
    scoring: str | None = None
    epochs: int = 50
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    workers: int = 1
    engine: str = "auto"

    @classmethod
    def parse(cls, source: str, table: dict[str, Any]) -> TrainingSection:
        from sklearn.metrics import get_scorer_names

        _unknown(source, "training.", table, _fields(cls))
        for key, low in (("cv", 2), ("epochs", 1), ("batch_size", 1), ("seed", 0), ("workers", 1)):
            if key in table:
                _named(source, check_int, f"training.{key}", table[key], low)
        scoring = table.get("scoring")
        if scoring is not None and scoring not in get_scorer_names():
            raise ConfigError(f"{source}: training.scoring {scoring!r} is not a scikit-learn "
                              "scorer name; use e.g. 'r2', 'neg_root_mean_squared_error', "
                              "'accuracy' or 'f1_macro'")
        for key, allowed in (("device", DEVICES), ("engine", ENGINES)):
            if key in table and table[key] not in allowed:
                raise ConfigError(f"{source}: training.{key} must be one of "
                                  f"{', '.join(allowed)}, got {table[key]!r}")
        return cls(**table)


@dataclass(frozen=True)
class StrategySection:
    """``[strategies.<name>]``: a strategy's budget, manual configs and typed options."""

    name: str
    max_trials: int | None = None
    max_seconds: float | None = None
    configs: tuple[dict[str, Any], ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, source: str, name: str, table: Any, space: SearchSpace | None,
              builder: BuilderSection) -> StrategySection:
        if name not in STRATEGIES:
            raise ConfigError(f"{source}: unknown strategy 'strategies.{name}'; choose one of "
                              f"{', '.join(STRATEGIES)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: strategies.{name} must be a table, got {table!r}")
        strat = strategy_class(name)
        where = f"strategies.{name}"
        own = ["configs"] if strat.takes_configs else []
        budget = ["max_trials", "max_seconds"] if strat.takes_max_trials else ["max_seconds"]
        _unknown(source, f"{where}.", table, [*own, *budget, *_fields(strat.Options)])
        options = {k: v for k, v in table.items() if k not in (*own, *budget)}
        try:
            strat.parse_options(options)  # checks each option's value
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}.{exc}") from None
        if "max_trials" in table:
            _named(source, check_int, f"{where}.max_trials", table["max_trials"])
        if "max_seconds" in table:
            _named(source, check_seconds, f"{where}.max_seconds", table["max_seconds"])
        if strat.needs_max_trials and "max_trials" not in table:
            raise ConfigError(f"{source}: {where}.max_trials is required (a trial budget)")
        configs = None
        if strat.takes_configs:
            configs = table.get("configs")
            if not isinstance(configs, list) or not configs:
                raise ConfigError(f"{source}: {where}.configs must be a non-empty list of "
                                  f"tables of hyperparameters, got {configs!r}")
            for i, config in enumerate(configs):
                if not isinstance(config, Mapping) or not config:
                    raise ConfigError(f"{source}: {where}.configs[{i}] must be a non-empty "
                                      f"table, got {config!r}")
                _unknown(source, f"{where}.configs[{i}].", config,
                         [*builder.parameters, *SearchSpace.TRAINING_PARAMS])
            configs = tuple(dict(c) for c in configs)
        if strat.needs_space and space is None:
            raise ConfigError(f"{source}: strategy {name!r} needs a [space] table")
        try:
            strat.check_space(space)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from None
        return cls(name=name, max_trials=table.get("max_trials"),
                   max_seconds=table.get("max_seconds"), configs=configs, options=options)

    def to_dict(self) -> dict[str, Any]:
        """The table as written in a config (what ``experiment.json`` records)."""
        out: dict[str, Any] = {k: v for k, v in (("max_trials", self.max_trials),
                                                   ("max_seconds", self.max_seconds))
                               if v is not None}
        if self.configs is not None:
            out["configs"] = [dict(c) for c in self.configs]
        return {**out, **self.options}


@dataclass(frozen=True)
class Overrides:
    """Command-line overrides for quick runs; ``None`` keeps the config's value.

    ``max_trials`` caps every strategy, as its class says
    (:meth:`~nn_tuning.strategies.base.Strategy.capped`): random, Bayesian and
    Hyperband budgets, the first ``max_trials`` manual configs, and grid search
    runs a sub-grid of at most ``max_trials`` points.
    """

    max_trials: int | None = None
    epochs: int | None = None
    seed: int | None = None
    cv: int | None = None
    device: str | None = None
    engine: str | None = None


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment config. Build it with :meth:`from_file` or :meth:`default`.

    Examples
    --------
    >>> exp = Experiment.default()
    >>> exp.name, exp.builder_name, exp.space.grid_size, exp.training.epochs
    ('advertising', 'mlp_regressor', 54, 80)
    """

    name: str
    source: str
    text: str
    data: DataSection
    builder_section: BuilderSection
    space: SearchSpace | None
    training: TrainingSection
    strategies: dict[str, StrategySection]
    description: str = ""
    base_dir: Path = field(default_factory=Path.cwd)

    # Construction ----------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        """Read and check a TOML config."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {str(path)!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
        return cls.from_text(text, source=str(path), base_dir=path.resolve().parent)

    @classmethod
    def default(cls) -> Experiment:
        """The embedded Advertising study (``nn_tuning/data/advertising.toml``)."""
        text = resources.files("nn_tuning").joinpath("data", DEFAULT_CONFIG).read_text()
        return cls.from_text(text, source=f"<bundled {DEFAULT_CONFIG}>")

    @classmethod
    def from_text(cls, text: str, source: str = "<config>",
                  base_dir: Path | None = None) -> Experiment:
        """Parse a config from TOML text; ``source`` names it in error messages."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: malformed TOML: {exc}") from None
        _unknown(source, "", doc, _TOP)
        name = doc.get("name", Path(source).stem if not source.startswith("<") else "experiment")
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
            raise ConfigError(f"{source}: name must be a non-empty string without slashes, "
                              f"got {name!r}")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{source}: description must be a string, got {description!r}")
        data = DataSection.parse(source, _table(source, doc, "data"))
        builder = BuilderSection.parse(source, _table(source, doc, "builder"))
        space = cls._parse_space(source, doc, builder)
        training = TrainingSection.parse(source, _table(source, doc, "training"))
        tables = _table(source, doc, "strategies")
        if not tables:
            raise ConfigError(f"{source}: no [strategies.<name>] table; add one of "
                              f"{', '.join(STRATEGIES)}")
        strategies = {n: StrategySection.parse(source, n, t, space, builder)
                      for n, t in tables.items()}
        return cls(name=name, source=source, text=text, data=data, builder_section=builder,
                   space=space, training=training, strategies=strategies,
                   description=description, base_dir=base_dir or Path.cwd())

    @staticmethod
    def _parse_space(source: str, doc: Mapping[str, Any],
                     builder: BuilderSection) -> SearchSpace | None:
        if "space" not in doc:
            return None
        raw = _table(source, doc, "space")
        if not raw:
            raise ConfigError(f"{source}: the [space] table is empty; give at least one "
                              "hyperparameter")
        _unknown(source, "space.", raw, [*builder.parameters, *SearchSpace.TRAINING_PARAMS])
        try:
            return SearchSpace.from_dict(raw)
        except NNTuningError as exc:
            raise ConfigError(f"{source}: [space] {exc}") from None

    # Derived values ------------------------------------------------------
    @property
    def builder(self) -> Any:
        return self.builder_section.function

    @property
    def builder_name(self) -> str:
        return self.builder_section.name

    @property
    def builder_args(self) -> dict[str, Any]:
        return dict(self.builder_section.args)

    @property
    def task(self) -> str:
        return "regression" if self.builder_name.endswith("regressor") else "classification"

    def with_overrides(self, overrides: Overrides | None) -> Experiment:
        """A copy with the command-line overrides applied."""
        if overrides is None:
            return self
        training = self.training
        for key, low in (("epochs", 1), ("seed", 0), ("cv", 2)):
            value = getattr(overrides, key)
            if value is not None:
                check = _named("command line", check_int, f"--{key}", value, low)
                training = replace(training, **{key: check})
        for key, allowed in (("device", DEVICES), ("engine", ENGINES)):
            value = getattr(overrides, key)
            if value is not None:
                if value not in allowed:
                    raise ConfigError(f"command line: --{key} must be one of "
                                      f"{', '.join(allowed)}, got {value!r}")
                training = replace(training, **{key: value})
        strategies = dict(self.strategies)
        n = overrides.max_trials
        if n is not None:
            _named("command line", check_int, "--max-trials", n)
            for name, s in strategies.items():
                strategies[name] = replace(s, **strategy_class(name).capped(
                    n, max_trials=s.max_trials, configs=s.configs, options=s.options))
        return replace(self, training=training, strategies=strategies)

    def search_args(self, name: str) -> tuple[SearchSpace | None, int | None]:
        """The space and ``max_trials`` that strategy ``name`` searches (grid: its sub-grid)."""
        return strategy_class(name).search_args(self.space, self.strategies[name].max_trials)

    def resolved(self) -> dict[str, Any]:
        """The config as run, as plain data (saved as ``experiment.json``)."""
        data = {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self.data).items() if v is not None}
        strategies = {n: s.to_dict() for n, s in self.strategies.items()}
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "data": data, "builder": {"name": self.builder_name, "args": self.builder_args},
            "task": self.task, "space": self.space.to_dict() if self.space else None,
            "training": dataclasses.asdict(self.training), "strategies": strategies,
        }
