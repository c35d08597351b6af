import pytest

from model_builders import mlp_regressor
from nn_tuning import ConfigError, SearchSpace, tune


@pytest.mark.slow
def test_grid_on_a_local_dask_cluster_matches_a_local_run(advertising):
    X, y = advertising
    space = SearchSpace(neurons=[4, 8], learning_rate=[0.05])
    kwargs = dict(strategy="grid", cv=2, epochs=5, batch_size=40, seed=0, refit=False)
    local = tune(mlp_regressor, space, X, y, **kwargs)
    dask = tune(mlp_regressor, space, X, y, dask_scheduler="local", workers=2, **kwargs)
    assert list(dask.trials.columns) == list(local.trials.columns)
    assert list(dask.trials["state"]) == ["complete", "complete"]
    assert dask.best_params == local.best_params
    cols = ["fold0_score", "fold1_score"]
    assert dask.trials[cols].to_numpy() == pytest.approx(local.trials[cols].to_numpy(), rel=1e-5)


def test_bad_dask_scheduler_is_named(advertising):
    X, y = advertising
    with pytest.raises(ConfigError, match="dask scheduler must be 'local' or an address"):
        tune(mlp_regressor, SearchSpace(neurons=[4]), X, y, strategy="grid", cv=2, epochs=1,
             dask_scheduler="nowhere")
