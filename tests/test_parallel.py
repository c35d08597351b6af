"""Parallel grid and random search: whole configurations per worker, no oversubscription."""

import os

import pytest
from joblib import Parallel, cpu_count, delayed

from model_builders import mlp_regressor
from nn_tuning import Choice, SearchSpace, tune
from nn_tuning.parallel import TF_THREAD_VARS, FoldBatchBackend, fold_batches, worker_threads


def _pid_and_env(task):
    return task, os.getpid(), {v: os.environ.get(v) for v in TF_THREAD_VARS}


def test_backend_batches_one_configurations_folds_and_sizes_tf_thread_pools(monkeypatch):
    for var in TF_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    backend = FoldBatchBackend(n_splits=3)
    assert backend.compute_batch_size() == 3
    env = backend._prepare_worker_env(n_jobs=2)
    assert {env[v] for v in TF_THREAD_VARS} == {str(worker_threads(2))}
    assert worker_threads(2) == max(1, cpu_count() // 2) and worker_threads(10**6) == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")  # an explicit setting wins
    assert backend._prepare_worker_env(n_jobs=2)["TF_NUM_INTRAOP_THREADS"] == "3"


def test_every_configurations_folds_run_in_one_process():
    n_splits, n_configs = 3, 4
    with fold_batches(workers=2, n_splits=n_splits):
        out = Parallel(n_jobs=2, pre_dispatch="all")(
            delayed(_pid_and_env)(i) for i in range(n_configs * n_splits))
    assert [task for task, _, _ in out] == list(range(n_configs * n_splits))
    for c in range(n_configs):
        pids = {pid for _, pid, _ in out[c * n_splits:(c + 1) * n_splits]}
        assert len(pids) == 1, f"configuration {c}'s folds ran in processes {pids}"
    assert all(env[v] == str(worker_threads(2)) for _, _, env in out for v in TF_THREAD_VARS)


@pytest.mark.parametrize("strategy", ["grid", "random"])
def test_two_workers_score_like_one(advertising, strategy):
    X, y = advertising
    space = SearchSpace(neurons=Choice([3, 6, 9]))
    # engine="keras": under the default engine these MLPs stack in this process and the
    # workers are only the fallback, so nothing would run in them.
    kwargs = dict(strategy=strategy, cv=2, epochs=2, batch_size=40, refit=False,
                  max_trials=2 if strategy == "random" else None, engine="keras")
    one = tune(mlp_regressor, space, X, y, workers=1, **kwargs)
    two = tune(mlp_regressor, space, X, y, workers=2, **kwargs)
    assert set(one.trials["worker"]) == {"main"}
    assert two.trials["worker"].nunique() > 1, list(two.trials["worker"])  # both processes
    assert os.getpid() not in {int(w.split("-")[1]) for w in two.trials["worker"]}
    key = lambda r: sorted(zip(r.trials["neurons"], r.trials["mean_score"]))  # noqa: E731
    assert [n for n, _ in key(one)] == [n for n, _ in key(two)]
    # One TensorFlow thread per worker against two in-process: same training, float noise at most.
    assert [s for _, s in key(two)] == pytest.approx([s for _, s in key(one)], rel=1e-4)
