"""The fast trial path trains exactly as ``model.fit`` does, and reuses its traced engines."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nn_tuning import fast_fit
from nn_tuning.wrappers import KerasRegressor

EPOCHS, BATCH, SEED = 3, 16, 7


def _builder(neurons=4, activation="relu", optimizer="adam"):
    def build():
        model = keras.Sequential([
            keras.Input(shape=(3,)),
            keras.layers.Dense(neurons, activation=activation),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer=optimizer, loss="mse")
        return model
    return build


def _seeded(build, seed=0):
    keras.utils.set_random_seed(seed)
    return build()


def _plain_fit(build, x, y, epochs=EPOCHS, shuffle=True):
    """What the fast path must reproduce: Keras' own fit on the shuffled dataset."""
    model = _seeded(build)
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=SEED, reshuffle_each_iteration=True)
    history = model.fit(data.batch(BATCH), epochs=epochs, verbose=0, shuffle=False)
    return model, history.history["loss"]


def _fast_fit(build, x, y, key, epochs=EPOCHS, shuffle=True):
    model = _seeded(build)
    history = fast_fit.fit_all_epochs(model, x, y, epochs=epochs, batch_size=BATCH,
                                      shuffle=shuffle, seed=SEED, build=build, key=key)
    return model, history


def _max_diff(a, b):
    return max(float(np.max(np.abs(u.numpy() - v.numpy()))) for u, v in zip(a.weights, b.weights))


@pytest.fixture
def rows(advertising):
    X, y = advertising
    return X[:50], y[:50]  # 50 rows, batch 16: the last batch of each epoch is smaller


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fast_path_learns_the_weights_of_plain_keras_fit(rows, optimizer):
    fast_fit.clear_engines()
    build = _builder(optimizer=optimizer)
    x, y = rows
    plain, losses = _plain_fit(build, x, y)
    fast, history = _fast_fit(build, x, y, key=("identity", optimizer))
    assert _max_diff(plain, fast) == 0.0
    assert plain.optimizer.iterations.numpy() == fast.optimizer.iterations.numpy() == EPOCHS * 4
    # One loss per epoch, as model.fit's History reports it.
    assert history["loss"] == pytest.approx(losses, rel=1e-6)


def test_unshuffled_fast_path_matches_plain_fit(rows):
    build = _builder(activation="linear")
    x, y = rows
    plain, _ = _plain_fit(build, x, y, shuffle=False)
    fast, _ = _fast_fit(build, x, y, key="unshuffled", shuffle=False)
    assert _max_diff(plain, fast) == 0.0


def test_second_fit_of_a_configuration_reuses_its_engine_and_still_matches(rows):
    fast_fit.clear_engines()
    build = _builder(neurons=5)
    x, y = rows
    _fast_fit(build, x[:40], y[:40], key="reuse")
    before = fast_fit.engine_cache_info()
    fast, _ = _fast_fit(build, x, y, key="reuse")
    after = fast_fit.engine_cache_info()
    assert after["hits"] == before["hits"] + 1
    assert after["misses"] == before["misses"]
    plain, _ = _plain_fit(build, x, y)
    assert _max_diff(plain, fast) == 0.0  # nothing of the first fit leaks into the second


def test_wrapper_cv_folds_share_one_engine(rows):
    fast_fit.clear_engines()
    x, y = rows
    reg = KerasRegressor(_builder(neurons=6), epochs=2, batch_size=BATCH, random_state=0, verbose=0)
    reg.fit(x[:40], y[:40])
    before = fast_fit.engine_cache_info()
    reg.fit(x[10:], y[10:])
    after = fast_fit.engine_cache_info()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]


def test_callers_model_is_not_the_engine_and_keeps_its_training(rows):
    build = _builder(neurons=3)
    x, y = rows
    first, _ = _fast_fit(build, x, y, key="own")
    kept = [w.numpy().copy() for w in first.weights]
    _fast_fit(build, x[:20], y[:20], key="own")  # trains the same engine again
    assert all(np.array_equal(k, w.numpy()) for k, w in zip(kept, first.weights))
    assert all(first is not e.model for e in fast_fit._engines.values())


def test_periodic_clearing_bounds_the_cache_without_changing_results(rows, monkeypatch):
    fast_fit.clear_engines()
    x, y = rows
    monkeypatch.setattr(fast_fit, "_CLEAR_EVERY", 2)
    clears = fast_fit.engine_cache_info()["clears"]
    models = [_fast_fit(_builder(neurons=n), x, y, key=("clear", n))[0] for n in (2, 3, 4)]
    info = fast_fit.engine_cache_info()
    assert info["clears"] == clears + 1 and info["size"] == 1
    plain, _ = _plain_fit(_builder(neurons=4), x, y)
    assert _max_diff(plain, models[-1]) == 0.0


def test_zero_epochs_leave_the_model_untouched(rows):
    build = _builder(neurons=2)
    x, y = rows
    model = _seeded(build)
    start = [w.numpy().copy() for w in model.weights]
    history = fast_fit.fit_all_epochs(model, x, y, epochs=0, batch_size=BATCH, seed=SEED,
                                      build=build, key="zero")
    assert history == {}
    assert all(np.array_equal(s, w.numpy()) for s, w in zip(start, model.weights))


