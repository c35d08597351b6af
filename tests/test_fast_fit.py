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
    loss = fast_fit.fit_all_epochs(model, x, y, epochs=epochs, batch_size=BATCH,
                                   shuffle=shuffle, seed=SEED, build=build, key=key)
    return model, loss


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
    fast, loss = _fast_fit(build, x, y, key=("identity", optimizer))
    assert _max_diff(plain, fast) == 0.0
    assert plain.optimizer.iterations.numpy() == fast.optimizer.iterations.numpy() == EPOCHS * 4
    # Every epoch has the same rows: the run's mean loss is the mean of the epochs' losses.
    assert loss == pytest.approx(np.mean(losses), rel=1e-5)


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
    loss = fast_fit.fit_all_epochs(model, x, y, epochs=0, batch_size=BATCH, seed=SEED,
                                   build=build, key="zero")
    assert np.isnan(loss)
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
