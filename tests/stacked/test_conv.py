"""Convolution stacks keep the engine's contract: each replica trains as its own ``model.fit``.

CNNs of one stack share their input, kernel sizes, padding, activations and
pooling; filters, Dense widths, dropout and learning rates differ. Plus the
ways a user writes the same model (Sequential grown with ``add()``, a list,
``build()``, functional) read as one structure, and MLPs on N-D samples
(Flatten first) stack.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from model_builders import cnn_classifier, mlp_classifier
from nn_tuning.stacked import NotStackable, read_structure

from .test_engine import _accuracy, _build, _compare


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    return X[:160], y[:160].reshape(-1, 1)


_META = {"n_classes": 10, "meta": {"X_shape_": (160, 8, 8, 1), "n_features_in_": 64,
                                   "n_classes_": 10}}


def _cnn_configs():
    return [dict(filters=4, n_blocks=2, dense_units=12, learning_rate=0.01),
            dict(filters=6, n_blocks=2, dense_units=8, learning_rate=0.003),
            dict(filters=3, n_blocks=2, dense_units=16, optimizer="sgd", learning_rate=0.05)]


def test_cnn_one_step_matches_model_fit(digits):
    X, y = digits
    folds = [(np.arange(0, 40), np.arange(120, 160)), (np.arange(40, 80), np.arange(0, 40))]
    _compare(cnn_classifier, _cnn_configs(), X, y, folds, 1, 40, _META, _accuracy,
             run_eagerly=True)


def test_cnn_15_epochs_match_model_fit(digits):
    X, y = digits
    folds = [(np.arange(0, 120), np.arange(120, 160))]
    rel, score = _compare(cnn_classifier, _cnn_configs(), X, y, folds, 15, 40, _META, _accuracy)
    assert rel <= 1e-4
    assert score <= 1e-4


def _regularized_cnn(conv_l2=0.0, conv_bias_l1=0.0, dense_l2=0.0, learning_rate=0.01, **_):
    """Keras' regularizers on convolution kernels and biases (and a Dense kernel), strengths
    differing between stack-mates; 0 means none, so some replicas have no regularizer."""
    def reg(kind, value):
        return getattr(keras.regularizers, kind)(value) if value else None

    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            kernel_regularizer=reg("L2", conv_l2),
                            bias_regularizer=reg("L1", conv_bias_l1)),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(4, 2, activation="relu", kernel_regularizer=reg("L2", conv_l2)),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="relu", kernel_regularizer=reg("L2", dense_l2)),
        keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


_REGULARIZED = [dict(conv_l2=1e-2, conv_bias_l1=1e-2), dict(conv_l2=3e-3, dense_l2=1e-2),
                dict(learning_rate=0.003), dict(conv_bias_l1=5e-2, learning_rate=0.02)]


@pytest.mark.parametrize("epochs", [1, 15])
def test_convolution_regularizers_match_model_fit(digits, epochs):
    X, y = digits
    np.testing.assert_allclose(read_structure(_regularized_cnn(**_REGULARIZED[0])).penalties,
                               [(0, 1e-2, 1e-2, 0), (0, 1e-2, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)])
    folds = [(np.arange(0, 40 if epochs == 1 else 120), np.arange(120, 160))]
    rel, score = _compare(_regularized_cnn, _REGULARIZED, X, y, folds, epochs, 40, {},
                          _accuracy, run_eagerly=epochs == 1)
    assert rel <= 1e-4 and score <= 1e-4


def _seq_cnn(filters=4, units=8, learning_rate=0.01, **_):
    """A 1-D CNN on sequences, written with add() as the Keras guides do: valid padding,
    an Activation layer, average pooling, global average pooling."""
    model = keras.Sequential()
    model.add(keras.Input((12, 2)))
    model.add(keras.layers.Conv1D(filters, 3))
    model.add(keras.layers.Activation("tanh"))
    model.add(keras.layers.AveragePooling1D(2))
    model.add(keras.layers.Conv1D(filters, 2, padding="same", activation="relu"))
    model.add(keras.layers.GlobalAveragePooling1D())
    model.add(keras.layers.Dense(units, activation="relu"))
    model.add(keras.layers.Dense(3, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


def _flat_rows_cnn(filters=3, units=6, learning_rate=0.01, **_):
    """A CNN fed flat rows of 64 pixels, reshaped inside the model, valid 2x2 kernels."""
    inputs = keras.Input((64,))
    x = keras.layers.Reshape((8, 8, 1))(inputs)
    x = keras.layers.Conv2D(filters, 2, activation="elu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


def test_other_conv_layouts_match_model_fit(digits):
    """Conv1D on sequences (valid, Activation, average and global pooling) and a CNN on flat
    rows (Reshape first, an even kernel, same-padded strided pooling): 10 epochs."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 12, 2)).astype("float32")
    y = (X[:, :4, 0].sum(axis=1) > 0).astype(int) + (X[:, 6:, 1].sum(axis=1) > 1)
    folds = [(np.arange(0, 60), np.arange(60, 90))]
    configs = [dict(units=8, learning_rate=0.01), dict(units=5, learning_rate=0.003)]
    rel, score = _compare(_seq_cnn, configs, X, y.reshape(-1, 1), folds, 10, 30, {}, _accuracy)
    assert rel <= 1e-4 and score <= 1e-4
    Xd, yd = digits
    rel, score = _compare(_flat_rows_cnn, configs, Xd.reshape(len(Xd), 64), yd,
                          [(np.arange(0, 120), np.arange(120, 160))], 10, 40, {}, _accuracy)
    assert rel <= 1e-4 and score <= 1e-4


