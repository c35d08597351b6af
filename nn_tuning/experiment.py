"""Experiment configs: a TOML file parsed into typed sections. Parsing only; runner.py runs them.

A config has six parts (see ``experiments/*.toml``)::

    name = "advertising"            # names the default run folder
    description = "..."

    [data]                          # dataset, csv, npz or images = "<path>"          -> DataSection
                                    #   (nn_tuning.data_section)
    [builder]                       # name = "mlp_regressor", args = {...}             -> BuilderSection
    [space]                         # the search space, as in SearchSpace.from_dict   -> SearchSpace
    [training]                      # cv, scoring, epochs, batch_size, seed, device,
                                    # workers, engine                                  -> TrainingSection
    [training.fit]                  # model.fit settings: validation_split, class_weight,
                                    # shuffle, early_stopping = {...} (nn_tuning.fit_settings)
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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import model_builders

from .checks import check_int, check_keys, check_seconds, in_source
from .data_section import DataSection
from .devices import DEVICES
from .exceptions import ConfigError, NNTuningError
from .fit_settings import parse_fit_table
from .scaleout import ENGINES
from .space import SearchSpace
from .strategies import STRATEGIES, strategy_class

__all__ = ["BuilderSection", "DataSection", "DEFAULT_CONFIG", "Experiment", "Overrides",
           "StrategySection", "TrainingSection"]

#: The embedded default experiment (the Advertising study), shipped as package data.
DEFAULT_CONFIG = "advertising.toml"
_TOP = ("name", "description", "data", "builder", "space", "training", "strategies")


def _table(source: str, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {key!r} must be a table ([{key}]), got {value!r}")
    return dict(value)


def _task(builder_name: str) -> str:
    return "regression" if builder_name.endswith("regressor") else "classification"


def _training(training: TrainingSection) -> dict[str, Any]:
    """``[training]`` as plain data; no ``fit`` key without one (earlier runs' identity)."""
    out = dataclasses.asdict(training)
    if not out["fit"]:
        del out["fit"]
    return out


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


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
        check_keys(source, "builder.", table, _fields(cls))
        name = table.get("name")
        if name not in model_builders.__all__:
            raise ConfigError(f"{source}: unknown builder.name {name!r}; choose one of "
                              f"{', '.join(model_builders.__all__)}")
        args = table.get("args", {})
        if not isinstance(args, Mapping):
            raise ConfigError(f"{source}: builder.args must be a table, got {args!r}")
        section = cls(name=name, args=dict(args))
        check_keys(source, "builder.args.", args, section.parameters)
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
    fit: dict[str, Any] = field(default_factory=dict)  # [training.fit], checked

    @classmethod
    def parse(cls, source: str, table: dict[str, Any],
              task: str = "regression") -> TrainingSection:
        from sklearn.metrics import get_scorer_names

        check_keys(source, "training.", table, _fields(cls))
        for key, low in (("cv", 2), ("epochs", 1), ("batch_size", 1), ("seed", 0), ("workers", 1)):
            if key in table:
                in_source(source, check_int, f"training.{key}", table[key], low)
        scoring = table.get("scoring")
        if scoring is not None and scoring not in get_scorer_names():
            raise ConfigError(f"{source}: training.scoring {scoring!r} is not a scikit-learn "
                              "scorer name; use e.g. 'r2', 'neg_root_mean_squared_error', "
                              "'accuracy' or 'f1_macro'")
        for key, allowed in (("device", DEVICES), ("engine", ENGINES)):
            if key in table and table[key] not in allowed:
                raise ConfigError(f"{source}: training.{key} must be one of "
                                  f"{', '.join(allowed)}, got {table[key]!r}")
        if "fit" in table:
            table = {**table, "fit": parse_fit_table(source, table["fit"], task)}
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
        check_keys(source, f"{where}.", table, [*own, *budget, *_fields(strat.Options)])
        options = {k: v for k, v in table.items() if k not in (*own, *budget)}
        try:
            strat.parse_options(options)  # checks each option's value
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}.{exc}") from None
        if "max_trials" in table:
            in_source(source, check_int, f"{where}.max_trials", table["max_trials"])
        if "max_seconds" in table:
            in_source(source, check_seconds, f"{where}.max_seconds", table["max_seconds"])
        if strat.needs_max_trials and "max_trials" not in table:
            raise ConfigError(f"{source}: {where}.max_trials is required (a trial budget)")
        if strat.needs_budget and "max_trials" not in table and "max_seconds" not in table:
            raise ConfigError(f"{source}: {where} needs max_trials or max_seconds (a budget)")
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
                check_keys(source, f"{where}.configs[{i}].", config,
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
        check_keys(source, "", doc, _TOP)
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
        training = TrainingSection.parse(source, _table(source, doc, "training"),
                                         task=_task(builder.name))
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
        check_keys(source, "space.", raw, [*builder.parameters, *SearchSpace.TRAINING_PARAMS])
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
        return _task(self.builder_name)

    def with_overrides(self, overrides: Overrides | None) -> Experiment:
        """A copy with the command-line overrides applied."""
        if overrides is None:
            return self
        training = self.training
        for key, low in (("epochs", 1), ("seed", 0), ("cv", 2)):
            value = getattr(overrides, key)
            if value is not None:
                check = in_source("command line", check_int, f"--{key}", value, low)
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
            in_source("command line", check_int, "--max-trials", n)
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
            "training": _training(self.training), "strategies": strategies,
        }
