"""Read a :class:`~.structure.Structure` off a compiled Keras model: what it computes.

The model's layers are checked to form one chain (``Sequential`` grown with
``add()``, a list, ``input_shape=``, ``build()`` or the functional API alike),
then read front to back: a leading Reshape or Flatten, convolution blocks and
their head, a Dropout on the Dense chain's input, the Dense blocks.
:mod:`.read_training` reads how it trains. What a stack cannot take raises
:class:`~.structure.NotStackable` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from .read_training import read_loss, read_optimizer, read_penalties
from .structure import SUPPORTED_ACTIVATIONS, Conv, Hidden, NotStackable, Structure

__all__ = ["layer_weights", "read_structure", "weighted_layers"]


def _activation_name(fn: Any) -> str:
    import keras

    name = getattr(fn, "__name__", None)
    if name == "swish":
        name = "silu"
    if name not in SUPPORTED_ACTIVATIONS or keras.activations.get(name) is not fn:
        # A callable of the user's own, a keyword-bound one, or one outside the list.
        shown = getattr(fn, "__name__", type(fn).__name__)
        raise NotStackable(f"activation {shown!r} is not one of {', '.join(SUPPORTED_ACTIVATIONS)}")
    return name


def _activation_layer(layer: Any) -> str:
    """The activation an Activation layer, or a ReLU layer of Keras' defaults, computes."""
    import keras

    if type(layer) is keras.layers.ReLU:
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise NotStackable("a ReLU layer has a max_value, negative_slope or threshold")
        return "relu"
    return _activation_name(layer.activation)


def _check_weighted(layer: Any) -> None:
    # Kernel and bias regularizers are read by read_penalties.
    for attr in ("activity_regularizer", "kernel_constraint", "bias_constraint"):
        if getattr(layer, attr, None) is not None:
            raise NotStackable(f"a {type(layer).__name__} layer has a {attr}")
    if getattr(layer, "lora_enabled", False):
        raise NotStackable(f"a {type(layer).__name__} layer uses LoRA")
    if layer.dtype_policy.name != "float32":
        raise NotStackable(f"a {type(layer).__name__} layer computes in "
                           f"{layer.dtype_policy.name}")


def _chain(model: Any) -> list[Any]:
    """The model's layers, checked to form one chain from its input to its output."""
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotStackable("the model has several inputs or outputs")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if type(model) is keras.Sequential:
        # A chain by construction. Grown with add(), its layers were called once per rebuild,
        # so a layer's first input (what ``layer.input`` reads) is not the final graph's.
        return layers
    prev = model.inputs[0]
    for layer in layers:
        if layer.input is not prev:
            raise NotStackable("the layers do not form one chain")
        prev = layer.output
    if prev is not model.outputs[0]:
        raise NotStackable("the model's layers do not form one chain")
    return layers


def _check_own(layer: Any, kinds: tuple) -> None:
    for kind in kinds:
        if isinstance(layer, kind) and type(layer) is not kind:
            # Its own call() may compute anything: a stack would train Keras' plain one.
            raise NotStackable(f"layer {layer.name!r} is a {type(layer).__name__}, a subclass "
                               f"of {kind.__name__}, not Keras' own {kind.__name__}")


def _conv(layer: Any) -> Conv:
    _check_weighted(layer)
    rank = len(layer.kernel_size)
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotStackable(f"a {type(layer).__name__} layer is channels_first")
    if any(s != 1 for s in layer.strides) or any(d != 1 for d in layer.dilation_rate) \
            or getattr(layer, "groups", 1) != 1:
        raise NotStackable(f"a {type(layer).__name__} layer has strides, dilation or groups")
    if layer.padding not in ("same", "valid"):
        raise NotStackable(f"a {type(layer).__name__} layer has padding {layer.padding!r}")
    act = "linear" if layer.activation is None else _activation_name(layer.activation)
    return Conv(int(layer.filters), tuple(int(k) for k in layer.kernel_size[:rank]),
                layer.padding, act, bias=bool(layer.use_bias))


def _pool(layer: Any, kind: str) -> tuple:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotStackable(f"a {type(layer).__name__} layer is channels_first")
    return (kind, tuple(int(k) for k in layer.pool_size), tuple(int(k) for k in layer.strides),
            layer.padding)


