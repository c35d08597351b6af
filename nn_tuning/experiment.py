"""Experiment configs: a TOML file turned into data, builder, space and strategies.

A config has six parts (see ``experiments/*.toml``)::

    name = "advertising"            # names the default run folder
    description = "..."

    [data]                          # dataset = "<bundled name>" or csv = "<path>"
    [builder]                       # name = "mlp_regressor", args = {...} (not searched)
    [space]                         # the search space, as in SearchSpace.from_dict
    [training]                      # cv, scoring, epochs, batch_size, seed, device, workers
    [strategies.<name>]             # one table per strategy with its budget

Budgets: ``max_trials`` for random, Bayesian and Hyperband search (grid runs
the whole grid, manual its ``configs``); ``max_seconds`` for any strategy, a
wall-clock budget after which no new trial starts (see :func:`nn_tuning.tune`).

Parsing is strict: an unknown key, builder, strategy or builder argument is a
one-line :class:`~nn_tuning.exceptions.ConfigError` naming the file, the key
and the value. Nothing is trained or written while a config is read.
"""

from __future__ import annotations

import copy
import inspect
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import model_builders

from .data import BUNDLED
from .devices import DEVICES
from .exceptions import ConfigError, NNTuningError
from .scaleout import ENGINES
from .space import SearchSpace
from .strategies import STRATEGIES

__all__ = ["Experiment", "Overrides", "DEFAULT_CONFIG"]

#: The embedded default experiment (the Advertising study), shipped as package data.
DEFAULT_CONFIG = "advertising.toml"

_TOP = ("name", "description", "data", "builder", "space", "training", "strategies")
_DATA = ("dataset", "csv", "target", "features", "test_size", "scale", "scale_target",
         "split_seed")
_BUILDER = ("name", "args")
_TRAINING = ("cv", "scoring", "epochs", "batch_size", "seed", "device", "workers", "engine")
_BUDGET = ("max_trials", "max_seconds")
_STRATEGY_KEYS = {
    "manual": ("configs", "max_seconds"),
    "grid": ("max_seconds",),
    "random": _BUDGET,
    "bayesian": (*_BUDGET, "num_initial_points"),
    "hyperband": (*_BUDGET, "factor", "hyperband_iterations"),
}
_TRAINING_DEFAULTS = {"cv": 5, "scoring": None, "epochs": 50, "batch_size": 32, "seed": 0,
                      "device": "auto", "workers": 1, "engine": "auto"}
_DATA_DEFAULTS = {"test_size": 0.2, "scale": True, "scale_target": False}


@dataclass(frozen=True)
class Overrides:
    """Command-line overrides for quick runs; ``None`` keeps the config's value.

    ``max_trials`` caps every strategy: random, Bayesian and Hyperband budgets,
    the first ``max_trials`` manual configs, and grid search runs a sub-grid of
    at most ``max_trials`` points (the leading values of each entry).
    """

    max_trials: int | None = None
    epochs: int | None = None
    seed: int | None = None
    cv: int | None = None
    device: str | None = None
    engine: str | None = None


def _unknown(source: str, where: str, keys: Iterable[str], allowed: Iterable[str]) -> None:
    for key in keys:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {where + key!r}; allowed: "
                              f"{', '.join(allowed)}")


