"""What every strategy shares: the search context, the strategy interface, typed options.

A strategy *chooses* configurations and hands them, in batches, to
:meth:`SearchContext.evaluate`; the context skips the ones the store already
holds (resume), sends the rest to the run's evaluator
(:mod:`nn_tuning.evaluators`) and commits each trial to the store as it
arrives.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..exceptions import ConfigError, NNTuningError
from ..interrupts import raise_if_interrupted
from ..result import Trial, TrialState
from ..scaleout import ScaleMode, ScaleOut
from ..space import SearchSpace, config_key
from ..store import TrialStore

if TYPE_CHECKING:  # annotations only: a strategy class is known without TensorFlow
    from ..evaluation import Protocol
    from ..evaluators import Evaluator

__all__ = ["BudgetSpent", "NoOptions", "SearchContext", "Strategy", "check_configs"]

logger = logging.getLogger("nn_tuning")


class BudgetSpent(BaseException):
    """Stops a strategy once the run's ``max_seconds`` are spent.

    A BaseException so that keras-tuner's ``except Exception`` lets it through.
    """


@dataclass(frozen=True)
class NoOptions:
    """A strategy without options."""


@dataclass
class SearchContext:
    """Everything a strategy needs: protocol, data, space, store, evaluator, settings."""

    protocol: Protocol
    X: np.ndarray
    y: np.ndarray
    space: SearchSpace | None
    store: TrialStore
    evaluator: Evaluator
    options: Any = field(default_factory=NoOptions)
    max_trials: int | None = None
    seed: int = 0
    configs: list[dict[str, Any]] | None = None
    workdir: Path | None = None
    scale: ScaleOut = field(default_factory=ScaleOut)
    device: str = "cpu"
    tuner_id: str = "main"
    engine: str = "auto"
    #: Called with the trials of each commit (a stack's together): progress, ``trials.csv``.
    on_trial: Callable[..., None] | None = None
    deadline: float | None = None  # time.perf_counter() after which no trial starts
    resumed: int = 0
    repeats: int = 0
    notes: dict[str, Any] = field(default_factory=dict)  # what the strategy reports of its run
    #: ``(tuner_id, address, device, environment) -> None``, picklable: run this search as
    #: a keras-tuner worker of the chief at ``address``, in a new process (set by tune()).
    start_worker: Callable[[str, str, str, dict[str, str]], None] | None = None
    _seen: set[int] = field(default_factory=set, repr=False)  # trial numbers met this run

    def finished(self, params: Mapping[str, Any], budget: int | None = None) -> Trial | None:
        """The stored trial of ``params``: resumed from an earlier run, or proposed again."""
        trial = self.store.get(dict(params), budget)
        if trial is not None and trial.number in self._seen:
            # An oracle proposing a configuration this run already scored
            # (keras-tuner's Bayesian oracle does, on small discrete spaces).
            self.repeats += 1
            logger.debug("trial %s %s was proposed again: not retrained", trial.number,
                         trial.params)
        elif trial is not None:
            self.resumed += 1
            self._seen.add(trial.number)
            logger.debug("resuming: trial %s %s is already stored", trial.number, trial.params)
            self._tick(trial)
        return trial

    def record(self, trial: Trial) -> Trial:
        """Commit a finished trial to the store now."""
        return self.record_many([trial])[0]

    def record_many(self, trials: Sequence[Trial]) -> list[Trial]:
        """Commit trials that finished together (a stack's) in one transaction."""
        for trial in trials:
            trial.device = self.device
            if trial.worker == "main":  # an evaluator's worker process names itself
                trial.worker = self.tuner_id
        # The stored ones, where another process committed a configuration first.
        trials = self.store.add_many(trials)
        for trial in trials:
            self._seen.add(trial.number)
            if trial.state is TrialState.FAILED:
                logger.warning("trial %s failed: %s", trial.number, trial.reason)
        self._tick(*trials)
        raise_if_interrupted()  # committed first: the trials are kept
        return trials

    def _tick(self, *trials: Trial) -> None:
        if self.on_trial is not None:
            self.on_trial(*trials)

    @property
    def budget_spent(self) -> bool:
        """``max_seconds`` are spent (never before this run's first trial ended)."""
        return (self.deadline is not None and bool(self._seen)
                and time.perf_counter() >= self.deadline)

    def evaluate(self, batch: Sequence[Mapping[str, Any]], *,
                 epochs: int | None = None) -> list[Trial]:
        """Trials of ``batch``, in its order: stored ones taken, the others trained now.

        ``epochs`` (Hyperband's budget) replaces the protocol's epochs and is
        recorded as the trials' ``budget``, never in their ``params``.
        Identical configurations in ``batch`` train once. Each new trial is
        committed to the store as the evaluator yields it (a stack's trials in one
        transaction). Raises
        :class:`BudgetSpent` once ``max_seconds`` are spent: no trial starts
        after that (those in flight are kept), and at least one trial runs.
        """
        keys = [config_key(dict(p)) for p in batch]
        done: dict[str, Trial] = {}
        todo: dict[str, dict[str, Any]] = {}
        for key, params in zip(keys, batch):
            if key in done or key in todo:
                continue
            stored = self.finished(params, epochs)
            if stored is not None:
                done[key] = stored
            else:
                todo[key] = dict(params)
        pending = list(todo.values())
        limit = self.evaluator.batch_limit or len(pending) or 1
        for start in range(0, len(pending), limit):
            if self.budget_spent:
                raise BudgetSpent
            for group in self.evaluator.evaluate_groups(pending[start:start + limit],
                                                        epochs=epochs):
                for trial in group:
                    if trial.budget is None:  # else: stopped part-way by the deadline
                        trial.budget = epochs
                for trial in self.record_many(group):
                    done[config_key(trial.params)] = trial
                if self.budget_spent:
                    self.evaluator.stop()
        if self.budget_spent:
            raise BudgetSpent
        missing = [todo[k] for k in keys if k not in done]
        if missing:
            raise NNTuningError(f"the {self.evaluator.name} evaluator returned no trial for "
                                f"{missing[0]}")
        return [done[k] for k in keys]


def check_configs(configs: object, strategy: str = "manual") -> list[dict[str, Any]]:
    """``configs`` (the user's own configurations) as a list of dicts, or a one-line ConfigError."""
    if not isinstance(configs, (list, tuple)) or not configs:
        raise ConfigError(f"strategy {strategy!r} needs configs: a non-empty list of dicts of "
                          f"hyperparameters, got {configs!r}")
    for i, config in enumerate(configs):
        if not isinstance(config, Mapping) or not config:
            raise ConfigError(f"configs[{i}] must be a non-empty dict of hyperparameters, "
                              f"got {config!r}")
        bad = [k for k in config if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ConfigError(f"configs[{i}] has an invalid hyperparameter name {bad[0]!r}")
    return [dict(c) for c in configs]


class Strategy:
    """A way of choosing which configurations to evaluate.

    Everything the rest of nn-tuning needs to know about a strategy is a class
    attribute or a class method here, so that the config parser, the CLI,
    ``tune()``'s plan, the runner and the report ask the class (through the
    registry, :mod:`nn_tuning.strategies`) instead of testing its name.
    Subclasses set :attr:`name` and :attr:`Options`, implement :meth:`run`,
    and change the defaults below that do not fit. A strategy module must be
    cheap to import (no TensorFlow at module level): the registry, the config
    parser and the report read these attributes.

    Attributes
    ----------
    name : str
        The registry name: ``tune(strategy=name)``, ``[strategies.<name>]``,
        the run folder's ``<name>/``.
    Options : type
        A frozen dataclass of the strategy's options; unknown names are refused.
    needs_space : bool
        Searches a space (False: runs the user's ``configs`` instead).
    takes_configs : bool
        Runs the user's own ``configs`` (``[strategies.<name>] configs = [...]``).
    takes_max_trials : bool
        A config may give it ``max_trials`` (grid runs its whole grid, manual
        its configs; ``--max-trials`` still caps them through :meth:`capped`).
    needs_max_trials : bool
        ``max_trials`` is required.
    partial_budgets : bool
        Some trials train on part of the epochs (their ``budget``, as
        Hyperband's): reports and ``refit="simplest"`` compare full-budget
        trials only.
    scale_out : frozenset of ScaleMode
        Where its trials may spread besides local ``workers``: Dask
        (scikit-learn's joblib work) or keras-tuner's chief/worker mode.
    """

    name: ClassVar[str]
    #: Needs max_trials or max_seconds (it would otherwise never stop).
    needs_budget: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions
    needs_space: ClassVar[bool] = True
    takes_configs: ClassVar[bool] = False
    takes_max_trials: ClassVar[bool] = True
    needs_max_trials: ClassVar[bool] = False
    partial_budgets: ClassVar[bool] = False
    scale_out: ClassVar[frozenset[ScaleMode]] = frozenset({ScaleMode.DASK})

    @classmethod
    def parse_options(cls, options: Mapping[str, Any] | None) -> Any:
        """``options`` as this strategy's :attr:`Options`, or a one-line ConfigError."""
        options = dict(options or {})
        allowed = [f.name for f in dataclasses.fields(cls.Options)]
        for key in options:
            if key not in allowed:
                raise ConfigError(
                    f"strategy {cls.name!r} has no option {key!r}; allowed: "
                    f"{', '.join(allowed) or 'none'}")
        return cls.Options(**options)

    @classmethod
    def check_space(cls, space: SearchSpace | None) -> None:
        """Refuse a space the strategy cannot search (a one-line ConfigError)."""
        if cls.needs_space and space is None:
            raise ConfigError(f"strategy {cls.name!r} needs a search space, got None")
        if cls.partial_budgets and space is not None and "epochs" in space:
            raise ConfigError(f"strategy {cls.name!r} sets each trial's epochs itself (its "
                              "budget, up to epochs); remove 'epochs' from the search space")

    @classmethod
    def check(cls, space: SearchSpace | None, max_trials: int | None) -> None:
        """Refuse what the strategy cannot run with, before anything is written."""
        cls.check_space(space)
        if cls.needs_max_trials and not max_trials:
            raise ConfigError(f"strategy {cls.name!r} needs max_trials >= 1, got {max_trials!r}")

    @classmethod
    def check_budget(cls, max_trials: int | None, max_seconds: float | None) -> None:
        """Refuse a run that would never stop."""
        if cls.needs_budget and max_trials is None and max_seconds is None:
            raise ConfigError(f"strategy {cls.name!r} needs max_trials or max_seconds, got "
                              "neither")

    @classmethod
    def check_configs(cls, configs: object) -> list[dict[str, Any]] | None:
        """The user's configurations this strategy runs (None unless :attr:`takes_configs`)."""
        return check_configs(configs, cls.name) if cls.takes_configs else None

    @classmethod
    def capped(cls, n: int, *, max_trials: int | None,
               configs: Sequence[Mapping[str, Any]] | None,
               options: Mapping[str, Any]) -> dict[str, Any]:
        """``--max-trials n``: what changes in a config's budget to run at most ``n`` trials.

        Returns the changed fields among ``max_trials``, ``configs`` and
        ``options`` (a strategy that takes no ``max_trials`` from a config
        may still get one here: grid search then runs a sub-grid).
        """
        if cls.takes_configs:
            return {"configs": tuple(configs or ())[:n]}
        return {"max_trials": min(max_trials or n, n)}

    @classmethod
    def search_args(cls, space: SearchSpace | None, max_trials: int | None
                    ) -> tuple[SearchSpace | None, int | None]:
        """The ``space`` and ``max_trials`` that ``tune()`` gets from a config's budget."""
        return space, max_trials

    def planned_trials(self, ctx: SearchContext) -> int | None:
        """How many trials the search will have, when known (for the progress bar)."""
        return len(ctx.configs or ()) if self.takes_configs else ctx.max_trials

    def run(self, ctx: SearchContext) -> None:
        """Choose configurations and hand them to ``ctx.evaluate`` until the search ends."""
        raise NotImplementedError
