"""Successive halving inside the stack: continuation is exact, rungs prune, runs resume, budgets hold."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest

from model_builders import mlp_regressor
from nn_tuning import Choice, ConfigError, Float, SearchSpace, tune
from nn_tuning.strategies.asha import rungs

SPACE = SearchSpace(hidden_layers=Choice([(4,), (8,), (8, 4)]), activation=Choice(["relu", "tanh"]),
                    learning_rate=Float(1e-3, 5e-2, log=True))
KW = dict(cv=3, epochs=9, batch_size=40, seed=0, scoring="neg_root_mean_squared_error")


def test_rungs_follow_the_reduction_factor():
    assert rungs(80, 3, None) == [2, 6, 18, 54, 80]
    assert rungs(9, 3, 1) == [1, 3, 9]
    assert rungs(10, 2, 3) == [3, 6, 10]


def test_promoted_configurations_continue_exactly_and_the_hopeless_stop(advertising, tmp_path):
    X, y = advertising
    result = tune(mlp_regressor, SPACE, X, y, strategy="asha", max_trials=12,
                  options={"min_epochs": 1, "reduction_factor": 3}, refit=False,
                  directory=tmp_path / "run", **KW)
    trials = result.trials
    assert len(trials) == 12 and (trials["engine"] == "stacked").all()
    assert set(trials["budget"]) <= {1, 3, 9} and (trials["budget"] < 9).any()
    assert (trials["budget"] == 9).any()
    assert result.extra["search"]["rungs"] == [1, 3, 9]
    # The rung scores are stored per trial (what the pruner saw).
    with sqlite3.connect(tmp_path / "run" / "trials.db") as db:
        stored = [json.loads(r[0]) for r in db.execute("SELECT intermediate FROM trials")]
    assert all(str(min(b, 1)) in s or b == 9 for s, b in zip(stored, trials["budget"]))
    # A configuration that went through every rung scores as if trained 9 epochs in one go.
    full = trials[trials["budget"] == 9].iloc[0]
    params = result.trial_params[int(full.name)]
    alone = tune(mlp_regressor, None, X, y, strategy="manual", configs=[params],
                 engine="stacked", refit=False, **KW).trials.iloc[0]
    folds = [f"fold{i}_score" for i in range(3)]
    np.testing.assert_allclose(full[folds].to_numpy(float), alone[folds].to_numpy(float),
                               rtol=1e-5)
    # The best is among those that reached the run's epochs.
    assert result.best_score == pytest.approx(trials[trials["budget"] == 9]["mean_score"].max())


def test_a_run_stopped_by_its_deadline_resumes_with_the_same_decisions(advertising, tmp_path):
    X, y = advertising
    opts = {"min_epochs": 1, "slots": 3}
    whole = tune(mlp_regressor, SPACE, X, y, strategy="asha", max_trials=8, options=opts,
                 refit=False, directory=tmp_path / "whole", **KW)
    start = time.perf_counter()
    cut = tune(mlp_regressor, SPACE, X, y, strategy="asha", max_trials=8, options=opts,
               refit=False, directory=tmp_path / "cut", max_seconds=0.01, **KW)
    assert time.perf_counter() - start < 60
    assert (tmp_path / "cut" / "asha.ckpt").is_file()
    assert len(cut.trials) < len(whole.trials)
    resumed = tune(mlp_regressor, SPACE, X, y, strategy="asha", max_trials=8, options=opts,
                   refit=False, directory=tmp_path / "cut", **KW)
    key = lambda t: sorted((json.dumps(p, sort_keys=True), b) for p, b in  # noqa: E731
                           zip(t.trial_params, t.trials["budget"]))
    # Every trial of the uninterrupted run is there, with the same scores; the deadline's
    # snapshots (configurations stored where they stood) come on top.
    assert set(key(whole)) <= set(key(resumed))
    assert resumed.best_params == whole.best_params
    assert resumed.best_score == pytest.approx(whole.best_score, rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(options={"sampler": "grid"}), "option 'sampler' must be one of tpe, random, got 'grid'"),
    (dict(options={"reduction_factor": 1}), "reduction_factor"),
    (dict(max_trials=None), "strategy 'asha' needs max_trials or max_seconds, got neither"),
])
def test_bad_settings_are_refused_before_anything_is_written(advertising, tmp_path, kwargs,
                                                            match):
    X, y = advertising
    args = dict(max_trials=4, directory=tmp_path / "run", **KW) | kwargs
    with pytest.raises(ConfigError, match=match):
        tune(mlp_regressor, SPACE, X, y, strategy="asha", **args)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("strategy", ["asha", "hyperband"])  # every partial-budget strategy
def test_epochs_in_the_space_is_refused(advertising, strategy):
    X, y = advertising
    space = SearchSpace(neurons=Choice([4, 8]), epochs=Choice([3, 9]))
    with pytest.raises(ConfigError, match=f"{strategy}.*remove 'epochs'"):
        tune(mlp_regressor, space, X, y, strategy=strategy, max_trials=2, **KW)


def test_a_time_budget_without_a_strategy_runs_asha_within_its_seconds(advertising):
    X, y = advertising
    start = time.perf_counter()
    result = tune(mlp_regressor, SPACE, X, y, max_seconds=4.0, refit=False,
                  **(KW | {"epochs": 27}))
    assert result.strategy == "asha" and len(result.trials) >= 1
    # Stopped at a segment boundary after the deadline: nothing like a whole stack more.
    assert time.perf_counter() - start < 60


def test_no_strategy_and_no_time_budget_is_refused(advertising):
    X, y = advertising
    with pytest.raises(ConfigError, match="strategy is required .*'asha'.*got None"):
        tune(mlp_regressor, SPACE, X, y, max_trials=3, **KW)