def _front(model: Any, layers: list[Any]) -> tuple[tuple[int, ...], tuple[Conv, ...], str, int]:
    """What comes before the Dense chain: (sample shape fed, convolution blocks, head, layers read).

    A leading Reshape or Flatten changes only how a sample is laid out, so
    the stack feeds its samples in that layout instead.
    """
    import keras

    L = keras.layers
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise NotStackable(f"the input shape {model.inputs[0].shape} is not fixed")
    i = 0
    if layers and type(layers[0]) in (L.Reshape, L.Flatten):
        if type(layers[0]) is L.Flatten and layers[0].data_format == "channels_first":
            raise NotStackable("a Flatten layer is channels_first")
        shape = (math.prod(shape),) if type(layers[0]) is L.Flatten \
            else tuple(int(d) for d in layers[0].output.shape[1:])
        i = 1
    convs: list[Conv] = []
    pools = {L.MaxPooling1D: "max", L.MaxPooling2D: "max", L.AveragePooling1D: "average",
             L.AveragePooling2D: "average"}
    heads = {L.Flatten: "flatten", L.GlobalAveragePooling1D: "global_average",
             L.GlobalAveragePooling2D: "global_average"}
    norms = (L.BatchNormalization, L.LayerNormalization)
    for layer in layers[i:]:
        _check_own(layer, (L.Conv1D, L.Conv2D, L.Activation, L.ReLU, *pools, *heads, *norms))
        kind = type(layer)
        if kind in (L.Conv1D, L.Conv2D):
            if len(shape) != len(layer.kernel_size) + 1:
                raise NotStackable(f"a {kind.__name__} layer reads samples of shape {shape}")
            convs.append(_conv(layer))
        elif not convs:
            break
        elif kind in (L.Activation, L.ReLU) and convs[-1].activation == "linear" \
                and convs[-1].pool is None:
            convs[-1] = replace(convs[-1], activation=_activation_layer(layer))
        elif kind in norms and not convs[-1].norm and convs[-1].pool is None:
            convs[-1] = replace(convs[-1], norm=_norm(layer, convs[-1].activation != "linear",
                                                      rank=len(shape) + 1))
        elif kind in pools and convs[-1].pool is None:
            convs[-1] = replace(convs[-1], pool=_pool(layer, pools[kind]))
        elif kind in heads:
            if kind is not L.Flatten and layer.keepdims:
                raise NotStackable(f"a {kind.__name__} layer keeps its dimensions")
            if kind is L.Flatten and layer.data_format == "channels_first":
                raise NotStackable("a Flatten layer is channels_first")
            return shape, tuple(convs), heads[kind], i + 1
        elif kind is L.Dense:
            break
        else:
            raise NotStackable(f"a {kind.__name__} layer between convolutions (a stack takes "
                               "Conv [Norm] [Activation] [Norm] [MaxPooling | AveragePooling] "
                               "blocks)")
        i += 1
    if convs:
        raise NotStackable("the convolutions are not followed by Flatten or "
                           "GlobalAveragePooling")
    if len(shape) != 1:
        nxt = layers[i] if i < len(layers) else None
        if nxt is not None and type(nxt) not in (L.Dense, L.Activation, L.ReLU, L.Dropout):
            raise NotStackable(f"a {type(nxt).__name__} layer is not one a stack takes (Conv1D, "
                               "Conv2D, MaxPooling, AveragePooling, Flatten, "
                               "GlobalAveragePooling, Dense, Activation, Dropout)")
        raise NotStackable(f"samples of shape {shape} reach a Dense layer: flatten them first")
    return shape, (), "", i


def _norm(layer: Any, after: bool, rank: int = 2) -> tuple:
    """The ``Hidden.norm`` (or ``Conv.norm``) of a BatchNormalization or LayerNormalization
    layer reading inputs of ``rank`` (batch axis included): the last axis normalised."""
    import keras

    name = type(layer).__name__
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if axis not in (-1, rank - 1, (-1,), (rank - 1,)) or not layer.center or not layer.scale:
        raise NotStackable(f"a {name} layer normalises another axis or lacks center or scale")
    for attr in ("beta_regularizer", "gamma_regularizer", "beta_constraint",
                 "gamma_constraint"):
        if getattr(layer, attr, None) is not None:
            raise NotStackable(f"a {name} layer has a {attr}")
    if type(layer) is keras.layers.BatchNormalization:
        if layer.synchronized or getattr(layer, "renorm", False):
            raise NotStackable(f"a {name} layer is synchronized or renormalises")
        return ("batch", float(layer.epsilon), float(layer.momentum), after)
    if layer.rms_scaling:
        raise NotStackable(f"a {name} layer uses rms_scaling")
    return ("layer", float(layer.epsilon), 0.0, after)


