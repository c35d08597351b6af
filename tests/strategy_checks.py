"""The conformance checks every strategy passes: same space, same data, a complete, valid result.

What a check expects of a strategy is asked of its class (the registry), never
of its name, so a strategy registered by another module (tests/strategies/
test_register.py) runs the same checks through :func:`on_advertising` and
:func:`on_iris`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning import Choice, SearchSpace, TrialState, tune
from nn_tuning.strategies import strategy_class

REG_SPACE = SearchSpace(
    neurons=Choice([4, 16]),
    activation=Choice(["relu", "linear"]),
    learning_rate=Choice([0.01, 0.05]),
)
MANUAL = [{"neurons": 4, "activation": "relu", "learning_rate": 0.01},
          {"neurons": 16, "activation": "linear", "learning_rate": 0.05}]


def check_result(result, strategy, space, n_folds, scoring):
    cls = strategy_class(strategy)
    assert result.strategy == strategy and result.scoring == scoring
    trials = result.trials
    assert len(trials) >= 2
    assert set(trials["state"]) <= {s.value for s in TrialState}
    for name in space:
        assert name in trials.columns
    fold_cols = [f"fold{i}_score" for i in range(n_folds)]
    done = trials[trials["state"] == "complete"]
    assert len(done) >= 1
    np.testing.assert_allclose(done["mean_score"], done[fold_cols].mean(axis=1), rtol=1e-6)
    assert (trials["fit_seconds"] > 0).all()
    if cls.partial_budgets:  # the best is among those that trained the most epochs
        done = done[done["budget"] == done["budget"].max()]
    assert result.best_score == pytest.approx(done["mean_score"].max())
    # Exactly the builder's arguments: the space's keys (or the user's configs' keys).
    best_row = done.loc[done["mean_score"].idxmax()]
    expected_keys = set(result.trial_params[0]) if cls.takes_configs else set(space)
    assert set(result.best_params) == expected_keys
    for name, value in result.best_params.items():
        assert best_row[name] == value
        if not cls.takes_configs:
            assert value in space[name].values
    # Partial budgets (Hyperband's epochs) are in their own column; the refit trains the
    # run's epochs.
    assert ("budget" in trials.columns) == cls.partial_budgets
    if cls.partial_budgets:
        assert set(trials["budget"]) <= set(range(1, result.extra["epochs"] + 1))
    planned = result.extra["planned_trials"]
    assert planned is None or len(trials) == planned, (len(trials), planned)
    assert result.best_estimator.epochs == result.extra["epochs"]
    assert isinstance(result.best_model, keras.Model)
    assert math.isfinite(result.best_score)


def on_advertising(strategy, X, y):
    """A regression search of ``strategy``, checked; returns the result."""
    result = tune(mlp_regressor, REG_SPACE, X, y, strategy=strategy, cv=3, epochs=9,
                  batch_size=40, max_trials=3, seed=0, configs=MANUAL,
                  scoring="neg_root_mean_squared_error")
    check_result(result, strategy, REG_SPACE, 3, "neg_root_mean_squared_error")
    pred = result.best_model.predict(X[:4], verbose=0)
    assert pred.shape == (4, 1) and np.isfinite(pred).all()
    return result


def on_iris(strategy, X, y):
    """A classification search of ``strategy``, checked; returns the result."""
    space = SearchSpace(neurons=Choice([4, 12]), learning_rate=Choice([0.01, 0.05]))
    result = tune(mlp_classifier, space, X, y, strategy=strategy, cv=3, epochs=6,
                  batch_size=16, max_trials=2, seed=0,
                  configs=[{"neurons": 4, "learning_rate": 0.05},
                           {"neurons": 12, "learning_rate": 0.01}])
    check_result(result, strategy, space, 3, "accuracy")
    assert result.extra["task"] == "classification"
    assert result.best_model.output_shape == (None, 3)
    return result