def test_mlp_on_images_flattens_first_and_matches_model_fit(digits):
    X, y = digits
    meta = {"meta": {"X_shape_": (160, 8, 8, 1), "n_features_in_": 8, "n_classes_": 10}}
    model = _build(mlp_classifier, {"hidden_layers": (12,)}, **meta)
    assert type(model.layers[0]) is keras.layers.Flatten or any(
        type(layer) is keras.layers.Flatten for layer in model.layers[:2])
    assert read_structure(model).sample_shape == (64,)
    rel, score = _compare(mlp_classifier, [{"hidden_layers": (12,)}, {"hidden_layers": (7, 5)}],
                          X, y, [(np.arange(0, 120), np.arange(120, 160))], 10, 40, meta,
                          _accuracy)
    assert rel <= 1e-4 and score <= 1e-4


def _layers():
    return [keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"), keras.layers.Dense(10, activation="softmax")]


def _assembled(style):
    if style == "list":
        model = keras.Sequential([keras.Input((8, 8, 1)), *_layers()])
    elif style == "add":
        model = keras.Sequential()
        model.add(keras.Input((8, 8, 1)))
        for layer in _layers():
            model.add(layer)
    elif style == "input_shape":
        first, *rest = _layers()
        first = keras.layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 1))
        model = keras.Sequential([first, *rest])
    elif style == "build":
        model = keras.Sequential(_layers())
        model.build((None, 8, 8, 1))
    else:
        inputs = keras.Input((8, 8, 1))
        x = inputs
        for layer in _layers():
            x = layer(x)
        model = keras.Model(inputs, x)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_every_way_of_writing_a_model_reads_as_one_structure():
    styles = ["list", "add", "input_shape", "build", "functional"]
    structures = {style: read_structure(_assembled(style)) for style in styles}
    assert len(set(structures.values())) == 1, structures
    s = structures["list"]
    assert s.sample_shape == (8, 8, 1) and s.head == "flatten" and s.input_dim == 4 * 4 * 4
    assert s.convs[0].pool == ("max", (2, 2), (2, 2), "valid")