def _live_train_graphs():
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) and o.name == "train_step" for o in gc.get_objects())


def test_dropped_engines_free_their_traced_graphs(rows):
    # Keras' TF optimizer registers a tf.custom_gradient per trace whose closure
    # holds the whole traced graph; left registered, every configuration leaks it.
    x, y = rows
    fast_fit.clear_engines()
    before = (fast_fit._custom_gradient_names(), _live_train_graphs())
    for neurons in range(2, 2 + 2 * fast_fit._MAX_ENGINES):
        _fast_fit(_builder(neurons), x, y, key=("leak", neurons), epochs=1)
    assert len(fast_fit._custom_gradient_names() - before[0]) <= fast_fit._MAX_ENGINES
    fast_fit.clear_engines()
    assert fast_fit._custom_gradient_names() == before[0]
    assert _live_train_graphs() <= before[1]


def test_plain_keras_path_of_the_wrapper_does_not_leak_its_graph(rows):
    x, y = rows
    fast_fit.clear_engines()
    before = fast_fit._custom_gradient_names()
    for neurons in (3, 5):
        KerasRegressor(_builder(neurons), fast=False, epochs=1, batch_size=BATCH,
                       random_state=0, verbose=0).fit(x, y)
    assert fast_fit._custom_gradient_names() == before


def _metric_builder(build_metrics=("mae",)):
    def build():
        model = keras.Sequential([
            keras.Input(shape=(3,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer="adam", loss="mse", metrics=list(build_metrics))
        return model
    return build


def test_history_holds_every_epochs_loss_and_compiled_metrics_as_model_fit_does(rows):
    build = _metric_builder(("mae", keras.metrics.RootMeanSquaredError(name="rmse")))
    x, y = rows
    model = _seeded(build)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=SEED,
                                                              reshuffle_each_iteration=True)
    plain = model.fit(data.batch(BATCH), epochs=EPOCHS, verbose=0, shuffle=False).history
    fast, history = _fast_fit(build, x, y, key="metrics")
    assert set(history) == set(plain) == {"loss", "mae", "rmse"}
    for name, values in plain.items():
        assert len(history[name]) == EPOCHS
        assert history[name] == pytest.approx(values, rel=1e-6)
    assert _max_diff(model, fast) == 0.0


def test_sample_weights_train_as_model_fit_does(rows):
    build = _builder(neurons=4)
    x, y = rows
    weights = np.linspace(0.1, 2.0, len(x)).astype("float32")
    model = _seeded(build)
    data = tf.data.Dataset.from_tensor_slices((x, y, weights)).shuffle(
        len(x), seed=SEED, reshuffle_each_iteration=True)
    plain = model.fit(data.batch(BATCH), epochs=EPOCHS, verbose=0, shuffle=False).history
    fast = _seeded(build)
    history = fast_fit.fit_all_epochs(fast, x, y, epochs=EPOCHS, batch_size=BATCH, seed=SEED,
                                      build=build, key="weighted", sample_weight=weights)
    assert _max_diff(model, fast) == 0.0
    assert history["loss"] == pytest.approx(plain["loss"], rel=1e-6)


def test_an_optimizer_instance_shared_by_every_built_model_is_copied_for_the_engine(rows):
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    x, y = rows
    fast_fit.clear_engines()
    plain, _ = _plain_fit(_builder(optimizer=keras.optimizers.Adam(learning_rate=0.01)), x, y)
    fast, _ = _fast_fit(_builder(optimizer=optimizer), x, y, key="shared optimizer")
    assert _max_diff(plain, fast) == 0.0
    assert all(fast.optimizer is not e.model.optimizer for e in fast_fit._engines.values())


def test_a_builder_returning_the_callers_model_is_refused_untrained(rows):
    x, y = rows
    model = _seeded(_builder(neurons=2))
    start = [w.numpy().copy() for w in model.weights]
    with pytest.raises(fast_fit.NotFastError):
        fast_fit.fit_all_epochs(model, x, y, epochs=1, batch_size=BATCH, build=lambda: model,
                                key="prebuilt")
    assert all(np.array_equal(s, w.numpy()) for s, w in zip(start, model.weights))


_RETRACING_SCRIPT = """
import numpy as np
from model_builders import mlp_classifier, mlp_regressor
from nn_tuning import KerasClassifier, KerasRegressor

rng = np.random.RandomState(0)
X = rng.randn(60, 3).astype("float32")
# One fit per configuration, more configurations than TensorFlow's limit of 5
# traces in 10 calls: every fit traces a new engine.
for neurons in range(2, 9):
    for wrapper, builder, y in ((KerasRegressor, mlp_regressor, X.sum(1)),
                                (KerasClassifier, mlp_classifier, (X[:, 0] > 0).astype(int))):
        wrapper(builder, model__neurons=neurons, epochs=2, batch_size=16, verbose=0,
                random_state=0).fit(X, y).partial_fit(X, y).predict(X)
print("trained")
"""


def test_the_fast_path_triggers_no_retracing_warning():
    # TensorFlow logs "triggered tf.function retracing" once a function's code
    # traced 5 times; a library user sees it on stderr. Checked in a fresh process.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _RETRACING_SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained" in proc.stdout
    assert "retracing" not in proc.stderr + proc.stdout