def _table(source: str, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {key!r} must be a table ([{key}]), got {value!r}")
    return dict(value)


def _int(source: str, key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{source}: {key} must be an integer >= {low}, got {value!r}")
    return value


def _builder_params(builder: Any) -> list[str]:
    sig = inspect.signature(builder)
    return [n for n in sig.parameters if n not in ("input_dim", "n_classes", "meta")]


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment config. Build it with :meth:`from_file` or :meth:`default`.

    Examples
    --------
    >>> exp = Experiment.default()
    >>> exp.name, exp.builder_name, exp.space.grid_size
    ('advertising', 'mlp_regressor', 54)
    """

    name: str
    source: str
    text: str
    data: dict[str, Any]
    builder_name: str
    builder_args: dict[str, Any]
    space: SearchSpace | None
    training: dict[str, Any]
    strategies: dict[str, dict[str, Any]]
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

        data = {**_DATA_DEFAULTS, **_table(source, doc, "data")}
        _unknown(source, "data.", data, _DATA)
        cls._check_data(source, data)

        builder = _table(source, doc, "builder")
        _unknown(source, "builder.", builder, _BUILDER)
        builder_name = builder.get("name")
        if builder_name not in model_builders.__all__:
            raise ConfigError(f"{source}: unknown builder.name {builder_name!r}; choose one of "
                              f"{', '.join(model_builders.__all__)}")
        allowed = _builder_params(getattr(model_builders, builder_name))
        args = builder.get("args", {})
        if not isinstance(args, Mapping):
            raise ConfigError(f"{source}: builder.args must be a table, got {args!r}")
        _unknown(source, "builder.args.", args, allowed)

        space = None
        if "space" in doc:
            raw = _table(source, doc, "space")
            if not raw:
                raise ConfigError(f"{source}: the [space] table is empty; give at least one "
                                  "hyperparameter")
            _unknown(source, "space.", raw, [*allowed, *SearchSpace.TRAINING_PARAMS])
            try:
                space = SearchSpace.from_dict(raw)
            except NNTuningError as exc:
                raise ConfigError(f"{source}: [space] {exc}") from None

        training = {**_TRAINING_DEFAULTS, **_table(source, doc, "training")}
        _unknown(source, "training.", training, _TRAINING)
        cls._check_training(source, training)

        strategies = _table(source, doc, "strategies")
        if not strategies:
            raise ConfigError(f"{source}: no [strategies.<name>] table; add one of "
                              f"{', '.join(STRATEGIES)}")
        for sname, opts in strategies.items():
            if sname not in STRATEGIES:
                raise ConfigError(f"{source}: unknown strategy 'strategies.{sname}'; choose "
                                  f"from {', '.join(STRATEGIES)}")
            if not isinstance(opts, Mapping):
                raise ConfigError(f"{source}: strategies.{sname} must be a table, got {opts!r}")
            _unknown(source, f"strategies.{sname}.", opts, _STRATEGY_KEYS[sname])
            cls._check_strategy(source, sname, dict(opts), space, allowed)
        return cls(name=name, source=source, text=text, data=data, builder_name=builder_name,
                   builder_args=dict(args), space=space, training=training,
                   strategies={k: dict(v) for k, v in strategies.items()},
                   description=description, base_dir=base_dir or Path.cwd())

    @staticmethod
    def _check_data(source: str, data: dict[str, Any]) -> None:
        if ("dataset" in data) == ("csv" in data):
            raise ConfigError(f"{source}: [data] needs exactly one of 'dataset' (one of "
                              f"{', '.join(BUNDLED)}) or 'csv' (a path)")
        if "dataset" in data and data["dataset"] not in BUNDLED:
            raise ConfigError(f"{source}: unknown data.dataset {data['dataset']!r}; choose one "
                              f"of {', '.join(BUNDLED)}")
        if "csv" in data and not isinstance(data["csv"], str):
            raise ConfigError(f"{source}: data.csv must be a path string, got {data['csv']!r}")
        if "target" in data and not isinstance(data["target"], str):
            raise ConfigError(f"{source}: data.target must be a column name, got "
                              f"{data['target']!r}")
        feats = data.get("features")
        if feats is not None and (not isinstance(feats, list) or not feats
                                  or not all(isinstance(f, str) for f in feats)):
            raise ConfigError(f"{source}: data.features must be a non-empty list of column "
                              f"names, got {feats!r}")
        ts = data["test_size"]
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 < ts < 1:
            raise ConfigError(f"{source}: data.test_size must be a number in (0, 1), got {ts!r}")
        for key in ("scale", "scale_target"):
            if not isinstance(data[key], bool):
                raise ConfigError(f"{source}: data.{key} must be true or false, got "
                                  f"{data[key]!r}")
        if "split_seed" in data:
            _int(source, "data.split_seed", data["split_seed"], 0)

    @staticmethod
    def _check_training(source: str, training: dict[str, Any]) -> None:
        from sklearn.metrics import get_scorer_names

        _int(source, "training.cv", training["cv"], 2)
        _int(source, "training.epochs", training["epochs"], 1)
        _int(source, "training.batch_size", training["batch_size"], 1)
        _int(source, "training.seed", training["seed"], 0)
        _int(source, "training.workers", training["workers"], 1)
        scoring = training["scoring"]
        if scoring is not None and scoring not in get_scorer_names():
            raise ConfigError(f"{source}: training.scoring {scoring!r} is not a scikit-learn "
                              "scorer name; use e.g. 'r2', 'neg_root_mean_squared_error', "
                              "'accuracy' or 'f1_macro'")
        if training["engine"] not in ENGINES:
            raise ConfigError(f"{source}: training.engine must be one of "
                              f"{', '.join(ENGINES)}, got {training['engine']!r}")
        if training["device"] not in DEVICES:
            raise ConfigError(f"{source}: training.device must be one of "
                              f"{', '.join(DEVICES)}, got {training['device']!r}")

    @staticmethod
    def _check_strategy(source: str, name: str, opts: dict[str, Any],
                        space: SearchSpace | None, allowed: list[str]) -> None:
        where = f"strategies.{name}"
        for key in ("max_trials", "num_initial_points", "factor", "hyperband_iterations"):
            if key in opts:
                _int(source, f"{where}.{key}", opts[key], 2 if key == "factor" else 1)
        if "max_seconds" in opts:
            sec = opts["max_seconds"]
            if isinstance(sec, bool) or not isinstance(sec, (int, float)) or sec <= 0:
                raise ConfigError(f"{source}: {where}.max_seconds must be a number > 0, "
                                  f"got {sec!r}")
        if name in ("random", "bayesian") and "max_trials" not in opts:
            raise ConfigError(f"{source}: {where}.max_trials is required (a trial budget)")
        if name == "manual":
            configs = opts.get("configs")
            if not isinstance(configs, list) or not configs:
                raise ConfigError(f"{source}: {where}.configs must be a non-empty list of "
                                  f"tables of hyperparameters, got {configs!r}")
            for i, config in enumerate(configs):
                if not isinstance(config, Mapping) or not config:
                    raise ConfigError(f"{source}: {where}.configs[{i}] must be a non-empty "
                                      f"table, got {config!r}")
                _unknown(source, f"{where}.configs[{i}].", config,
                         [*allowed, *SearchSpace.TRAINING_PARAMS])
        elif space is None:
            raise ConfigError(f"{source}: strategy {name!r} needs a [space] table")
        if name == "grid" and space is not None and space.grid_size is None:
            raise ConfigError(f"{source}: strategies.grid needs grid points, but [space] has a "
                              "continuous float entry; use a list of values or give it a step")

    # Derived values ------------------------------------------------------
    @property
    def builder(self) -> Any:
        return getattr(model_builders, self.builder_name)

    @property
    def task(self) -> str:
        return "regression" if self.builder_name.endswith("regressor") else "classification"

    def csv_path(self) -> Path | None:
        """The data CSV, relative paths taken from the config file's folder."""
        if "csv" not in self.data:
            return None
        path = Path(self.data["csv"]).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def with_overrides(self, overrides: Overrides | None) -> Experiment:
        """A copy with the command-line overrides applied."""
        if overrides is None:
            return self
        training = dict(self.training)
        strategies = copy.deepcopy(self.strategies)
        for key in ("epochs", "seed", "cv"):
            value = getattr(overrides, key)
            if value is not None:
                training[key] = _int("command line", f"--{key.replace('_', '-')}", value,
                                     {"epochs": 1, "seed": 0, "cv": 2}[key])
        if overrides.device is not None:
            if overrides.device not in DEVICES:
                raise ConfigError(f"command line: --device must be one of {', '.join(DEVICES)}, "
                                  f"got {overrides.device!r}")
            training["device"] = overrides.device
        if overrides.engine is not None:
            if overrides.engine not in ENGINES:
                raise ConfigError(f"command line: --engine must be one of {', '.join(ENGINES)}, "
                                  f"got {overrides.engine!r}")
            training["engine"] = overrides.engine
        n = overrides.max_trials
        if n is not None:
            _int("command line", "--max-trials", n, 1)
            for name, opts in strategies.items():
                if name == "manual":
                    opts["configs"] = opts["configs"][:n]
                elif name != "grid":
                    opts["max_trials"] = min(opts.get("max_trials", n), n)
                    if "num_initial_points" in opts:
                        opts["num_initial_points"] = min(opts["num_initial_points"], n)
            if "grid" in strategies:
                strategies["grid"]["max_trials"] = n
        return replace(self, training=training, strategies=strategies)

    def grid_space(self, max_points: int | None) -> SearchSpace | None:
        """The space grid search runs: all of it, or a sub-grid of at most ``max_points``."""
        space = self.space
        if space is None or max_points is None or (space.grid_size or 0) <= max_points:
            return space
        values = {n: e.grid_values(n) for n, e in space.items()}
        while _prod(len(v) for v in values.values()) > max_points:
            longest = max(values, key=lambda n: len(values[n]))
            values[longest] = values[longest][:-1]
        return SearchSpace({n: list(v) for n, v in values.items()})

    def resolved(self) -> dict[str, Any]:
        """The config as run, as plain data (saved as ``experiment.json``)."""
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "data": self.data, "builder": {"name": self.builder_name, "args": self.builder_args},
            "task": self.task, "space": self.space.to_dict() if self.space else None,
            "training": self.training, "strategies": self.strategies,
        }

    def run(self, out_dir: str | Path, strategies: list[str] | None = None, *,
            overwrite: bool = False, progress: bool = True,
            runtime: dict[str, Any] | None = None) -> Path:
        """Run ``strategies`` (all configured ones by default) into ``out_dir``
        and write the report. See :func:`nn_tuning.runner.run_experiment`."""
        from .runner import run_experiment

        return run_experiment(self, out_dir, strategies, overwrite=overwrite, progress=progress,
                              runtime=runtime)


def _prod(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out
