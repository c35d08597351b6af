"""Where chunks train: local worker processes and a Dask cluster score as this process does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from model_builders import mlp_regressor
from nn_tuning import SearchSpace, tune
from nn_tuning.evaluation import make_protocol
from nn_tuning.evaluators import InProcessEvaluator, StackedEvaluator
from nn_tuning.result import TrialState
from nn_tuning.stacked.executors import DaskExecutor, InProcessExecutor, ProcessExecutor
from nn_tuning.stacked.plan import build

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [{"neurons": n, "optimizer": o} for n in (3, 6, 9) for o in ("adam", "sgd")]


def _groups(protocol, X, y, executor, max_replicas=4):
    evaluator = StackedEvaluator(protocol, X, y, fallback=InProcessEvaluator(protocol, X, y),
                                 max_replicas=max_replicas, executor=executor)
    with evaluator:
        return list(evaluator.evaluate_groups(CONFIGS))


def _scores(groups):
    return {repr(t.params): t.fold_scores for g in groups for t in g}


def test_worker_processes_train_whole_stacks_and_score_as_in_process(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=3, batch_size=40, seed=0)
    here = _groups(protocol, X, y, InProcessExecutor())
    there = _groups(protocol, X, y, ProcessExecutor(2))
    # Optimizers share stacks; at most 4 replicas (2 configurations x 2 folds): 3 stacks,
    # each one group (one commit).
    assert sorted(len(g) for g in there) == [2, 2, 2] == sorted(len(g) for g in here)
    workers = {t.worker for g in there for t in g}
    assert all(w.startswith("pid-") for w in workers) and f"pid-{os.getpid()}" not in workers
    assert {t.worker for g in here for t in g} == {"main"}
    assert all(t.engine == "stacked" for g in there for t in g)
    a, b = _scores(here), _scores(there)
    assert a.keys() == b.keys()
    for key in a:  # one TensorFlow thread per worker against two here: float noise at most
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_a_failed_chunk_is_recorded_and_a_deadline_reaches_the_worker(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=16, batch_size=40, seed=0)
    chunk = [build(protocol, X, y, i, c) for i, c in enumerate(CONFIGS[:2])]
    executor = ProcessExecutor(1)
    try:
        # Rows the folds index are missing in the worker: the chunk raises there.
        failed = list(executor.submit(chunk, protocol, X[:10], y[:10], 0, None))
        # A deadline already past (this process's clock, sent as wall-clock time): the
        # stack stops after its first segment of epochs (16 // 8 = 2).
        late = list(executor.submit(chunk, protocol, X, y, 0, time.perf_counter()))
        groups = failed + late + list(executor.drain())
    finally:
        executor.close()
    assert len(groups) == 2
    broken, stopped = sorted(groups, key=lambda g: g[0].state is TrialState.COMPLETE)
    assert [t.params for t in broken] == CONFIGS[:2]
    assert all(t.state is TrialState.FAILED for t in broken)
    assert "worker-processes executor" in broken[0].reason and "\n" not in broken[0].reason
    assert all(t.state is TrialState.COMPLETE for t in stopped)
    assert [t.budget for t in stopped] == [2, 2]


def test_a_dask_worker_killed_mid_chunk_loses_nothing(advertising):
    distributed = pytest.importorskip("distributed")
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=400, batch_size=40, seed=0)
    chunk = [build(protocol, X, y, i, c) for i, c in enumerate(CONFIGS[:2])]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = DaskExecutor(client)
        groups = list(executor.submit(chunk, protocol, X, y, 0, None))
        deadline = time.monotonic() + 120
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        (busy,) = [w for w, tasks in client.processing().items() if tasks]
        time.sleep(2)  # mid-chunk: TensorFlow is imported and the stack trains
        pid = client.run(os.getpid, workers=[busy])[busy]
        os.kill(pid, signal.SIGKILL)
        groups += list(executor.drain())
        executor.close()
    trials = [t for g in groups for t in g]
    # Rescheduled on a live worker by Dask: trained once more, returned once, not failed.
    assert [t.params for t in trials] == CONFIGS[:2]
    assert all(t.state is TrialState.COMPLETE for t in trials), [t.reason for t in trials]
    assert all(t.worker != busy for t in trials)


def test_workers_run_a_stacked_grid_in_worker_processes(advertising, tmp_path):
    X, y = advertising
    space = SearchSpace(neurons=[3, 6], learning_rate=[0.01, 0.05])
    kwargs = dict(strategy="grid", cv=2, epochs=2, batch_size=40, seed=0, refit=False,
                  engine="stacked")
    one = tune(mlp_regressor, space, X, y, **kwargs)
    two = tune(mlp_regressor, space, X, y, workers=2, directory=tmp_path / "run", **kwargs)
    # Resumed on the same folder: every trial comes from the store, none trains again.
    again = tune(mlp_regressor, space, X, y, workers=2, directory=tmp_path / "run", **kwargs)
    assert again.trials.equals(two.trials)
    assert set(one.trials["worker"]) == {"main"}
    assert all(w.startswith("pid-") and w != f"pid-{os.getpid()}" for w in two.trials["worker"])
    assert set(two.trials["engine"]) == {"stacked"}
    np.testing.assert_allclose(two.trials["mean_score"], one.trials["mean_score"], rtol=1e-5)


def test_dask_trains_one_task_per_stack_and_scores_as_in_process(advertising):
    distributed = pytest.importorskip("distributed")
    X, y = advertising
    space = SearchSpace(neurons=[3, 6], learning_rate=[0.01, 0.05])
    kwargs = dict(strategy="grid", cv=2, epochs=2, batch_size=40, seed=0, refit=False)
    local = tune(mlp_regressor, space, X, y, **kwargs)
    # Two single-threaded workers in this process: a real scheduler, cheap to start.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        on_dask = tune(mlp_regressor, space, X, y, dask_scheduler=cluster.scheduler_address,
                       **kwargs)
        addresses = set(cluster.workers[name].address for name in cluster.workers)
    # engine="auto" stacks on Dask too; the trial names the Dask worker that trained it.
    assert set(on_dask.trials["engine"]) == {"stacked"}
    assert set(on_dask.trials["worker"]) <= addresses
    np.testing.assert_allclose(on_dask.trials["mean_score"], local.trials["mean_score"],
                               rtol=1e-5)


def test_a_stack_per_jax_device_scores_as_one_device():
    pytest.importorskip("jax")
    code = textwrap.dedent("""
        import json
        import jax
        import numpy as np
        from sklearn.datasets import load_diabetes
        from model_builders import mlp_regressor
        from nn_tuning.evaluation import make_protocol
        from nn_tuning.stacked.executors import DeviceExecutor
        from nn_tuning.stacked.plan import build, chunk_trials, plan_chunks, run_chunk

        X, y = load_diabetes(return_X_y=True)
        X, y = X[:120].astype("float32"), (y[:120] / 100).astype("float32")
        p = make_protocol(mlp_regressor, X, y, cv=2, epochs=3, batch_size=30, seed=0)
        configs = [{"neurons": n, "optimizer": o} for n in (3, 6) for o in ("adam", "sgd")]
        chunks = plan_chunks([build(p, X, y, i, c) for i, c in enumerate(configs)], p,
                             max_replicas=4)
        one = {repr(t.params): t.fold_scores for c in chunks
               for t in chunk_trials(run_chunk(c, p, X, y, 0))}
        ex = DeviceExecutor(jax.devices())
        groups = [g for c in chunks for g in ex.submit(c, p, X, y, 0, None)]
        groups += list(ex.drain())
        ex.close()
        many = {repr(t.params): t.fold_scores for g in groups for t in g}
        print(json.dumps({"devices": [str(d) for d in jax.devices()], "one": one,
                          "many": many, "workers": sorted({t.worker for g in groups for t in g})}))
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out["devices"]) == 2
    assert out["workers"] == ["cpu:0", "cpu:1"]  # both devices trained a stack
    assert out["one"].keys() == out["many"].keys()
    for key, scores in out["one"].items():
        np.testing.assert_allclose(out["many"][key], scores, rtol=1e-5, atol=1e-6)


def test_a_ctrl_c_between_stacks_leaves_no_worker_process_behind(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=2, batch_size=40, seed=0)
    evaluator = StackedEvaluator(protocol, X, y, fallback=InProcessEvaluator(protocol, X, y),
                                 max_replicas=4, executor=ProcessExecutor(2))
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with evaluator:
            for group in evaluator.evaluate_groups(CONFIGS):
                seen.append(group)
                raise KeyboardInterrupt  # as Ctrl-C after the first stack was committed
    assert len(seen) == 1 and seen[0]
    pid = int(seen[0][0].worker.split("-")[1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the pool is shut down with its processes
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"worker process {pid} still runs after the interrupt")