@pytest.mark.parametrize("layer, reason", [
    (lambda: keras.layers.Conv2D(4, 3, strides=2), "strides"),
    (lambda: keras.layers.Conv2D(4, 3, dilation_rate=2), "dilation"),
    (lambda: keras.layers.Conv2D(4, 3, kernel_constraint="non_neg"), "kernel_constraint"),
    (lambda: keras.layers.SeparableConv2D(4, 3), "SeparableConv2D layer is not one a stack"),
])
def test_what_cannot_stack_says_why(layer, reason):
    model = keras.Sequential([keras.Input((8, 8, 1)), layer(), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(NotStackable, match=reason):
        read_structure(model)


def test_convolutions_need_a_flatten_or_pooling_head():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(NotStackable, match="Flatten or GlobalAveragePooling"):
        read_structure(model)


def test_dropout_on_the_flattened_input_drops_what_the_dense_layer_reads():
    """Keras' MNIST convnet writes Flatten -> Dropout -> Dense: the stack drops the same place."""
    from nn_tuning.stacked import Replica
    from nn_tuning.stacked.layout import layout, stack_consts, stacked_params
    from nn_tuning.stacked.model import StackedModel
    from nn_tuning.stacked.read_model import weighted_layers

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    s = read_structure(model)
    assert s.input_dropout == 0.5 and s.sample_shape == (16,)
    rep = Replica(s, [(d.kernel.numpy(), d.bias.numpy()) for d in weighted_layers(model)],
                  np.arange(4), seed=0)
    lay = layout([rep])
    consts = stack_consts([rep], lay, np.zeros((1, 16), "float32"), np.zeros((1, 3)), 4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 16)).astype("float32")
    bits = rng.integers(0, 2 ** 32, size=(1, 4, 16), dtype="uint32")
    out = keras.ops.convert_to_numpy(StackedModel(lay, s, 4).forward(
        stacked_params([rep], lay), consts, x, lambda layer, width: bits))
    keep = ((bits >> 8).astype("float32") * 2.0 ** -24 >= 0.5) / 0.5
    kernel, bias = rep.weights[0]
    np.testing.assert_allclose(out[0], (x[0] * keep[0]) @ kernel + bias, rtol=1e-5, atol=1e-6)


def _normed_mlp(units=(8, 6), norm="batch", after=False, learning_rate=0.01, momentum=0.9,
                optimizer="Adam"):
    """An MLP with a normalisation in each hidden block: Dense -> Norm -> ReLU, or Dense(relu)
    -> Norm (``after``), as the Keras guides write both."""
    model = keras.Sequential()
    model.add(keras.Input((30,)))
    for u in units:
        model.add(keras.layers.Dense(u, activation="relu" if after else None))
        model.add(keras.layers.BatchNormalization(momentum=momentum) if norm == "batch"
                  else keras.layers.LayerNormalization())
        if not after:
            model.add(keras.layers.Activation("relu"))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer=getattr(keras.optimizers, optimizer)(learning_rate),
                  loss="binary_crossentropy")
    return model


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X[:150]).astype("float32"), y[:150].reshape(-1, 1)


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("epochs", [1, 12])
def test_normalisation_layers_match_model_fit(cancer, norm, epochs):
    """BatchNormalization (batch moments in training over the real rows of the last, smaller
    batch; moving statistics per replica, used when scoring) and LayerNormalization (moments
    over each replica's own units), before or after the activation."""
    X, y = cancer
    configs = [dict(units=(8, 6), norm=norm, learning_rate=0.01),
               dict(units=(5, 9), norm=norm, learning_rate=0.003, momentum=0.8),
               # A LayerNormalization of 4 ReLU units (often all but one 0: a tiny
               # variance) amplifies float32 rounding over epochs as two model.fit runs
               # would: SGD at 0.02, <1e-5 after 4 epochs, 2e-4 after 12; Adam at 0.02,
               # 1.2e-4; Adam at 0.01, 3.5e-5 (measured). A smaller step there.
               dict(units=(7, 4), norm=norm, after=True, learning_rate=0.02 if norm == "batch"
                    else 0.01, optimizer="SGD" if norm == "batch" else "Adam")]
    # One epoch of 100 rows: batches of 32, 32, 32 and 4 (the last batch's moments are its
    # 4 rows'). More epochs: 96 rows, so that the reference's concatenated epochs keep
    # the stack's batches (tests/stacked/test_engine.py: _fit_like_keras).
    folds = [(np.arange(0, 100 if epochs == 1 else 96), np.arange(100, 150))]
    after = [c for c in configs if c.get("after")]
    for group in (after, [c for c in configs if not c.get("after")]):
        rel, score = _compare(_normed_mlp, group, X, y, folds, epochs, 32, {}, _accuracy,
                              run_eagerly=epochs == 1)
        assert rel <= 1e-4 and score <= 1e-4


