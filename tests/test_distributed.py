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
    assert list(dask.trials["neurons"]) == [4, 8]
    best_row = dask.trials["mean_score"].idxmax()
    assert dask.best_params == {"neurons": int(dask.trials["neurons"][best_row]),
                                "learning_rate": 0.05}
    # Scores are not compared: Keras draws initializer seeds from Python's global
    # ``random`` module, which Dask's own threads also draw from, so weight
    # initialisation on a Dask worker is not reproducible (seen: 1 fit in ~12).
    assert dask.trials[["fold0_score", "fold1_score"]].notna().all().all()


def test_bad_dask_scheduler_is_named(advertising):
    X, y = advertising
    with pytest.raises(ConfigError, match="dask_scheduler must be 'local' or an address"):
        tune(mlp_regressor, SearchSpace(neurons=[4]), X, y, strategy="grid", cv=2, epochs=1,
             dask_scheduler="nowhere")
