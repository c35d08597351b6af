"""A fit with ``random_state`` leaves the process's random state as it found it."""

import random
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.common import global_state
from keras.src.random import seed_generator
from tensorflow.python.eager import context
from tensorflow.python.framework import config

from model_builders import mlp_regressor
from nn_tuning import KerasRegressor
from nn_tuning.seeding import scoped_seed


def _state():
    gen = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].copy(),
        "tf_seed": context.global_seed(),
        "keras_seed": global_state.get_global_attribute("global_random_seed"),
        "keras_generator": gen,
        "keras_generator_state": None if gen is None else gen.state.numpy().tolist(),
        "determinism": config.is_op_determinism_enabled(),
    }


def _fit(fast=True, seed=3):
    X = np.random.RandomState(0).randn(40, 3).astype("float32")
    KerasRegressor(mlp_regressor, model__neurons=4, epochs=2, batch_size=10, verbose=0,
                   random_state=seed, fast=fast).fit(X, X.sum(1))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("process_seed", [None, 99])
def test_a_seeded_fit_leaves_every_global_random_state_as_it_found_it(fast, process_seed):
    if process_seed is None:
        # as a process that never seeded anything
        global_state.set_global_attribute("global_random_seed", None)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
        tf.random.set_seed(None)
    else:
        keras.utils.set_random_seed(process_seed)
    keras.random.normal((1,))  # the global seed generator exists and has moved
    before = _state()
    np.testing.assert_array_equal(before.pop("numpy"), _state()["numpy"])
    _fit(fast)
    after = _state()
    np.testing.assert_array_equal(after.pop("numpy"), np.random.get_state()[1])
    assert after == before


def test_unseeded_draws_after_seeded_fits_stay_distinct():
    # scikeras' own test: after seeded training, unseeded TensorFlow draws must not repeat.
    tf.random.set_seed(None)
    global_state.set_global_attribute("global_random_seed", None)
    draws = []
    for _ in range(10):
        _fit(seed=0)
        draws.append(float(tf.random.uniform([1])[0]))
        draws.append(float(tf.random.uniform([1])[0]))
        draws.append(float(keras.random.uniform((1,))[0]))
        draws.append(np.random.rand())
        draws.append(random.random())
    assert len(set(draws)) == len(draws)


def test_a_seeded_process_goes_on_drawing_as_if_the_fit_had_not_run():
    keras.utils.set_random_seed(5)
    expected = [float(tf.random.uniform([1])[0]) for _ in range(3)]
    keras.utils.set_random_seed(5)
    got = [float(tf.random.uniform([1])[0])]
    _fit(seed=0)
    got += [float(tf.random.uniform([1])[0]) for _ in range(2)]
    assert got == expected


def test_seeding_is_restored_after_an_error():
    before = random.getstate()
    with pytest.raises(RuntimeError, match="inside"):
        with scoped_seed(1):
            raise RuntimeError("inside")
    assert random.getstate() == before


def test_seeded_fits_in_threads_are_each_reproducible():
    X = np.random.RandomState(0).randn(40, 3).astype("float32")

    def predict(seed):
        est = KerasRegressor(mlp_regressor, model__neurons=4, epochs=3, batch_size=10,
                             verbose=0, random_state=seed, fast=False)
        return est.fit(X, X.sum(1)).predict(X[:5])

    alone = {seed: predict(seed) for seed in (1, 2)}
    results = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, predict(s)))
               for s in (1, 2, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (1, 2):
        np.testing.assert_array_equal(results[seed], alone[seed])
