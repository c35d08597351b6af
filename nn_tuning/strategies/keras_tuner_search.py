"""Bayesian optimisation and Hyperband through keras-tuner's oracles (ask and tell).

keras-tuner has no cross-validation for Keras models (keras-tuner #139). Here
its oracles only propose configurations: the strategy asks the oracle for up
to ``parallel_trials`` trials (distinct tuner ids, as keras-tuner's own
distributed mode keeps several trials in flight), hands them to the search
context as one batch (identical proposals train once), and tells the oracle
each mean CV score. A failed trial is reported as FAILED, so the oracle moves on.

With ``workers > 1`` (or a chief address) the search runs in keras-tuner's own
chief/worker mode (:mod:`nn_tuning.strategies.keras_tuner_workers`).

Hyperband trains each proposed configuration from scratch for the number of
epochs its bracket gives (``tuner/epochs``); those epochs are the trial's
``budget`` (its own column), not one of its hyperparameters, so
``best_params`` holds exactly the space's keys and the refit trains the
run's ``epochs``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np
from keras_tuner.engine.base_tuner import BaseTuner
from sklearn.exceptions import ConvergenceWarning

from ..checks import check_int
from ..exceptions import ConfigError
from ..result import TrialState
from ..scaleout import Role
from .base import SearchContext, Strategy

_OBJECTIVE = "score"
logger = logging.getLogger("nn_tuning")
_RUNNING, _IDLE, _STOPPED = (kt.engine.trial.TrialStatus.RUNNING, kt.engine.trial.TrialStatus.IDLE,
                             kt.engine.trial.TrialStatus.STOPPED)


@contextlib.contextmanager
def restored_rng(seed: int) -> Iterator[None]:
    """Seed Python's and NumPy's global generators for the block, then restore them.

    keras-tuner's oracles draw from the global generators. Seeding each
    proposal with the trial count makes a resumed search propose what the
    interrupted one did; restoring them leaves the caller's state alone.
    """
    saved = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])


def _seeded_proposals(oracle: Any, seed: int) -> Any:
    """Wrap this oracle's ``populate_space`` in :func:`restored_rng` (seed + trial count)."""
    populate = oracle.populate_space

    def populate_space(trial_id: str) -> Any:
        with restored_rng(seed + len(oracle.trials)):
            return populate(trial_id)

    oracle.populate_space = populate_space
    return oracle


class _CVTuner(BaseTuner):
    """A keras-tuner tuner that only holds the oracle; nn-tuning trains the trials."""

    def __init__(self, oracle: Any, space: Any, **kwargs: Any) -> None:
        self._nn_space = space
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)

    def _populate_initial_space(self) -> None:
        hp = self.oracle.get_space()
        self._nn_space.declare(hp)
        self.oracle.update_space(hp)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("nn-tuning trains trials through its evaluators")

    # Models live in the trial store's refit, not in keras-tuner's checkpoints.
    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        return None

    def load_model(self, trial: Any) -> None:
        return None


def _project_dir(ctx: SearchContext, name: str) -> tuple[str, Any]:
    if ctx.workdir is not None:
        path = Path(ctx.workdir) / "keras_tuner"
        path.mkdir(parents=True, exist_ok=True)
        return str(path), None
    tmp = tempfile.TemporaryDirectory(prefix=f"nn_tuning_{name}_")
    return tmp.name, tmp


def _parallel_trials(value: int | None) -> int | None:
    return None if value is None else check_int("parallel_trials", value)