def _no_bias_mlp(units=(8, 6), learning_rate=0.01, momentum=0.99, output_bias=True):
    """The guides' BatchNormalization block: ``Dense(use_bias=False) -> BatchNormalization ->
    Activation`` (the normalisation's beta takes the bias's place)."""
    model = keras.Sequential([keras.Input((30,))])
    for u in units:
        model.add(keras.layers.Dense(u, use_bias=False))
        model.add(keras.layers.BatchNormalization(momentum=momentum))
        model.add(keras.layers.Activation("relu"))
    model.add(keras.layers.Dense(1, activation="sigmoid", use_bias=output_bias))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    return model


@pytest.mark.parametrize("epochs", [1, 12])
def test_dense_without_a_bias_matches_model_fit(cancer, epochs):
    X, y = cancer
    s = read_structure(_no_bias_mlp(output_bias=False))
    assert s.biases == (False, False, False) and s.group != read_structure(_no_bias_mlp()).group
    assert s.n_params == 30 * 8 + 8 * 6 + 6 + 2 * (8 + 6)
    folds = [(np.arange(0, 100 if epochs == 1 else 96), np.arange(100, 150))]
    for configs in ([dict(units=(8, 6)), dict(units=(5, 9), learning_rate=0.003, momentum=0.9)],
                    [dict(output_bias=False), dict(units=(4, 7), output_bias=False)]):
        rel, score = _compare(_no_bias_mlp, configs, X, y, folds, epochs, 32, {}, _accuracy,
                              run_eagerly=epochs == 1)
        assert rel <= 1e-4 and score <= 1e-4


def _timeseries_cnn(filters=6, units=8, learning_rate=0.01, momentum=0.99, norm="batch",
                    conv_bias=True, optimizer="Adam"):
    """Keras' timeseries-classification guide's block, ``Conv1D -> BatchNormalization ->
    ReLU``, twice, then global pooling; or a LayerNormalization after the activation, or
    bias-free convolutions."""
    model = keras.Sequential([keras.Input((12, 2))])
    for _ in range(2):
        if norm == "batch":
            model.add(keras.layers.Conv1D(filters, 3, padding="same", use_bias=conv_bias))
            model.add(keras.layers.BatchNormalization(momentum=momentum))
            model.add(keras.layers.Activation("relu"))
        else:
            model.add(keras.layers.Conv1D(filters, 3, padding="same", activation="relu",
                                          use_bias=conv_bias))
            model.add(keras.layers.LayerNormalization())
    model.add(keras.layers.MaxPooling1D(2))
    model.add(keras.layers.GlobalAveragePooling1D())
    model.add(keras.layers.Dense(units, activation="relu"))
    model.add(keras.layers.Dense(3, activation="softmax"))
    model.compile(optimizer=getattr(keras.optimizers, optimizer)(learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("epochs", [1, 12])
def test_normalised_convolutions_match_model_fit(epochs):
    """BatchNormalization between convolutions: per-channel moments over the batch's real
    rows and every position, per-replica moving statistics (read when scoring).

    One step with SGD: the next normalisation nearly cancels the gradient of the first
    one's beta (a shift of every position, but for the padded borders and inactive ReLUs),
    so Adam's first step, lr * g / (|g| + 1e-7), amplifies its float32 rounding (measured
    5e-5 on beta, 2e-6 on a kernel after it, as between two orders of summation)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(110, 12, 2)).astype("float32")
    y = ((X[:, :4, 0].sum(axis=1) > 0).astype(int) + (X[:, 6:, 1].sum(axis=1) > 1)).reshape(-1, 1)
    s = read_structure(_timeseries_cnn())
    assert [c.norm[0] for c in s.convs] == ["batch", "batch"] and s.convs[1].pool is not None
    folds = [(np.arange(0, 70 if epochs == 1 else 60), np.arange(80, 110))]
    for configs in ([dict(), dict(filters=6, units=5, learning_rate=0.003, momentum=0.9)],
                    [dict(conv_bias=False), dict(conv_bias=False, units=4, momentum=0.8)],
                    [dict(norm="layer"), dict(norm="layer", units=5, learning_rate=0.003)]):
        if epochs == 1:
            configs = [{**c, "optimizer": "SGD"} for c in configs]
        rel, score = _compare(_timeseries_cnn, configs, X, y, folds, epochs, 20, {}, _accuracy,
                              run_eagerly=epochs == 1)
        assert rel <= 1e-4 and score <= 1e-4