def _input_dropout(layers: list[Any]) -> tuple[float, int]:
    """(rate, layers read) of a Dropout on the Dense chain's input (``Flatten -> Dropout``)."""
    import keras

    if layers and type(layers[0]) is keras.layers.Dropout:
        if layers[0].noise_shape is not None:
            raise NotStackable("a Dropout layer has a noise shape")
        return float(layers[0].rate), 1
    return 0.0, 0


def _blocks(layers: list[Any]) -> list[list[Any]]:
    """[Dense, activation, dropout rate, dropout first, dropout seen] per block, in order."""
    import keras

    blocks: list[list[Any]] = []
    kinds = (keras.layers.Dense, keras.layers.Activation, keras.layers.ReLU,
             keras.layers.Dropout, keras.layers.BatchNormalization,
             keras.layers.LayerNormalization)
    for layer in layers:
        _check_own(layer, kinds)
        if type(layer) is keras.layers.Dense:
            _check_weighted(layer)
            blocks.append([layer, "linear" if layer.activation is None else
                           _activation_name(layer.activation), 0.0, False, False])
        elif not blocks:
            raise NotStackable(f"a {type(layer).__name__} layer comes before the first Dense layer")
        elif type(layer) in (keras.layers.BatchNormalization, keras.layers.LayerNormalization):
            if blocks[-1][4] or len(blocks[-1]) > 5:
                raise NotStackable(f"a {type(layer).__name__} layer follows a Dropout or "
                                   "another normalisation")
            blocks[-1].append(_norm(layer, after=blocks[-1][1] != "linear"))
        elif type(layer) in (keras.layers.Activation, keras.layers.ReLU):
            name = _activation_layer(layer)
            if blocks[-1][1] == "linear":
                blocks[-1][1] = name
                # Dense -> Dropout -> Activation: the activation reads dropped-out inputs.
                blocks[-1][3] = blocks[-1][4] and name != "linear"
            elif name != "linear":
                raise NotStackable("an Activation layer follows a Dense layer's own activation")
        elif type(layer) is keras.layers.Dropout:
            if layer.noise_shape is not None or blocks[-1][4]:
                raise NotStackable("a Dropout layer has a noise shape or follows another")
            blocks[-1][2], blocks[-1][4] = float(layer.rate), True
        else:
            raise NotStackable(f"a {type(layer).__name__} layer is not Dense, Activation or "
                               "Dropout")
    if not blocks:
        raise NotStackable("the model has no Dense layer")
    return blocks


def read_structure(model: Any) -> Structure:
    """The :class:`Structure` of a compiled Keras model, or :class:`NotStackable`."""
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise NotStackable("the model is not compiled")
    layers = _chain(model)
    sample_shape, convs, head, n_front = _front(model, layers)
    input_dropout, n_drop = _input_dropout(layers[n_front:])
    blocks = _blocks(layers[n_front + n_drop:])
    *hidden, (out_layer, out_act, out_drop, _, _, *out_norm) = blocks
    if out_drop or out_norm:
        raise NotStackable("dropout or a normalisation after the output layer")
    loss, loss_kwargs = read_loss(model)
    optimizer, config, lr = read_optimizer(model)
    return Structure(
        input_dim=int(blocks[0][0].kernel.shape[0]),
        hidden=tuple(Hidden(int(d.units), act, rate, first, *norm, bias=bool(d.use_bias))
                     for d, act, rate, first, _, *norm in hidden),
        output_units=int(out_layer.units), output_activation=out_act,
        output_bias=bool(out_layer.use_bias),
        loss=loss, loss_kwargs=loss_kwargs, optimizer=optimizer, optimizer_config=config,
        learning_rate=lr, sample_shape=sample_shape, convs=convs, head=head,
        input_dropout=input_dropout,
        penalties=read_penalties([layer for layer in layers[:n_front] if _is_conv(layer)]
                                 + [block[0] for block in blocks]),
    )


def _is_conv(layer: Any) -> bool:
    import keras

    return type(layer) in (keras.layers.Conv1D, keras.layers.Conv2D)


def weighted_layers(model: Any) -> list[Any]:
    """The model's Conv, Dense and normalisation layers in order (they hold the weights)."""
    import keras

    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense,
             keras.layers.BatchNormalization, keras.layers.LayerNormalization)
    return [layer for layer in model.layers if type(layer) in kinds]


def layer_weights(model: Any) -> list[tuple[np.ndarray, ...]]:
    """Each weighted layer's arrays, in Keras' order: (kernel, bias) of a Conv or Dense
    layer ((kernel,) without a bias), (gamma, beta) of a LayerNormalization, (gamma, beta, moving mean, moving
    variance) of a BatchNormalization."""
    return [tuple(np.asarray(v.numpy()) for v in layer.weights) for layer in weighted_layers(model)]