class _KerasTunerStrategy(Strategy):
    uses_epochs = False
    keras_tuner = True
    stacked_parallel_trials = 1

    def make_oracle(self, ctx: SearchContext) -> Any:
        raise NotImplementedError

    def tuner(self, ctx: SearchContext, directory: str, project: str) -> _CVTuner:
        # Resume is the trial store's job: a keras-tuner project left over from
        # an earlier run is replaced, never silently reloaded.
        oracle = _seeded_proposals(self.make_oracle(ctx), ctx.seed)
        tuner = _CVTuner(oracle, ctx.space, directory=directory, project_name=project,
                         overwrite=True)
        tuner.oracle.verbose = 0  # keras-tuner prints each trial otherwise; we log
        return tuner

    def run(self, ctx: SearchContext) -> None:
        from .keras_tuner_workers import run_as_chief, run_as_worker

        directory, tmp = _project_dir(ctx, self.name)
        try:
            with warnings.catch_warnings():
                # The Gaussian process inside keras-tuner's oracle warns about its
                # own kernel fits on nearly every proposal; nothing a user can act on.
                warnings.filterwarnings("ignore", category=ConvergenceWarning,
                                        module="sklearn.gaussian_process")
                # keras-tuner 1.4 calls threading.currentThread() on every oracle call.
                warnings.filterwarnings("ignore", category=DeprecationWarning,
                                        module="keras_tuner")
                role = ctx.scale.role
                if role is Role.WORKER:
                    run_as_worker(self, ctx, directory)
                elif role is Role.CHIEF or ctx.scale.workers > 1:
                    run_as_chief(self, ctx, directory)
                else:
                    self.ask_evaluate_tell(self.tuner(ctx, directory, self.name), ctx)
        finally:
            if tmp is not None:
                tmp.cleanup()

    def ask_evaluate_tell(self, tuner: _CVTuner, ctx: SearchContext) -> None:
        """Until the oracle stops: ask up to ``parallel_trials`` trials, train them, report."""
        oracle = tuner.oracle
        n = ctx.options.parallel_trials or (
            self.stacked_parallel_trials if ctx.evaluator.name == "stacked" else 1)
        slots = [ctx.tuner_id if n == 1 else f"{ctx.tuner_id}-{i}" for i in range(n)]
        idle_rounds = 0
        while True:
            asked, stopped = [], False
            for slot in slots:
                trial = oracle.create_trial(slot)
                if trial.status == _STOPPED:
                    stopped = True
                    break
                if trial.status != _RUNNING:  # IDLE: the oracle waits for running trials
                    break
                asked.append(trial)
            if not asked:
                if stopped:
                    break
                idle_rounds += 1
                if ctx.scale.role is not Role.WORKER and idle_rounds > 100:
                    break  # nothing in flight here: the oracle cannot be waiting on us
                time.sleep(0.1 if ctx.scale.role is not Role.WORKER else 1.0)
                continue
            idle_rounds = 0
            self._evaluate_and_tell(oracle, asked, ctx)
            tuner.save()
            if stopped:
                break
        if ctx.scale.role is Role.WORKER and n > 1:
            # keras-tuner's chief stops once every tuner id it has met was told
            # to stop; the oracle has stopped, so each slot now hears it too.
            for slot in slots:
                oracle.create_trial(slot)

    def _evaluate_and_tell(self, oracle: Any, asked: list, ctx: SearchContext) -> None:
        by_epochs: dict[int | None, list] = {}
        for trial in asked:
            values = trial.hyperparameters.values
            epochs = int(values["tuner/epochs"]) if self.uses_epochs and \
                "tuner/epochs" in values else None
            by_epochs.setdefault(epochs, []).append(trial)
        for epochs, trials in by_epochs.items():
            configs = [self.params_of(t, ctx) for t in trials]
            results = ctx.evaluate(configs, epochs=epochs)
            for trial, result in zip(trials, results):
                if result.state is TrialState.COMPLETE:
                    oracle.update_trial(trial.trial_id, {_OBJECTIVE: result.mean_score})
                    trial.status = kt.engine.trial.TrialStatus.COMPLETED
                else:
                    trial.status = kt.engine.trial.TrialStatus.FAILED
                    trial.message = result.reason or "trial failed"
                oracle.end_trial(trial)

    def params_of(self, trial: Any, ctx: SearchContext) -> dict[str, Any]:
        """The builder arguments of a keras-tuner trial (Hyperband's epochs are its budget)."""
        return ctx.space.decode(trial.hyperparameters.values)


def _oracle_seed(seed: int) -> int:
    # keras-tuner treats seed 0 as "no seed" (``seed or random.randint(...)``).
    return seed + 1


def _objective() -> kt.Objective:
    return kt.Objective(_OBJECTIVE, direction="max")


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
        result before it (``BayesianSearch.stacked_parallel_trials``, measured).
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
        ``HyperbandSearch.stacked_parallel_trials`` under the stacked engine
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
    stacked_parallel_trials = 1

    def make_oracle(self, ctx: SearchContext) -> Any:
        return kt.oracles.BayesianOptimizationOracle(
            objective=_objective(), max_trials=ctx.max_trials, seed=_oracle_seed(ctx.seed),
            num_initial_points=ctx.options.num_initial_points,
            max_consecutive_failed_trials=ctx.max_trials,
        )


class HyperbandSearch(_KerasTunerStrategy):
    """Hyperband (keras-tuner ``HyperbandOracle``), with epochs as the budget."""

    name = "hyperband"
    uses_epochs = True
    partial_budgets = True
    Options = HyperbandOptions
    # Hyperband's proposals within a round do not depend on each other's
    # results: ask for the whole round (the oracle hands out at most that).
    stacked_parallel_trials = 256

    @classmethod
    def check(cls, space: Any, max_trials: int | None) -> None:
        super().check(space, max_trials)
        if "epochs" in space:
            raise ConfigError("strategy 'hyperband' sets each trial's epochs itself (its budget, "
                              "up to epochs); remove 'epochs' from the search space")

    def make_oracle(self, ctx: SearchContext) -> Any:
        oracle = kt.oracles.HyperbandOracle(
            objective=_objective(), max_epochs=ctx.protocol.epochs,
            factor=ctx.options.factor, seed=_oracle_seed(ctx.seed),
            hyperband_iterations=ctx.options.hyperband_iterations,
            max_consecutive_failed_trials=10**6,
        )
        if ctx.max_trials:
            oracle.max_trials = ctx.max_trials
        return oracle
