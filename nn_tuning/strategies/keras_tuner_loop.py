"""The ask/evaluate/tell loop over a keras-tuner oracle; the only strategy module that imports keras-tuner.

keras-tuner has no cross-validation for Keras models (keras-tuner #139). Here
its oracles only propose configurations: :class:`OracleLoop` asks the oracle
for up to ``parallel_trials`` trials (distinct tuner ids, as keras-tuner's own
distributed mode keeps several trials in flight), hands them to the search
context as one batch (identical proposals train once), and tells the oracle
each mean CV score. A failed trial is reported as FAILED, so the oracle moves on.

With ``workers > 1`` (or a chief address) the search runs in keras-tuner's own
chief/worker mode (:mod:`nn_tuning.strategies.keras_tuner_workers`).
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np
from keras_tuner.engine.base_tuner import BaseTuner
from sklearn.exceptions import ConvergenceWarning

from ..result import TrialState
from ..scaleout import Role
from .base import SearchContext
from .keras_tuner_workers import run_as_chief, run_as_worker

__all__ = ["OBJECTIVE", "OracleLoop", "objective", "restored_rng"]

#: The name of the score the oracles maximise.
OBJECTIVE = "score"
_RUNNING, _STOPPED = kt.engine.trial.TrialStatus.RUNNING, kt.engine.trial.TrialStatus.STOPPED


def objective() -> kt.Objective:
    """The oracles' objective: the mean CV score, maximised."""
    return kt.Objective(OBJECTIVE, direction="max")


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


class OracleLoop:
    """The search of one keras-tuner strategy: its oracle behind a tuner, asked and told.

    Parameters
    ----------
    strategy
        A strategy of :mod:`nn_tuning.strategies.keras_tuner_search`: its
        ``name``, ``make_oracle(ctx)``, ``params_of(trial, ctx)``,
        ``partial_budgets`` (the oracle's ``tuner/epochs`` are the trials'
        budget) and ``fused_parallel_trials``.
    """

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.name = strategy.name

    def run(self, ctx: SearchContext) -> None:
        """Search here, as keras-tuner's chief, or as a worker of a chief."""
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

    def tuner(self, ctx: SearchContext, directory: str, project: str) -> _CVTuner:
        """A tuner holding a new, seeded oracle (keras-tuner's project in ``directory``)."""
        # Resume is the trial store's job: a keras-tuner project left over from
        # an earlier run is replaced, never silently reloaded.
        oracle = _seeded_proposals(self.strategy.make_oracle(ctx), ctx.seed)
        tuner = _CVTuner(oracle, ctx.space, directory=directory, project_name=project,
                         overwrite=True)
        tuner.oracle.verbose = 0  # keras-tuner prints each trial otherwise; we log
        return tuner

    def ask_evaluate_tell(self, tuner: _CVTuner, ctx: SearchContext) -> None:
        """Until the oracle stops: ask up to ``parallel_trials`` trials, train them, report."""
        oracle = tuner.oracle
        # An evaluator that fuses a batch into one model (a stack) trains a larger
        # batch for little more time: ask for the strategy's fused batch then.
        n = ctx.options.parallel_trials or (
            self.strategy.fused_parallel_trials if ctx.evaluator.fuses_batches else 1)
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
            epochs = int(values["tuner/epochs"]) if self.strategy.partial_budgets and \
                "tuner/epochs" in values else None
            by_epochs.setdefault(epochs, []).append(trial)
        for epochs, trials in by_epochs.items():
            configs = [self.strategy.params_of(t, ctx) for t in trials]
            results = ctx.evaluate(configs, epochs=epochs)
            for trial, result in zip(trials, results):
                if result.state is TrialState.COMPLETE:
                    oracle.update_trial(trial.trial_id, {OBJECTIVE: result.mean_score})
                    trial.status = kt.engine.trial.TrialStatus.COMPLETED
                else:
                    trial.status = kt.engine.trial.TrialStatus.FAILED
                    trial.message = result.reason or "trial failed"
                oracle.end_trial(trial)
