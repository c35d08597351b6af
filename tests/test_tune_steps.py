"""tune()'s steps: checked before anything is written, typed options, resources released."""

import hashlib
import os
import random
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from model_builders import mlp_regressor
from nn_tuning import Choice, ConfigError, SearchSpace, tune
from nn_tuning.plan import RunPlan, plan_run
from nn_tuning.run_folder import RunFolder, check_run_folder
from nn_tuning.scaleout import ScaleOut
from nn_tuning.strategies import STRATEGIES

SPACE = SearchSpace(neurons=Choice([3, 4, 5, 6]), learning_rate=Choice([0.01, 0.05]))


def folder_digest(folder: Path):
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest())
                  for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "random"}, "strategy 'random' needs max_trials >= 1, got None"),
        ({"strategy": "bayesian", "options": {"num_initial_pointz": 3}, "max_trials": 2},
         "strategy 'bayesian' has no option 'num_initial_pointz'; allowed: num_initial_points, "
         "parallel_trials"),
        ({"strategy": "bayesian", "options": {"worker_of": "127.0.0.1:1"}, "max_trials": 2},
         "strategy 'bayesian' has no option 'worker_of'"),
        ({"strategy": "grid", "options": {"factor": 3}}, "strategy 'grid' has no option 'factor'; "
         "allowed: none"),
        ({"strategy": "hyperband", "options": {"factor": 1}}, "factor must be an integer >= 2, got 1"),
        ({"strategy": "bayesian", "max_trials": 2, "options": {"parallel_trials": 0}},
         "parallel_trials must be an integer >= 1, got 0"),
        ({"strategy": "grid", "engine": "fast"}, "engine must be one of auto, keras, stacked"),
        ({"strategy": "grid", "max_seconds": 0}, "max_seconds must be a number > 0, got 0"),
        ({"strategy": "grid", "chief": "127.0.0.1:9"}, "chief/worker mode is keras-tuner's"),
        ({"strategy": "bayesian", "max_trials": 2, "dask_scheduler": "local"},
         "dask_scheduler runs strategy manual, grid or random, got .bayesian."),
        ({"strategy": "grid", "cv": 1}, "cv must be an integer >= 2"),
    ],
)
def test_a_refused_call_leaves_the_folder_as_it_found_it(tmp_path, advertising, kwargs, match):
    X, y = advertising
    run = tmp_path / "run"
    tune(mlp_regressor, SearchSpace(neurons=Choice([3])), X, y, strategy="grid", cv=2, epochs=1,
         batch_size=40, directory=run / "earlier", refit=False)
    before = folder_digest(run)
    with pytest.raises(ConfigError, match=match):
        tune(mlp_regressor, SPACE, X, y, cv=kwargs.pop("cv", 2), epochs=1, directory=run / "new",
             **kwargs)
    assert folder_digest(run) == before and not (run / "new").exists()


def test_overwrite_deletes_only_a_run_folder(tmp_path, advertising):
    X, y = advertising
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("years of work")
    before = folder_digest(notes)
    with pytest.raises(ConfigError, match="holds no nn-tuning run .*overwrite=True deletes only"):
        tune(mlp_regressor, SPACE, X, y, strategy="grid", cv=2, epochs=1, directory=notes,
             overwrite=True)
    assert folder_digest(notes) == before
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_run_folder(notes / "thesis.txt", overwrite=False, fingerprint="x")


