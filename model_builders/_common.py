"""Argument checks and layer helpers shared by the builders.

Everything here raises ``ValueError`` naming the argument and the value it got,
before any model is built, so a bad configuration fails fast and clearly.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import keras


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int if it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_dropout(value: Any) -> float:
    """Return ``value`` as a float if it lies in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
    return float(value)


def check_activation(value: Any) -> Any:
    """Return ``value`` if Keras knows it as an activation."""
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"activation {value!r} is not a Keras activation; "
            "use a name such as 'relu', 'tanh', 'sigmoid', 'softmax' or 'linear'"
        ) from None
    return value


def hidden_sizes(
    neurons: Any, n_layers: Any, hidden_layers: Sequence[int] | None
) -> tuple[int, ...]:
    """Resolve the widths of the hidden layers.

    ``hidden_layers`` (an explicit tuple of widths) wins over
    ``neurons`` x ``n_layers``.
    """
    if hidden_layers is not None:
        if isinstance(hidden_layers, (str, bytes)) or not isinstance(hidden_layers, Sequence):
            raise ValueError(
                f"hidden_layers must be a sequence of layer widths, got {hidden_layers!r}"
            )
        return tuple(check_positive_int("hidden_layers", n) for n in hidden_layers)
    neurons = check_positive_int("neurons", neurons)
    n_layers = check_positive_int("n_layers", n_layers)
    return (neurons,) * n_layers


def make_optimizer(optimizer: Any, learning_rate: Any) -> keras.optimizers.Optimizer:
    """Return a fresh optimizer from a name, a class or an instance.

    An instance is cloned from its config, so one optimizer object passed to
    many builds never shares state between models.
    """
    if learning_rate is not None and (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, numbers.Real)
        or not learning_rate > 0
    ):
        raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}")
    if isinstance(optimizer, keras.optimizers.Optimizer):
        opt = optimizer.__class__.from_config(optimizer.get_config())
    elif isinstance(optimizer, type) and issubclass(optimizer, keras.optimizers.Optimizer):
        opt = optimizer()
    else:
        try:
            opt = keras.optimizers.get(optimizer)
        except (ValueError, TypeError):
            raise ValueError(
                f"optimizer {optimizer!r} is not a Keras optimizer; "
                "use a name such as 'adam', 'sgd', 'adamax' or 'rmsprop', or an optimizer instance"
            ) from None
    if learning_rate is not None:
        opt.learning_rate = float(learning_rate)
    return opt


def meta_value(meta: dict | None, key: str) -> Any:
    """Read ``key`` from scikeras' ``meta`` dict, or None."""
    return None if meta is None else meta.get(key)


def nd_sample_shape(meta: dict | None) -> tuple[int, ...] | None:
    """One sample's shape when scikeras saw N-D input (``X`` of rank >= 3), else None.

    scikeras' ``meta["n_features_in_"]`` is only X's second axis; its
    ``meta["X_shape_"]`` is X's whole shape.
    """
    shape = meta_value(meta, "X_shape_")
    if shape is None or len(shape) <= 2:
        return None
    return tuple(int(d) for d in shape[1:])


def classifier_dims(input_dim: Any, n_classes: Any, meta: dict | None) -> tuple[Any, int]:
    """Input width and class count (>= 2), from the arguments or scikeras' ``meta``."""
    if input_dim is None:
        input_dim = meta_value(meta, "n_features_in_")
    n_classes = check_positive_int(
        "n_classes", n_classes if n_classes is not None else meta_value(meta, "n_classes_"))
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes!r}")
    return input_dim, n_classes
