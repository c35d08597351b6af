"""Bayesian optimisation and Hyperband through keras-tuner's oracles.

keras-tuner has no cross-validation for Keras models (keras-tuner #139). Here
its oracles only propose configurations: each trial is scored with the run's
protocol (same folds, same scorer) and the mean CV score is the objective.
A failed trial is reported to keras-tuner as ``FailedTrialError``, so the
oracle moves on.

Hyperband trains each proposed configuration from scratch for the number of
epochs its bracket gives (``tuner/epochs``); those epochs are recorded with
the trial's hyperparameters.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.engine.base_tuner import BaseTuner

from ..exceptions import ConfigError
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
            oracle = self.make_oracle(ctx)
            # Resume is the trial store's job: a keras-tuner project left over from
            # an earlier run is replaced, never silently reloaded.
            tuner = _CVTuner(oracle, ctx, self.uses_epochs, directory=directory,
                             project_name=self.name, overwrite=True)
            tuner.search(verbose=0)
        finally:
            if tmp is not None:
                tmp.cleanup()


def _objective() -> kt.Objective:
    return kt.Objective(_OBJECTIVE, direction="max")


class BayesianSearch(_KerasTunerStrategy):
    """Gaussian-process Bayesian optimisation (keras-tuner ``BayesianOptimizationOracle``)."""

    name = "bayesian"

    def make_oracle(self, ctx: SearchContext) -> Any:
        if not ctx.max_trials:
            raise ConfigError(f"strategy 'bayesian' needs max_trials >= 1, got {ctx.max_trials!r}")
        return kt.oracles.BayesianOptimizationOracle(
            objective=_objective(), max_trials=ctx.max_trials, seed=ctx.seed,
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
            factor=int(ctx.options.get("factor", 3)), seed=ctx.seed,
            hyperband_iterations=int(ctx.options.get("hyperband_iterations", 1)),
            max_consecutive_failed_trials=10**6,
        )
        if ctx.max_trials:
            oracle.max_trials = ctx.max_trials
        return oracle
