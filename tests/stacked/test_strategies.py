"""Every strategy uses the stacked engine by default, in batches, and says so in its trials."""

from __future__ import annotations

import time

import pytest

from model_builders import mlp_regressor
from nn_tuning import Choice, Float, Int, SearchSpace, tune

SPACE = SearchSpace(neurons=Choice([4, 8, 16]), n_layers=Int(1, 2),
                    learning_rate=Float(1e-3, 3e-2, log=True))


def _shared_seconds(trials):
    """Groups of trials whose fit_seconds are equal: each stack's share."""
    return trials.groupby("fit_seconds").size().sort_index().tolist()


@pytest.mark.parametrize("strategy, kwargs", [
    ("grid", {"space": SearchSpace(neurons=[4, 8], activation=["relu", "tanh"])}),
    ("random", {"max_trials": 6}),
    ("manual", {"configs": [{"neurons": 4}, {"neurons": 8, "n_layers": 2}]}),
])
def test_grid_random_and_manual_train_their_candidates_as_stacks(advertising, strategy, kwargs):
    X, y = advertising
    space = kwargs.pop("space", None if strategy == "manual" else SPACE)
    result = tune(mlp_regressor, space, X, y, strategy=strategy, cv=3, epochs=3, batch_size=40,
                  refit=False, **kwargs)
    assert set(result.trials["engine"]) == {"stacked"}
    assert set(result.trials["state"]) == {"complete"}
    # One optimizer type and fold layout: every candidate in one stack, the same share of it.
    assert _shared_seconds(result.trials) == [len(result.trials)]


def test_engine_keras_keeps_one_model_per_configuration(advertising):
    X, y = advertising
    result = tune(mlp_regressor, SPACE, X, y, strategy="random", max_trials=3, cv=2, epochs=2,
                  batch_size=40, refit=False, engine="keras")
    assert set(result.trials["engine"]) == {"keras"}
    assert _shared_seconds(result.trials) == [1, 1, 1]


def test_bayesian_hands_batches_of_proposals_to_the_stacked_engine(advertising):
    X, y = advertising
    args = dict(strategy="bayesian", max_trials=8, cv=2, epochs=2, batch_size=40, refit=False)
    batched = tune(mlp_regressor, SPACE, X, y, options={"parallel_trials": 4}, **args)
    assert set(batched.trials["engine"]) == {"stacked"}
    # Each batch of 4 proposals is one stack: the same share of its time.
    assert _shared_seconds(batched.trials) == [4, 4]
    # By default each proposal waits for the results before it: a stack each (4 proposals
    # show it as well as 8, and each stack is a compiled loop of its own).
    one_by_one = tune(mlp_regressor, SPACE, X, y, **{**args, "max_trials": 4})
    assert _shared_seconds(one_by_one.trials) == [1] * 4


def test_hyperband_trains_each_round_as_one_stack(advertising):
    X, y = advertising
    result = tune(mlp_regressor, SPACE, X, y, strategy="hyperband", max_trials=9, cv=2,
                  epochs=4, batch_size=40, refit=False, options={"factor": 2})
    assert set(result.trials["engine"]) == {"stacked"}
    first_round = result.trials[result.trials["budget"] == result.trials["budget"].min()]
    assert len(first_round) > 1 and first_round["fit_seconds"].nunique() == 1
    assert set(result.best_params) == set(SPACE)


def test_the_engine_is_part_of_the_run_identity(advertising, tmp_path):
    X, y = advertising
    args = dict(strategy="random", max_trials=2, cv=2, epochs=2, batch_size=40, refit=False,
                directory=tmp_path / "run")
    tune(mlp_regressor, SPACE, X, y, engine="stacked", **args)
    from nn_tuning.exceptions import StoreError

    with pytest.raises(StoreError, match="different run"):
        tune(mlp_regressor, SPACE, X, y, engine="keras", **args)


def test_max_seconds_stops_a_huge_random_search_after_its_first_stack(advertising):
    """"As many as fit in one second": configurations are drawn in batches and built as
    stacks fill, so 100,000 of them are never all drawn, looked up or built first."""
    X, y = advertising
    start = time.perf_counter()
    result = tune(mlp_regressor, SPACE, X, y, strategy="random", max_trials=100_000,
                  max_seconds=1, cv=16, epochs=1, batch_size=40, refit=False, engine="stacked")
    assert set(result.trials["engine"]) == {"stacked"}
    # The first stack (at most 512 replicas: 32 configurations of 16 folds) ends the run.
    assert 1 <= len(result.trials) <= 512 // 16
    # Drawing 100,000 configurations alone took 80 s here when they were all drawn first.
    assert time.perf_counter() - start < 60
