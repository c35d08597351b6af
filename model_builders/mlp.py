"""Multi-layer perceptrons for regression and classification.

Each builder returns a compiled ``keras.Model``. The keyword arguments are the
hyperparameters people tune. The builders work on their own::

    model = mlp_regressor(input_dim=3, neurons=8, n_layers=2, activation="relu")

and through scikeras, which passes the input and class counts in ``meta``::

    KerasRegressor(model=mlp_regressor, model__neurons=8, epochs=50)

N-D samples (scikeras' ``meta["X_shape_"]`` of rank >= 3: images, sequences)
are flattened by the model's first layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from ._common import (
    check_activation,
    check_dropout,
    check_positive_int,
    classifier_dims,
    hidden_sizes,
    make_optimizer,
    meta_value,
    nd_sample_shape,
)


def _mlp_body(
    input_dim: Any,
    neurons: Any,
    n_layers: Any,
    hidden_layers: Sequence[int] | None,
    activation: Any,
    dropout: Any,
    sample_shape: tuple[int, ...] | None = None,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    if sample_shape is None:
        input_dim = check_positive_int("input_dim", input_dim)
    sizes = hidden_sizes(neurons, n_layers, hidden_layers)
    activation = check_activation(activation)
    dropout = check_dropout(dropout)
    # N-D samples (images, sequences) are flattened: an MLP baseline on the same arrays.
    inputs = keras.Input(shape=sample_shape or (input_dim,))
    x = inputs if sample_shape is None else keras.layers.Flatten()(inputs)
    for width in sizes:
        x = keras.layers.Dense(width, activation=activation)(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    return inputs, x


def mlp_regressor(
    input_dim: int | None = None,
    *,
    neurons: int = 10,
    n_layers: int = 1,
    hidden_layers: Sequence[int] | None = None,
    activation: Any = "relu",
    optimizer: Any = "adam",
    learning_rate: float | None = None,
    dropout: float = 0.0,
    output_dim: int | None = None,
    loss: Any = "mse",
    metrics: Sequence[Any] | None = None,
    meta: dict | None = None,
) -> keras.Model:
    """Build a compiled MLP regressor.

    Parameters
    ----------
    input_dim : int, optional
        Number of input features. Taken from scikeras' ``meta`` when omitted.
    neurons : int, default=10
        Width of each hidden layer.
    n_layers : int, default=1
        Number of hidden layers of width ``neurons``.
    hidden_layers : sequence of int, optional
        Explicit widths, one per hidden layer; overrides ``neurons`` and ``n_layers``.
    activation : str or callable, default="relu"
        Activation of the hidden layers (any Keras activation).
    optimizer : str, Optimizer class or instance, default="adam"
        An instance is cloned, never shared between models.
    learning_rate : float, optional
        Overrides the optimizer's default learning rate.
    dropout : float, default=0.0
        Dropout rate after each hidden layer, in [0, 1).
    output_dim : int, optional
        Number of targets; scikeras' ``meta`` or 1 when omitted.
    loss, metrics
        Passed to ``Model.compile``.
    meta : dict, optional
        Filled in by scikeras.

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> model = mlp_regressor(input_dim=3, neurons=8, n_layers=2, optimizer="adam")
    >>> model.output_shape
    (None, 1)
    """
    sample_shape = nd_sample_shape(meta) if input_dim is None else None
    input_dim = input_dim if input_dim is not None else meta_value(meta, "n_features_in_")
    if output_dim is None:
        output_dim = meta_value(meta, "n_outputs_expected_") or 1
    output_dim = check_positive_int("output_dim", output_dim)
    opt = make_optimizer(optimizer, learning_rate)
    inputs, x = _mlp_body(input_dim, neurons, n_layers, hidden_layers, activation, dropout,
                          sample_shape)
    outputs = keras.layers.Dense(output_dim)(x)
    model = keras.Model(inputs, outputs, name="mlp_regressor")
    model.compile(optimizer=opt, loss=loss, metrics=list(metrics or []))
    return model


def mlp_classifier(
    input_dim: int | None = None,
    n_classes: int | None = None,
    *,
    neurons: int = 10,
    n_layers: int = 1,
    hidden_layers: Sequence[int] | None = None,
    activation: Any = "relu",
    optimizer: Any = "adam",
    learning_rate: float | None = None,
    dropout: float = 0.0,
    loss: Any = None,
    metrics: Sequence[Any] | None = ("accuracy",),
    meta: dict | None = None,
) -> keras.Model:
    """Build a compiled MLP classifier.

    Two classes get one sigmoid unit and binary cross-entropy; more get a
    softmax layer and sparse categorical cross-entropy (integer labels, which
    is what scikeras' label encoder gives).

    Parameters
    ----------
    input_dim : int, optional
        Number of input features. Taken from scikeras' ``meta`` when omitted.
    n_classes : int, optional
        Number of classes (>= 2). Taken from scikeras' ``meta`` when omitted.
    neurons, n_layers, hidden_layers, activation, optimizer, learning_rate, dropout
        As in :func:`mlp_regressor`.
    loss : optional
        Defaults by the number of classes, as above.
    metrics : sequence, default=("accuracy",)
    meta : dict, optional
        Filled in by scikeras.

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> model = mlp_classifier(input_dim=4, n_classes=3, neurons=16)
    >>> model.output_shape
    (None, 3)
    """
    sample_shape = nd_sample_shape(meta) if input_dim is None else None
    input_dim, n_classes = classifier_dims(input_dim, n_classes, meta)
    opt = make_optimizer(optimizer, learning_rate)
    inputs, x = _mlp_body(input_dim, neurons, n_layers, hidden_layers, activation, dropout,
                          sample_shape)
    return compile_classifier_head(inputs, x, n_classes, opt, loss, metrics, "mlp_classifier")


def compile_classifier_head(
    inputs: keras.KerasTensor,
    x: keras.KerasTensor,
    n_classes: int,
    optimizer: keras.optimizers.Optimizer,
    loss: Any,
    metrics: Sequence[Any] | None,
    name: str,
) -> keras.Model:
    """Add the output layer for ``n_classes`` and compile."""
    if n_classes == 2:
        outputs = keras.layers.Dense(1, activation="sigmoid")(x)
        default_loss = "binary_crossentropy"
    else:
        outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
        default_loss = "sparse_categorical_crossentropy"
    model = keras.Model(inputs, outputs, name=name)
    model.compile(optimizer=optimizer, loss=loss or default_loss, metrics=list(metrics or []))
    return model
