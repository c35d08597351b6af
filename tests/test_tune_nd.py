"""tune() on N-D inputs: images (N, H, W, C), grey images (N, H, W), sequences (N, T, F)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from model_builders import cnn_classifier, mlp_classifier, mlp_regressor
from nn_tuning import tune
from nn_tuning.exceptions import NNTuningError

FIXED = {"n_blocks": 1, "dense_units": 16}


@pytest.fixture(scope="module")
def digit_images():
    """150 digits as 8x8x1 images in [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return (X[:150] / 16).astype("float32").reshape(-1, 8, 8, 1), y[:150]


@pytest.mark.parametrize("strategy", ["manual", "grid", "random", "bayesian", "hyperband"])
def test_every_strategy_tunes_a_cnn_on_image_arrays(digit_images, strategy, tmp_path):
    X, y = digit_images
    extra = {"configs": [{"filters": 4}, {"filters": 8}]} if strategy == "manual" else {}
    result = tune(cnn_classifier, {"filters": [4, 8]}, X, y, strategy=strategy, cv=2, epochs=2,
                  max_trials=2, fixed=FIXED, progress=False, directory=tmp_path / "run",
                  **extra)
    assert (result.trials["state"] == "complete").all()
    assert result.best_model.input_shape == (None, 8, 8, 1)
    assert result.best_estimator.predict(X[:4]).shape == (4,)
    loaded = keras.models.load_model(tmp_path / "run" / "best_model.keras")
    np.testing.assert_allclose(loaded.predict(X[:4], verbose=0),
                               result.best_model.predict(X[:4], verbose=0), rtol=1e-5)


def test_grey_images_stack(digit_images):
    """cnn_classifier on (N, 8, 8) reshapes its samples to 8x8x1 first: the stack feeds them so.

    (That each replica trains as its own model.fit on the same batches is
    tests/stacked/test_conv.py's contract; the per-configuration path shuffles
    with Keras' own generator, so its scores differ by its batches.)
    """
    X, y = digit_images
    result = tune(cnn_classifier, {"filters": [3, 4]}, X[..., 0], y, strategy="grid", cv=2,
                  epochs=3, fixed=FIXED, progress=False)
    assert set(result.trials["engine"]) == {"stacked"}
    assert (result.trials["state"] == "complete").all()
    assert result.best_model.input_shape == (None, 8, 8)
    assert result.best_estimator.predict(X[:4, ..., 0]).shape == (4,)


def test_mlps_flatten_images_and_sequences(digit_images):
    X, y = digit_images
    result = tune(mlp_classifier, {"neurons": [8]}, X, y, strategy="grid", cv=2, epochs=2,
                  progress=False)
    assert result.best_model.input_shape == (None, 8, 8, 1)
    assert isinstance(result.best_model.layers[1], keras.layers.Flatten)
    reg = tune(mlp_regressor, {"neurons": [4]}, X[..., 0], y.astype("float32"),
               strategy="grid", cv=2, epochs=1, progress=False)
    assert reg.best_model.input_shape == (None, 8, 8)


def test_x_shape_is_part_of_the_run_identity(digit_images, tmp_path):
    X, y = digit_images
    args = {"strategy": "grid", "cv": 2, "epochs": 1, "progress": False,
            "fixed": {**FIXED, "image_shape": [8, 8, 1]}, "directory": tmp_path / "run"}
    tune(cnn_classifier, {"filters": [4]}, X.reshape(len(X), 64), y, **args)
    # The same pixels (same bytes) as images are another run: refused, not resumed.
    with pytest.raises(NNTuningError, match="different"):
        tune(cnn_classifier, {"filters": [4]}, X, y, **args)
    again = tune(cnn_classifier, {"filters": [4]}, X.reshape(len(X), 64), y, **args)
    assert again.resumed_trials == 1


def sequence_regressor(units=4, meta=None):
    """A user builder for sequences: the input shape from scikeras' meta["X_shape_"]."""
    model = keras.Sequential([keras.Input(meta["X_shape_"][1:]),
                              keras.layers.Conv1D(units, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_sequences_with_a_user_builder_and_worker_processes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 10, 2)).astype("float32")
    y = X[:, :, 0].mean(axis=1) - X[:, :, 1].mean(axis=1)
    result = tune(sequence_regressor, {"units": [2, 4]}, X, y, strategy="grid", cv=2, epochs=2,
                  batch_size=16, progress=False, workers=2)
    assert (result.trials["state"] == "complete").all() and result.n_trials == 2
    assert set(result.trials["engine"]) == {"stacked"}  # one stack, sent to a worker process
    assert result.best_estimator.predict(X[:3]).shape == (3,)


@pytest.mark.parametrize(("X", "match"), [
    (np.ones(10), r"at least 2 dimensions.*got shape \(10,\)"),
    (np.ones((9, 2, 2)), r"same number of samples, got 9 and 10"),
    (np.where(np.arange(40).reshape(10, 2, 2) == 7, np.nan, 1.0),
     r"NaN .* \(first at row 1, position \(1, 1\)\)"),
])
def test_bad_nd_input_is_one_line(X, match, tmp_path):
    with pytest.raises(NNTuningError, match=match):
        tune(cnn_classifier, {"filters": [4]}, X, np.arange(10) % 2, strategy="grid",
             directory=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_fast_path_trains_a_cnn_on_images_as_model_fit_does(digit_images):
    import tensorflow as tf

    from nn_tuning import fast_fit

    X, y = digit_images[0][:40], digit_images[1][:40]

    def build():
        return cnn_classifier(meta={"X_shape_": X.shape, "n_features_in_": 8, "n_classes_": 10},
                              filters=4, n_blocks=1, dense_units=8)

    keras.utils.set_random_seed(0)
    plain = build()
    data = tf.data.Dataset.from_tensor_slices((X, y)).shuffle(40, seed=3,
                                                               reshuffle_each_iteration=True)
    plain.fit(data.batch(16), epochs=2, verbose=0, shuffle=False)
    keras.utils.set_random_seed(0)
    fast = build()
    fast_fit.fit_all_epochs(fast, X, y, epochs=2, batch_size=16, shuffle=True, seed=3,
                            build=build, key="cnn-images")
    keras.utils.set_random_seed(0)
    untrained = build()
    for a, b, c in zip(plain.weights, fast.weights, untrained.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert any(np.abs(a.numpy() - c.numpy()).max() > 1e-3
               for a, c in zip(plain.weights, untrained.weights))
