"""keras-tuner's chief/worker mode on 127.0.0.1 (issue 6)."""

import pytest

from model_builders import mlp_regressor
from nn_tuning import ConfigError, SearchSpace, tune

SPACE = SearchSpace(neurons=[4, 8, 16], learning_rate=[0.01, 0.05])


@pytest.mark.slow
def test_bayesian_with_a_chief_and_two_workers(tmp_path, advertising):
    X, y = advertising
    kwargs = dict(strategy="bayesian", cv=2, epochs=5, batch_size=40, max_trials=4, seed=0)
    result = tune(mlp_regressor, SPACE, X, y, workers=2, directory=tmp_path / "dist", **kwargs)
    trials = result.trials
    assert len(trials) == 4
    assert set(trials["state"]) == {"complete"}
    assert set(trials["worker"]) <= {"tuner0", "tuner1"}  # trained by the workers, not the chief
    local = tune(mlp_regressor, SPACE, X, y, refit=False, **kwargs)
    assert list(trials.columns) == list(local.trials.columns)
    assert result.best_model is not None
    assert (tmp_path / "dist" / "trials.csv").exists()


def test_chief_worker_mode_is_for_keras_tuner_strategies(advertising):
    X, y = advertising
    with pytest.raises(ConfigError, match="chief/worker mode is keras-tuner's.*got 'grid'"):
        tune(mlp_regressor, SPACE, X, y, strategy="grid", chief="127.0.0.1:8000", epochs=1)
    with pytest.raises(ConfigError, match="chief must be HOST:PORT.*got 'nowhere'"):
        tune(mlp_regressor, SPACE, X, y, strategy="bayesian", max_trials=2, chief="nowhere",
             epochs=1)


@pytest.mark.slow
def test_keras_tuner_workers_train_their_parallel_trials_as_one_stack(tmp_path, advertising):
    X, y = advertising
    kwargs = dict(strategy="bayesian", cv=2, epochs=3, batch_size=40, max_trials=4, seed=0,
                  options={"parallel_trials": 2}, refit=False)
    result = tune(mlp_regressor, SPACE, X, y, workers=2, directory=tmp_path / "dist", **kwargs)
    trials = result.trials
    assert len(trials) == 4 and set(trials["state"]) == {"complete"}
    assert set(trials["engine"]) == {"stacked"}  # engine="auto" stacks in a worker too
    assert set(trials["worker"]) <= {"tuner0", "tuner1"}
    # A stack's trials share its time: a worker's two proposals trained together have
    # the same fit_seconds.
    for _, mine in trials.groupby("worker"):
        assert mine["fit_seconds"].value_counts().max() >= 2, list(mine["fit_seconds"])
