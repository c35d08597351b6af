"""A corpus of models written as the Keras guides and keras-tuner's getting-started page write them.

Each either stacks, its stack training as its own ``model.fit`` does (the
contract of tests/stacked/test_engine.py, a few epochs), or is refused with
the reason the README lists. Most stack (11 of 12): the issue asks at least 10 of 12.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.preprocessing import StandardScaler

from nn_tuning.stacked import NotStackable, read_structure

from .test_engine import _accuracy, _compare, _r2


def kt_getting_started(units=16, activation="relu", dropout=True, lr=0.01):
    """keras-tuner's getting started: Sequential, add() in a loop, Flatten first, one-hot loss."""
    model = keras.Sequential()
    model.add(keras.Input((8, 8, 1)))
    model.add(keras.layers.Flatten())
    for i in range(2):
        model.add(keras.layers.Dense(units=units // (i + 1), activation=activation))
    if dropout:
        model.add(keras.layers.Dropout(rate=0.0))  # the guide's 0.25, at 0: comparable
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def sequential_regressor(units=12, lr=0.01):
    """Keras' Sequential model guide: a list of layers, two ReLU layers, mse."""
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(units, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.RMSprop(lr), loss="mse")
    return model


def functional_classifier(units=8, lr=0.01):
    """Keras' functional API guide: inputs, layers called on tensors, keras.Model."""
    inputs = keras.Input(shape=(4,))
    x = keras.layers.Dense(units, activation="relu")(inputs)
    x = keras.layers.Dense(units, activation="tanh")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="iris_model")
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def batchnorm_mlp(units=12, lr=0.01):
    """Dense -> BatchNormalization -> Activation, the order the BatchNormalization paper uses,
    the kernels L2-regularized."""
    model = keras.Sequential([keras.Input((4,))])
    for _ in range(2):
        model.add(keras.layers.Dense(units, kernel_regularizer=keras.regularizers.L2(1e-3)))
        model.add(keras.layers.BatchNormalization())
        model.add(keras.layers.Activation("relu"))
    model.add(keras.layers.Dense(3, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def layernorm_mlp(units=12, lr=0.01):
    """Dense(relu) -> LayerNormalization, then Dropout, on a regression."""
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.LayerNormalization(), keras.layers.Dropout(0.0),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    return model


def regularized_mlp(units=12, lr=0.01):
    """Keras' overfitting advice: an L2 kernel regularizer on each hidden layer."""
    reg = keras.regularizers.L2(1e-3)
    model = keras.Sequential([keras.Input((10,)),
                              keras.layers.Dense(units, activation="relu", kernel_regularizer=reg),
                              keras.layers.Dense(units, activation="relu", kernel_regularizer=reg),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    return model


def scheduled_mlp(units=12, lr=0.01):
    """A learning-rate schedule (ExponentialDecay) in the optimizer, as Keras' docs show."""
    schedule = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=4, decay_rate=0.9)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    return model


def mnist_convnet(filters=4, lr=0.01, size=8):
    """Keras' "Simple MNIST convnet" (fewer filters): Conv-Pool twice, Flatten, Dropout, Dense."""
    padding = "same" if size < 28 else "valid"
    model = keras.Sequential([
        keras.Input(shape=(size, size, 1)),
        keras.layers.Conv2D(filters, kernel_size=(3, 3), activation="relu", padding=padding),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(2 * filters, kernel_size=(3, 3), activation="relu", padding=padding),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.0),  # the guide's 0.5, at 0: comparable with model.fit
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(lr))
    return model


def sequence_cnn(filters=6, lr=0.01):
    """A 1-D CNN on sequences: Conv1D-MaxPooling1D, Conv1D, GlobalAveragePooling1D, softmax."""
    model = keras.Sequential([
        keras.Input((16, 2)),
        keras.layers.Conv1D(filters, 3, activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(filters, 3, activation="relu", padding="same"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def timeseries_bn_cnn(filters=6, lr=0.01):
    """Keras' timeseries classification guide: Conv1D -> BatchNormalization -> ReLU blocks."""
    inputs = keras.Input((16, 2))
    x = inputs
    for _ in range(2):
        x = keras.layers.Conv1D(filters, 3, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def lstm_classifier(units=8, lr=0.01):
    """Keras' sequence guides: an LSTM over the sequence, then a Dense classifier."""
    model = keras.Sequential([keras.Input((16, 2)), keras.layers.LSTM(units),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def _onehot_accuracy(model, X, Y):
    return _accuracy(model, X, Y.argmax(axis=1).reshape(-1, 1))


def _data():
    digits_X, digits_y = load_digits(return_X_y=True)
    digits_X = (digits_X[:120] / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    digits_y = digits_y[:120].reshape(-1, 1)
    big = np.asarray(keras.ops.image.resize(digits_X, (28, 28)))
    dia_X, dia_y = load_diabetes(return_X_y=True)
    dia_X = StandardScaler().fit_transform(dia_X[:120]).astype("float32")
    dia_y = ((dia_y[:120] - dia_y.mean()) / dia_y.std()).astype("float32").reshape(-1, 1)
    iris_X, iris_y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(150)[:120]
    iris_X = StandardScaler().fit_transform(iris_X[order]).astype("float32")
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(120, 16, 2)).astype("float32")
    seq_y = ((seq[:, :8, 0].sum(axis=1) > 0).astype(int) + (seq[:, 8:, 1].sum(axis=1) > 1))
    return {"digits": (digits_X, digits_y, _accuracy), "digits_onehot":
            (digits_X, np.eye(10, dtype="float32")[digits_y[:, 0]], _onehot_accuracy),
            "digits28": (big, digits_y, _accuracy), "diabetes": (dia_X, dia_y, _r2),
            "iris": (iris_X, iris_y[order].reshape(-1, 1), _accuracy),
            "sequences": (seq, seq_y.reshape(-1, 1), _accuracy)}


# (builder, data, two configurations, None if it stacks or the reason it is refused)
CORPUS = [
    (kt_getting_started, "digits_onehot", [{"units": 16}, {"units": 10, "lr": 0.003}], None),
    (sequential_regressor, "diabetes", [{"units": 12}, {"units": 7, "lr": 0.003}], None),
    (functional_classifier, "iris", [{"units": 8}, {"units": 5, "lr": 0.03}], None),
    (batchnorm_mlp, "iris", [{"units": 12}, {"units": 6, "lr": 0.003}], None),
    (layernorm_mlp, "diabetes", [{"units": 12}, {"units": 6, "lr": 0.003}], None),
    (regularized_mlp, "diabetes", [{"units": 12}, {"units": 6}], None),
    (scheduled_mlp, "diabetes", [{"units": 12}, {"units": 6, "lr": 0.03}], None),
    (mnist_convnet, "digits", [{"filters": 4}, {"filters": 4, "lr": 0.003}], None),
    (lambda **kw: mnist_convnet(size=28, **kw), "digits28", [{"filters": 3}, {"filters": 3,
                                                                             "lr": 0.003}], None),
    (sequence_cnn, "sequences", [{"filters": 6}, {"filters": 6, "lr": 0.003}], None),
    (timeseries_bn_cnn, "sequences", [{"filters": 6}, {"filters": 6, "lr": 0.003}], None),
    (lstm_classifier, "sequences", [{}], "LSTM layer is not one a stack takes"),
]


@pytest.fixture(scope="module")
def data():
    return _data()


def test_most_of_the_corpus_stacks():
    stacking = [entry for entry in CORPUS if entry[3] is None]
    assert len(CORPUS) >= 12 and len(stacking) >= 11, [e[0].__name__ for e in CORPUS if e[3]]


@pytest.mark.parametrize("builder, data_name, configs, refused", CORPUS,
                         ids=[f"{i:02d}-{e[0].__name__}" for i, e in enumerate(CORPUS)])
def test_corpus_model_stacks_as_model_fit_or_says_why(data, builder, data_name, configs,
                                                      refused):
    X, Y, score = data[data_name]
    if refused is not None:
        with pytest.raises(NotStackable, match=refused):
            read_structure(builder(**configs[0]))
        return
    folds = [(np.arange(0, 80), np.arange(80, 120))]  # 80 rows: 2 batches of 40 an epoch
    rel, worst = _compare(builder, configs, X, Y, folds, 4, 40, {}, score)
    assert rel <= 1e-4 and worst <= 1e-4


def test_corpus_fit_settings_stack_through_tune(data):
    """The corpus' two models that need model.fit settings: a classifier with class weights,
    and a BatchNormalization MLP under ReduceLROnPlateau and EarlyStopping with a validation
    split."""
    from nn_tuning import tune

    X, y, _ = data["iris"]
    weighted = tune(functional_classifier, {"units": [5, 8]}, X, y.ravel(), strategy="grid",
                    cv=2, epochs=3, progress=False, fit={"class_weight": "balanced"})
    stop = keras.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    slower = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1)
    stopped = tune(batchnorm_mlp, {"units": [6, 12]}, X, y.ravel(), strategy="grid", cv=2,
                   epochs=6, progress=False,
                   fit={"validation_split": 0.2, "callbacks": [slower, stop]})
    for result in (weighted, stopped):
        assert set(result.trials["engine"]) == {"stacked"}, result.extra.get("not_stacked")
        assert (result.trials["state"] == "complete").all()
