"""Every strategy, same space, same data: a complete, valid result."""

import math

import keras
import numpy as np
import pytest

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning import STRATEGIES, Choice, Float, SearchSpace, TrialState, tune

REG_SPACE = SearchSpace(
    neurons=Choice([4, 16]),
    activation=Choice(["relu", "linear"]),
    learning_rate=Choice([0.01, 0.05]),
)
MANUAL = [{"neurons": 4, "activation": "relu", "learning_rate": 0.01},
          {"neurons": 16, "activation": "linear", "learning_rate": 0.05}]


def check_result(result, strategy, space, n_folds, scoring):
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
    partial = strategy in ("hyperband", "asha")  # trials of several budgets (epochs)
    if partial:  # the best is among those that trained the most epochs
        done = done[done["budget"] == done["budget"].max()]
    assert result.best_score == pytest.approx(done["mean_score"].max())
    # Exactly the builder's arguments: the space's keys (manual: its configs' keys).
    best_row = done.loc[done["mean_score"].idxmax()]
    expected_keys = set(space) if strategy != "manual" else set(result.trial_params[0])
    assert set(result.best_params) == expected_keys
    for name, value in result.best_params.items():
        assert best_row[name] == value
        if strategy != "manual":
            assert value in space[name].values
    # Hyperband's and ASHA's epochs are their budget, in their own column; the refit trains
    # the run's epochs.
    assert ("budget" in trials.columns) == partial
    if partial:
        assert set(trials["budget"]) <= set(range(1, result.extra["epochs"] + 1))
    assert result.best_estimator.epochs == result.extra["epochs"]
    assert isinstance(result.best_model, keras.Model)
    assert math.isfinite(result.best_score)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_on_advertising(strategy, advertising):
    X, y = advertising
    result = tune(mlp_regressor, REG_SPACE, X, y, strategy=strategy, cv=3, epochs=9,
                  batch_size=40, max_trials=3, seed=0, configs=MANUAL,
                  scoring="neg_root_mean_squared_error")
    check_result(result, strategy, REG_SPACE, 3, "neg_root_mean_squared_error")
    expected = {"manual": 2, "grid": 8, "random": 3, "bayesian": 3, "hyperband": 3,
                "asha": 3}[strategy]
    assert len(result.trials) == expected
    pred = result.best_model.predict(X[:4], verbose=0)
    assert pred.shape == (4, 1) and np.isfinite(pred).all()


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_on_iris(strategy, iris):
    X, y = iris
    space = SearchSpace(neurons=Choice([4, 12]), learning_rate=Choice([0.01, 0.05]))
    result = tune(mlp_classifier, space, X, y, strategy=strategy, cv=3, epochs=6,
                  batch_size=16, max_trials=2, seed=0,
                  configs=[{"neurons": 4, "learning_rate": 0.05}, {"neurons": 12, "learning_rate": 0.01}])
    check_result(result, strategy, space, 3, "accuracy")
    assert result.extra["task"] == "classification"
    assert result.best_model.output_shape == (None, 3)


def test_strategies_share_the_folds_so_scores_agree(advertising):
    X, y = advertising
    config = {"neurons": 16, "activation": "relu", "learning_rate": 0.05}
    manual = tune(mlp_regressor, None, X, y, strategy="manual", configs=[config], cv=3,
                  epochs=9, batch_size=40, seed=3, refit=False)
    grid = tune(mlp_regressor, SearchSpace({k: [v] for k, v in config.items()}), X, y,
                strategy="grid", cv=3, epochs=9, batch_size=40, seed=3, refit=False)
    cols = [f"fold{i}_score" for i in range(3)]
    np.testing.assert_allclose(manual.trials[cols].to_numpy(), grid.trials[cols].to_numpy(),
                               rtol=1e-5)


def test_random_search_samples_log_floats(advertising):
    X, y = advertising
    space = SearchSpace(neurons=Choice([8]), learning_rate=Float(1e-3, 1e-1, log=True))
    result = tune(mlp_regressor, space, X, y, strategy="random", cv=2, epochs=3,
                  batch_size=40, max_trials=3, seed=0, refit=False)
    lrs = result.trials["learning_rate"]
    assert lrs.between(1e-3, 1e-1).all() and lrs.nunique() == 3


def test_manual_with_two_workers_matches_one(advertising):
    X, y = advertising
    configs = MANUAL + [{"neurons": 8, "activation": "relu", "learning_rate": 0.05}]
    # engine="keras": by default these MLPs stack in this process (workers only the fallback).
    kwargs = dict(strategy="manual", configs=configs, cv=2, epochs=5, batch_size=40, seed=0,
                  refit=False, engine="keras")
    one = tune(mlp_regressor, None, X, y, **kwargs)
    two = tune(mlp_regressor, None, X, y, workers=2, **kwargs)
    assert two.trials["worker"].nunique() > 1, list(two.trials["worker"])  # both processes
    key = ["neurons", "activation", "learning_rate"]
    a = one.trials.sort_values(key).reset_index(drop=True)
    b = two.trials.sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(a["mean_score"], b["mean_score"], rtol=1e-5)
    assert set(b["state"]) == {"complete"}
