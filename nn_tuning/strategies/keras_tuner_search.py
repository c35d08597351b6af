"""Bayesian optimisation and Hyperband through keras-tuner's oracles.

keras-tuner has no cross-validation for Keras models (keras-tuner #139). Here
its oracles only propose configurations: each trial is scored with the run's
protocol (same folds, same scorer) and the mean CV score is the objective.
A failed trial is reported to keras-tuner as ``FailedTrialError``, so the
oracle moves on.

With ``workers > 1`` (or a chief address) the search runs in keras-tuner's own
chief/worker mode (:mod:`nn_tuning.distributed`): this process serves the
oracle and worker processes train.

Hyperband trains each proposed configuration from scratch for the number of
epochs its bracket gives (``tuner/epochs``); those epochs are recorded with
the trial's hyperparameters.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np
from keras_tuner.engine.base_tuner import BaseTuner
from sklearn.exceptions import ConvergenceWarning

from ..distributed import free_port, kerastuner_role, start_local_workers
from ..exceptions import ConfigError, NNTuningError
from ..result import TrialState
from .base import SearchContext, Strategy

_OBJECTIVE = "score"
logger = logging.getLogger("nn_tuning")


class _CVTuner(BaseTuner):
    """A keras-tuner tuner whose trials are scored by the nn-tuning protocol."""

    def __init__(self, oracle: Any, ctx: SearchContext, uses_epochs: bool, **kwargs: Any) -> None:
        self.ctx = ctx
        self.uses_epochs = uses_epochs
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)

    def _populate_initial_space(self) -> None:
        hp = self.oracle.get_space()
        self.ctx.space.declare(hp)
        self.oracle.update_space(hp)

    def pre_create_trial(self) -> None:
        # keras-tuner's oracles draw from Python's and NumPy's global generators,
        # which model building reseeds. Reseeding before each proposal makes it
        # depend on the trial count only, so a resumed search (whose stored trials
        # build no model) proposes what the interrupted one did.
        n = len(getattr(self.oracle, "trials", None) or {})
        random.seed(self.ctx.seed + n)
        np.random.seed((self.ctx.seed + n) % 2**32)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        values = trial.hyperparameters.values
        params = self.ctx.space.decode(values)
        epochs = None
        if self.uses_epochs and "tuner/epochs" in values:
            epochs = int(values["tuner/epochs"])
            params["epochs"] = epochs
        result = self.ctx.run_config(params, epochs=epochs)
        if result.state is not TrialState.COMPLETE:
            raise kt.errors.FailedTrialError(result.reason or "trial failed")
        return {_OBJECTIVE: result.mean_score}

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


class _KerasTunerStrategy(Strategy):
    uses_epochs = False

    def make_oracle(self, ctx: SearchContext) -> Any:
        raise NotImplementedError

    def run(self, ctx: SearchContext) -> None:
        directory, tmp = _project_dir(ctx, self.name)
        try:
            with warnings.catch_warnings():
                # The Gaussian process inside keras-tuner's oracle warns about its
                # own kernel fits on nearly every proposal; nothing a user can act on.
                warnings.filterwarnings("ignore", category=ConvergenceWarning,
                                        module="sklearn.gaussian_process")
                self._search(ctx, directory)
        finally:
            if tmp is not None:
                tmp.cleanup()

    def _search(self, ctx: SearchContext, directory: str) -> None:
        if ctx.options.get("worker_of"):
            self._run_worker(ctx, directory)
        elif ctx.options.get("chief") or ctx.workers > 1:
            self._run_chief(ctx, directory)
        else:
            self._tuner(ctx, directory, self.name).search(verbose=0)

    def _tuner(self, ctx: SearchContext, directory: str, project: str) -> _CVTuner:
        # Resume is the trial store's job: a keras-tuner project left over from
        # an earlier run is replaced, never silently reloaded.
        return _CVTuner(self.make_oracle(ctx), ctx, self.uses_epochs, directory=directory,
                        project_name=project, overwrite=True)

    def _run_worker(self, ctx: SearchContext, directory: str) -> None:
        tuner_id = ctx.options.setdefault("tuner_id", f"{socket.gethostname()}-{os.getpid()}")
        with kerastuner_role(tuner_id, ctx.options["worker_of"]):
            self._tuner(ctx, directory, f"{self.name}_{tuner_id}").search(verbose=0)

    def _run_chief(self, ctx: SearchContext, directory: str) -> None:
        address = ctx.options.get("chief") or f"127.0.0.1:{free_port()}"
        local = ctx.workers if ctx.workers > 1 else 0
        procs = start_local_workers(ctx, self.name, address, local,
                                    ctx.options.get("trials_per_gpu")) if local else []
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                with kerastuner_role("chief", address):
                    self._tuner(ctx, directory, self.name).search(verbose=0)
            except BaseException as exc:  # reported in the calling thread
                errors.append(exc)

        logger.info("keras-tuner chief serving the %s oracle at %s", self.name, address)
        server = threading.Thread(target=serve, name="nn-tuning-chief", daemon=True)
        server.start()
        try:
            while server.is_alive():
                server.join(timeout=1)
                if procs and not any(p.is_alive() for p in procs):
                    codes = [p.exitcode for p in procs]
                    if any(codes):
                        raise NNTuningError(
                            f"keras-tuner workers exited with codes {codes} before the "
                            f"{self.name} search finished; stored trials are kept, rerun to resume"
                        )
                    # Every worker was told to stop: the search is over. keras-tuner's
                    # chief polls for that every 20 s; give it one round, no more.
                    server.join(timeout=25)
                    break
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()
        if errors:
            raise errors[0]


def _oracle_seed(seed: int) -> int:
    # keras-tuner treats seed 0 as "no seed" (``seed or random.randint(...)``).
    return seed + 1


def _objective() -> kt.Objective:
    return kt.Objective(_OBJECTIVE, direction="max")


class BayesianSearch(_KerasTunerStrategy):
    """Gaussian-process Bayesian optimisation (keras-tuner ``BayesianOptimizationOracle``)."""

    name = "bayesian"

    def make_oracle(self, ctx: SearchContext) -> Any:
        if not ctx.max_trials:
            raise ConfigError(f"strategy 'bayesian' needs max_trials >= 1, got {ctx.max_trials!r}")
        return kt.oracles.BayesianOptimizationOracle(
            objective=_objective(), max_trials=ctx.max_trials, seed=_oracle_seed(ctx.seed),
            num_initial_points=ctx.options.get("num_initial_points"),
            max_consecutive_failed_trials=ctx.max_trials,
        )


class HyperbandSearch(_KerasTunerStrategy):
    """Hyperband (keras-tuner ``HyperbandOracle``), with epochs as the budget."""

    name = "hyperband"
    uses_epochs = True

    def make_oracle(self, ctx: SearchContext) -> Any:
        oracle = kt.oracles.HyperbandOracle(
            objective=_objective(), max_epochs=ctx.protocol.epochs,
            factor=int(ctx.options.get("factor", 3)), seed=_oracle_seed(ctx.seed),
            hyperband_iterations=int(ctx.options.get("hyperband_iterations", 1)),
            max_consecutive_failed_trials=10**6,
        )
        if ctx.max_trials:
            oracle.max_trials = ctx.max_trials
        return oracle
