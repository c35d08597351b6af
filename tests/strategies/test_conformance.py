"""Every strategy, same space, same data: a complete, valid result."""

import numpy as np
import pytest

from model_builders import mlp_regressor
from nn_tuning import STRATEGIES, Choice, Float, SearchSpace, tune
from strategy_checks import MANUAL, on_advertising, on_iris


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_on_advertising(strategy, advertising):
    on_advertising(strategy, *advertising)  # as many trials as the strategy planned


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_on_iris(strategy, iris):
    on_iris(strategy, *iris)


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
