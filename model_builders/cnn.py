"""A small convolutional classifier for small images: image arrays (N, H, W[, C]) or flat pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras

from ._common import (
    check_activation,
    check_dropout,
    check_positive_int,
    classifier_dims,
    make_optimizer,
    nd_sample_shape,
)
from .mlp import compile_classifier_head


def _image_shape(image_shape: Sequence[int] | None, n_features: Any,
                 sample_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The (height, width, channels) the convolutions see.

    ``sample_shape`` is the shape of one input sample when the data are N-D
    (scikeras' ``meta["X_shape_"][1:]``); ``None`` for flat rows.
    """
    if sample_shape is not None and image_shape is None:
        if len(sample_shape) == 2:  # grey images (N, H, W), or sequences (N, T, F)
            return (*sample_shape, 1)
        if len(sample_shape) == 3:
            return tuple(sample_shape)
        raise ValueError(
            f"cnn_classifier takes images of shape (height, width) or (height, width, "
            f"channels) per sample, got samples of shape {tuple(sample_shape)}"
        )
    if sample_shape is not None:
        n_features = math.prod(sample_shape)
    if image_shape is not None:
        shape = tuple(check_positive_int("image_shape", d) for d in image_shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3:
            raise ValueError(
                f"image_shape must be (height, width) or (height, width, channels), got {image_shape!r}"
            )
        if n_features is not None and math.prod(shape) != n_features:
            raise ValueError(
                f"image_shape {image_shape!r} holds {math.prod(shape)} values, "
                f"but the input has {n_features} features"
            )
        return shape
    n_features = check_positive_int("input_dim", n_features)
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(
            f"image_shape is needed: {n_features} input features are not a square image"
        )
    return (side, side, 1)


def cnn_classifier(
    input_dim: int | None = None,
    n_classes: int | None = None,
    *,
    image_shape: Sequence[int] | None = None,
    filters: int = 16,
    n_blocks: int = 2,
    kernel_size: int = 3,
    pool_size: int = 2,
    dense_units: int = 64,
    activation: Any = "relu",
    optimizer: Any = "adam",
    learning_rate: float | None = None,
    dropout: float = 0.0,
    loss: Any = None,
    metrics: Sequence[Any] | None = ("accuracy",),
    meta: dict | None = None,
) -> keras.Model:
    """Build a compiled convolutional classifier.

    Inputs are images with samples on the first axis, of shape (N, H, W, C) or
    (N, H, W) for grey images (the input shape comes from the data, scikeras'
    ``meta["X_shape_"]``), or flat rows (``n_features`` columns) reshaped to
    ``image_shape`` inside the model. Each block is a same-padded
    convolution followed by max pooling; block ``i`` has ``filters * 2**i``
    filters. A dense head of ``dense_units`` precedes the output.

    Parameters
    ----------
    input_dim : int, optional
        Number of input features (pixels); from scikeras' ``meta`` when omitted.
    n_classes : int, optional
        Number of classes; from scikeras' ``meta`` when omitted.
    image_shape : tuple, optional
        (height, width) or (height, width, channels) of flat rows. Inferred
        for square single-channel images (64 features -> 8x8x1). With N-D
        input it is optional; when given, each sample is reshaped to it.
    filters, n_blocks, kernel_size, pool_size, dense_units : int
        Architecture of the convolutional blocks and the head.
    activation, optimizer, learning_rate, dropout, loss, metrics, meta
        As in :func:`model_builders.mlp_classifier`.

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> model = cnn_classifier(input_dim=64, n_classes=10, filters=8, n_blocks=1)
    >>> model.output_shape
    (None, 10)
    """
    n_features, n_classes = classifier_dims(input_dim, n_classes, meta)
    sample_shape = nd_sample_shape(meta) if input_dim is None else None
    shape = _image_shape(image_shape, n_features, sample_shape)
    filters = check_positive_int("filters", filters)
    n_blocks = check_positive_int("n_blocks", n_blocks)
    kernel_size = check_positive_int("kernel_size", kernel_size)
    pool_size = check_positive_int("pool_size", pool_size)
    dense_units = check_positive_int("dense_units", dense_units)
    activation = check_activation(activation)
    dropout = check_dropout(dropout)
    if min(shape[:2]) < pool_size**n_blocks:
        raise ValueError(
            f"n_blocks={n_blocks} with pool_size={pool_size} shrinks a {shape[0]}x{shape[1]} "
            "image below one pixel; use fewer blocks or a smaller pool_size"
        )
    opt = make_optimizer(optimizer, learning_rate)

    inputs = keras.Input(shape=sample_shape or (math.prod(shape),))
    x = inputs if sample_shape == shape else keras.layers.Reshape(shape)(inputs)
    for block in range(n_blocks):
        x = keras.layers.Conv2D(
            filters * 2**block, kernel_size, padding="same", activation=activation
        )(x)
        x = keras.layers.MaxPooling2D(pool_size)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense_units, activation=activation)(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout)(x)
    return compile_classifier_head(inputs, x, n_classes, opt, loss, metrics, "cnn_classifier")
