"""Bayesian optimisation and Hyperband through keras-tuner's oracles (ask and tell).

The strategies here only say which oracle proposes and with which options;
:class:`~nn_tuning.strategies.keras_tuner_loop.OracleLoop` asks it, trains
the proposals through the search context and tells it the scores. This module
imports neither keras-tuner nor TensorFlow until a search runs, so the
registry, the config parser and the report read these classes cheaply.

Hyperband trains each proposed configuration from scratch for the number of
epochs its bracket gives (``tuner/epochs``); those epochs are the trial's
``budget`` (its own column), not one of its hyperparameters, so
``best_params`` holds exactly the space's keys and the refit trains the
run's ``epochs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..checks import check_int
from ..scaleout import ScaleMode
from .base import SearchContext, Strategy


def _parallel_trials(value: int | None) -> int | None:
    return None if value is None else check_int("parallel_trials", value)


class _KerasTunerStrategy(Strategy):
    scale_out = frozenset({ScaleMode.CHIEF})
    #: Trials asked per batch when the evaluator fuses a batch into one model (a stack).
    fused_parallel_trials: ClassVar[int] = 1

    def make_oracle(self, ctx: SearchContext) -> Any:
        raise NotImplementedError

    def run(self, ctx: SearchContext) -> None:
        from .keras_tuner_loop import OracleLoop

        OracleLoop(self).run(ctx)

    def params_of(self, trial: Any, ctx: SearchContext) -> dict[str, Any]:
        """The builder arguments of a keras-tuner trial (Hyperband's epochs are its budget)."""
        return ctx.space.decode(trial.hyperparameters.values)


def _oracle_seed(seed: int) -> int:
    # keras-tuner treats seed 0 as "no seed" (``seed or random.randint(...)``).
    return seed + 1


@dataclass(frozen=True)
class BayesianOptions:
    """Options of Bayesian search.

    Parameters
    ----------
    num_initial_points : int, optional
        Random proposals before the Gaussian process takes over
        (keras-tuner's default: 3 per hyperparameter).
    parallel_trials : int, optional
        Trials asked of the oracle and trained as one batch (one stack under
        the stacked engine); by default 1, so that each proposal knows every
        result before it (``BayesianSearch.fused_parallel_trials``, measured).
    """

    num_initial_points: int | None = None
    parallel_trials: int | None = None

    def __post_init__(self) -> None:
        if self.num_initial_points is not None:
            check_int("num_initial_points", self.num_initial_points)
        _parallel_trials(self.parallel_trials)


@dataclass(frozen=True)
class HyperbandOptions:
    """Options of Hyperband.

    Parameters
    ----------
    factor : int, default=3
        Reduction factor of each bracket's rounds.
    hyperband_iterations : int, default=1
        Times the whole Hyperband algorithm runs.
    parallel_trials : int, optional
        Trials asked of the oracle and trained as one batch (the oracle hands
        out at most what the current round holds); by default
        ``HyperbandSearch.fused_parallel_trials`` under the stacked engine
        (a whole round per stack), else 1.
    """

    factor: int = 3
    hyperband_iterations: int = 1
    parallel_trials: int | None = None

    def __post_init__(self) -> None:
        check_int("factor", self.factor, 2)
        check_int("hyperband_iterations", self.hyperband_iterations)
        _parallel_trials(self.parallel_trials)


class BayesianSearch(_KerasTunerStrategy):
    """Gaussian-process Bayesian optimisation (keras-tuner ``BayesianOptimizationOracle``)."""

    name = "bayesian"
    needs_max_trials = True
    Options = BayesianOptions
    # Proposals per batch under the stacked engine, from experiments/bench_bayesian_batch.py
    # (README, Performance): on 2 CPU cores batches of 4-16 gained 1.2-1.6x in
    # trials per second but lost 0.01-0.02 of best CV score at 32 trials, so each
    # proposal still waits for every earlier result. Raise it with parallel_trials
    # where a stack of many is nearly free (a GPU).
    fused_parallel_trials = 1

    @classmethod
    def capped(cls, n: int, **budget: Any) -> dict[str, Any]:
        changed = super().capped(n, **budget)
        options = dict(budget["options"])
        if options.get("num_initial_points") is not None:
            options["num_initial_points"] = min(options["num_initial_points"], n)
            changed["options"] = options
        return changed

    def make_oracle(self, ctx: SearchContext) -> Any:
        import keras_tuner as kt

        from .keras_tuner_loop import objective

        return kt.oracles.BayesianOptimizationOracle(
            objective=objective(), max_trials=ctx.max_trials, seed=_oracle_seed(ctx.seed),
            num_initial_points=ctx.options.num_initial_points,
            max_consecutive_failed_trials=ctx.max_trials,
        )


class HyperbandSearch(_KerasTunerStrategy):
    """Hyperband (keras-tuner ``HyperbandOracle``), with epochs as the budget."""

    name = "hyperband"
    partial_budgets = True
    Options = HyperbandOptions
    # Hyperband's proposals within a round do not depend on each other's
    # results: ask for the whole round (the oracle hands out at most that).
    fused_parallel_trials = 256

    def make_oracle(self, ctx: SearchContext) -> Any:
        import keras_tuner as kt

        from .keras_tuner_loop import objective

        oracle = kt.oracles.HyperbandOracle(
            objective=objective(), max_epochs=ctx.protocol.epochs,
            factor=ctx.options.factor, seed=_oracle_seed(ctx.seed),
            hyperband_iterations=ctx.options.hyperband_iterations,
            max_consecutive_failed_trials=10**6,
        )
        if ctx.max_trials:
            oracle.max_trials = ctx.max_trials
        return oracle