def test_the_corrected_call_after_a_refused_one_runs(tmp_path, advertising):
    X, y = advertising
    with pytest.raises(ConfigError, match="needs max_trials"):
        tune(mlp_regressor, SPACE, X, y, strategy="random", cv=2, epochs=1, directory=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    result = tune(mlp_regressor, SPACE, X, y, strategy="random", cv=2, epochs=1, max_trials=2,
                  batch_size=40, directory=tmp_path / "r", refit=False)
    assert len(result.trials) == 2 and (tmp_path / "r" / "trials.db").is_file()


def test_every_strategy_declares_typed_options():
    for name in STRATEGIES:
        cls = STRATEGIES[name]
        assert cls.name == name
        assert cls.parse_options(None) == cls.Options()
    assert STRATEGIES["hyperband"].parse_options({"factor": 4}).factor == 4


def test_plan_checks_everything_and_writes_nothing(tmp_path, advertising, monkeypatch):
    X, y = advertising
    monkeypatch.chdir(tmp_path)
    plan = plan_run(mlp_regressor, SPACE, X, y, strategy="bayesian", cv=2, scoring=None,
                    epochs=2, batch_size=40, max_trials=3, seed=0, configs=None, task=None,
                    fixed=None, fast=True, options={"parallel_trials": 2}, device=None,
                    scale=ScaleOut(), engine="auto", max_seconds=None)
    assert isinstance(plan, RunPlan) and plan.options.parallel_trials == 2
    assert plan.protocol.task == "regression" and not plan.needs_shared_store
    assert list(tmp_path.iterdir()) == []
    other = plan_run(mlp_regressor, SPACE, X, y, strategy="bayesian", cv=2, scoring=None,
                     epochs=2, batch_size=40, max_trials=3, seed=0, configs=None, task=None,
                     fixed=None, fast=True, options={"parallel_trials": 2}, device=None,
                     scale=ScaleOut(workers=3), engine="auto", max_seconds=None)
    assert other.fingerprint == plan.fingerprint  # how a run executes is not its identity
    assert other.needs_shared_store


def test_a_scratch_folder_is_removed_in_every_outcome():
    with pytest.raises(RuntimeError):
        with RunFolder(None, scratch=True) as folder:
            path = folder.path
            assert path.is_dir() and folder.store_path == path / "trials.db"
            raise RuntimeError("strategy broke")
    assert not path.exists()


def _open_files_under(folder: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


def interrupting_builder(neurons=4, learning_rate=0.01, meta=None):
    if neurons == 5:
        raise KeyboardInterrupt
    return mlp_regressor(neurons=neurons, learning_rate=learning_rate, meta=meta)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_store_is_closed_when_the_search_is_interrupted(tmp_path, advertising):
    X, y = advertising
    with pytest.raises(KeyboardInterrupt):
        # One configuration at a time (the stacked engine builds every model first).
        tune(interrupting_builder, SPACE, X, y, strategy="grid", cv=2, epochs=1, batch_size=40,
             directory=tmp_path / "r", engine="keras")
    assert _open_files_under(tmp_path) == []
    from nn_tuning.store import TrialStore

    store = TrialStore(tmp_path / "r" / "trials.db")
    # ParameterGrid's order: learning_rate 0.01 with neurons 3 and 4 finished before 5 broke.
    assert [t.params["neurons"] for t in store.trials()] == [3, 4]
    store.close()


def test_bayesian_batches_parallel_trials_and_restores_the_global_generators(advertising,
                                                                             tmp_path):
    X, y = advertising
    random.seed(7)
    np.random.seed(7)
    py_state, np_state = random.getstate(), np.random.get_state()
    from nn_tuning.strategies.keras_tuner_loop import OracleLoop
    from nn_tuning.strategies.keras_tuner_search import BayesianSearch

    oracle = OracleLoop(BayesianSearch()).tuner(_Settings(), str(tmp_path), "p").oracle
    proposals = [oracle.create_trial(f"t{i}").hyperparameters.values for i in range(3)]
    assert len(proposals) == 3
    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    result = tune(mlp_regressor, SPACE, X, y, strategy="bayesian", cv=2, epochs=1, batch_size=40,
                  max_trials=5, options={"parallel_trials": 3}, refit=False)
    assert len(result.trials) == 5
    assert len({tuple(sorted(p.items())) for p in result.trial_params}) == 5


class _Settings:
    """The fields a keras-tuner strategy's tuner reads from the search context."""

    max_trials = 5
    seed = 0
    space = SPACE

    class options:
        num_initial_points = 2


def test_mixed_precision_policy_is_restored(advertising):
    X, y = advertising
    assert keras.config.dtype_policy().name == "float32"
    tune(mlp_regressor, SearchSpace(neurons=Choice([3])), X[:60], y[:60], strategy="grid", cv=2,
         epochs=1, batch_size=30, mixed_precision=True, refit=False)
    assert keras.config.dtype_policy().name == "float32"


def test_hyperband_hands_parallel_trials_to_the_evaluator_as_batches(advertising):
    X, y = advertising
    one = tune(mlp_regressor, SPACE, X, y, strategy="hyperband", cv=2, epochs=4, batch_size=40,
               max_trials=6, refit=False, options={"factor": 2})
    three = tune(mlp_regressor, SPACE, X, y, strategy="hyperband", cv=2, epochs=4, batch_size=40,
                 max_trials=6, refit=False, options={"factor": 2, "parallel_trials": 3})
    for result in (one, three):
        assert set(result.best_params) == set(SPACE)
        assert set(result.trials["budget"]) <= {1, 2, 4}
        keys = list(zip(result.trials["neurons"], result.trials["learning_rate"],
                        result.trials["budget"]))
        assert len(keys) == len(set(keys)) and 1 <= len(keys) <= 6


QUIET_SCRIPT = """
import warnings
warnings.simplefilter("always")
from sklearn.datasets import load_diabetes
from model_builders import mlp_regressor
from nn_tuning import Choice, SearchSpace, tune
X, y = load_diabetes(return_X_y=True)
space = SearchSpace(neurons=Choice([3, 4, 5]), learning_rate=Choice([0.01, 0.05]))
for strategy in ("grid", "random", "bayesian", "hyperband"):
    tune(mlp_regressor, space, X[:80], y[:80], strategy=strategy, cv=2, epochs=1, batch_size=40,
         max_trials=3, refit=False)
"""


def test_a_library_user_sees_nothing_printed_and_no_warning_from_the_strategies(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == ""  # keras-tuner's trial tables and "Search: Running Trial" lines
    warned = [line for line in proc.stderr.splitlines()
              if re.search(r"(Deprecation|User|Convergence|FitFailed|Future)Warning", line)]
    assert warned == []


def test_mixed_precision_after_the_same_model_in_float32(advertising):
    """A cached fast-fit engine of the float32 model must not serve its mixed-precision twin."""
    X, y = advertising
    args = dict(strategy="grid", cv=2, epochs=1, batch_size=30, refit=False, engine="keras")
    tune(mlp_regressor, SearchSpace(neurons=Choice([3])), X[:60], y[:60], **args)
    result = tune(mlp_regressor, SearchSpace(neurons=Choice([3])), X[:60], y[:60],
                  mixed_precision=True, **args)
    assert (result.trials["state"] == "complete").all()
    assert keras.config.dtype_policy().name == "float32"


def test_mixed_precision_survives_the_engine_cache_clearing_itself(advertising, monkeypatch):
    """The fast path clears Keras' session every few configurations; Keras' clear_session
    resets the global dtype policy, so the run's later models were built in float32."""
    from nn_tuning import fast_fit

    X, y = advertising
    monkeypatch.setattr(fast_fit, "_CLEAR_EVERY", 1)
    result = tune(mlp_regressor, SearchSpace(neurons=Choice([3, 4, 5])), X[:60], y[:60],
                  strategy="grid", cv=2, epochs=1, batch_size=30, refit=False, engine="keras",
                  mixed_precision=True)
    assert (result.trials["state"] == "complete").all()
    assert fast_fit.engine_cache_info()["clears"] >= 2
    assert keras.config.dtype_policy().name == "float32"


def test_clearing_the_engines_keeps_the_users_keras_settings():
    from nn_tuning.fast_fit import clear_engines

    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.config.disable_interactive_logging()
    try:
        clear_engines()
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        assert not keras.config.is_interactive_logging_enabled()
    finally:
        keras.config.set_dtype_policy("float32")
        keras.config.enable_interactive_logging()
