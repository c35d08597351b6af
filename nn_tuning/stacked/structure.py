"""What a stack needs to know of one model: read it off the compiled Keras model.

A model is stackable when it is one chain ``Input [Reshape | Flatten]
(Conv [Activation] [Pooling])* [Flatten | GlobalAveragePooling] [Dropout]
(Dense [Norm] [Activation] [Norm] [Dropout] | Dense Dropout Activation)* -> Dense
[Activation]`` of Keras' own float32 layers (not subclasses): convolutions
(1-D or 2-D, stride 1, any kernel size, ``same`` or ``valid`` padding) with
max or average pooling then a Dense chain, or a Dense chain on a table or on
N-D samples flattened first; Norm is a BatchNormalization or LayerNormalization
(last axis, centred and scaled). It is compiled
with one of :data:`SUPPORTED_LOSSES` and one of :data:`SUPPORTED_OPTIMIZERS`
(an optimizer whose update is elementwise, so that the update of every
replica's weights only reads that replica's gradient and state). A Dense
layer may carry Keras' own :data:`SUPPORTED_REGULARIZERS` on its kernel and
bias (their strengths may differ between stack-mates), and the learning rate
may be one of Keras' :data:`SUPPORTED_SCHEDULES` (its settings but the initial
rate are part of the optimizer variant). Everything else gets
:class:`NotStackable` with the reason, and trains on the per-configuration
path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SUPPORTED_ACTIVATIONS", "SUPPORTED_LOSSES", "SUPPORTED_OPTIMIZERS",
           "SUPPORTED_REGULARIZERS", "SUPPORTED_SCHEDULES", "Conv", "Hidden", "NotStackable",
           "Structure", "layer_weights", "read_structure", "weighted_layers"]

SUPPORTED_ACTIVATIONS = ("relu", "linear", "tanh", "sigmoid", "softmax", "elu", "selu", "gelu",
                         "silu", "softplus", "leaky_relu")
SUPPORTED_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad",
                        "Adadelta", "Lion", "Ftrl")
# keras.regularizers classes a Dense kernel or bias may carry: each adds its coefficient
# times a sum over the weight's elements, so a replica's penalty reads only its own slice.
SUPPORTED_REGULARIZERS = ("L1", "L2", "L1L2")
# keras.optimizers.schedules classes whose value is elementwise in the initial learning rate
# and the step, so one call serves every replica at its own step count. CosineDecay with a
# ``warmup_target`` is refused: it branches (``ops.cond``) on the step, one branch per stack.
# PiecewiseConstantDecay has no initial rate: its values are all part of the variant.
SUPPORTED_SCHEDULES = ("ExponentialDecay", "InverseTimeDecay", "PolynomialDecay", "CosineDecay",
                       "CosineDecayRestarts", "PiecewiseConstantDecay")
# Keras' loss functions by the names ``keras.losses.get`` resolves them to.
SUPPORTED_LOSSES = ("mean_squared_error", "mean_absolute_error", "categorical_crossentropy",
                    "sparse_categorical_crossentropy", "binary_crossentropy")
# Optimizer settings that read more than one weight at a time (norms over a
# whole variable or all of them), or keep extra state a stack cannot share.
_MIXING_SETTINGS = ("clipnorm", "global_clipnorm", "use_ema", "gradient_accumulation_steps",
                    "loss_scale_factor")


class NotStackable(Exception):
    """The model cannot join a stack; ``str(exc)`` says why."""


@dataclass(frozen=True)
class Hidden:
    """One hidden block: Dense of ``units`` with ``activation``, and dropout at ``dropout``.

    ``dropout_first`` says the Dropout layer comes before the Activation layer
    (``Dense -> Dropout -> Activation``): the activation then reads the
    dropped-out pre-activations, which differs from dropping its outputs for
    any activation with f(0) != 0 or not positively homogeneous (tanh,
    sigmoid, elu, gelu...).
    """

    units: int
    activation: str
    dropout: float
    dropout_first: bool = False
    # A BatchNormalization or LayerNormalization after the Dense layer:
    # ("batch", epsilon, momentum, after) or ("layer", epsilon, 0.0, after), ``after``
    # meaning after the activation; () for none.
    norm: tuple = ()


@dataclass(frozen=True)
class Conv:
    """One convolution block: a Conv of ``filters`` then, optionally, a pooling layer.

    ``kernel`` is the kernel size per spatial axis (stride 1, no dilation),
    ``padding`` Keras' ``"same"`` or ``"valid"``; ``pool`` is ``(kind, size,
    strides, padding)`` with kind ``"max"`` or ``"average"``, or None.
    Stack-mates share the :attr:`signature` and, in :attr:`Structure.group`,
    the filters too (the layout could pad filters as it pads Dense widths,
    but a convolution's arithmetic is what a CNN stack pays for on a CPU:
    padding ``filters`` of 8, 16 and 32 to 32 made a random search of the
    digits study 1.4x slower, 80.7 s against 57.4 s).
    """

    filters: int
    kernel: tuple[int, ...]
    padding: str
    activation: str
    pool: tuple[str, tuple[int, ...], tuple[int, ...], str] | None = None

    @property
    def signature(self) -> tuple:
        return (self.kernel, self.padding, self.activation, self.pool)


@dataclass(frozen=True)
class Structure:
    """A stackable model, as far as a stack is concerned.

    ``group`` is what replicas of one stack must share (input and output
    widths, output activation, loss); the rest (hidden widths, depth,
    activations, dropout, optimizer type and settings, learning rate,
    regularizer strengths) may differ. ``variant`` is the replica's optimizer
    (type and settings, a schedule's included, but the initial learning
    rate): a stack runs one Keras optimizer per variant it holds.
    """

    input_dim: int
    hidden: tuple[Hidden, ...]
    output_units: int
    output_activation: str
    loss: str
    loss_kwargs: tuple[tuple[str, Any], ...]
    optimizer: str
    optimizer_config: tuple[tuple[str, Any], ...]
    learning_rate: float
    sample_shape: tuple[int, ...] = ()
    convs: tuple[Conv, ...] = ()
    head: str = ""
    input_dropout: float = 0.0  # a Dropout before the first Dense layer (after a Flatten)
    # Per Dense layer (hidden ones, then the output): (kernel L1, kernel L2, bias L1, bias L2)
    # coefficients; () where no layer has a regularizer.
    penalties: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def group(self) -> tuple:
        inputs = (self.sample_shape, tuple(c.signature for c in self.convs),
                  tuple(c.filters for c in self.convs), self.head) if self.convs \
            else self.input_dim
        norms = tuple((h.norm[0], h.norm[3]) if h.norm else None for h in self.hidden) \
            if any(h.norm for h in self.hidden) else ()
        return (inputs, self.output_units, self.output_activation, self.loss,
                self.loss_kwargs, len(self.hidden) > 0) + ((norms,) if norms else ())

    @property
    def variant(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        return (self.optimizer, self.optimizer_config)

    @property
    def n_params(self) -> int:
        """Trainable parameters (kernels and biases of every Conv and Dense layer)."""
        widths = [self.input_dim, *(h.units for h in self.hidden), self.output_units]
        channels = [self.sample_shape[-1] if self.sample_shape else 0,
                    *(c.filters for c in self.convs)]
        conv = sum((math.prod(c.kernel) * cin + 1) * c.filters
                   for c, cin in zip(self.convs, channels))
        norms = sum(2 * h.units for h in self.hidden if h.norm)
        return conv + norms + sum((a + 1) * b for a, b in zip(widths, widths[1:]))


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


def _check_weighted(layer: Any) -> None:
    # A Dense layer's kernel and bias regularizers are read by _penalties; a Conv's refused.
    dense = type(layer).__name__ == "Dense"
    for attr in ((() if dense else ("kernel_regularizer", "bias_regularizer"))
                 + ("activity_regularizer", "kernel_constraint", "bias_constraint")):
        if getattr(layer, attr, None) is not None:
            raise NotStackable(f"a {type(layer).__name__} layer has a {attr}")
    if not layer.use_bias:
        raise NotStackable(f"a {type(layer).__name__} layer has no bias")
    if getattr(layer, "lora_enabled", False):
        raise NotStackable(f"a {type(layer).__name__} layer uses LoRA")
    if layer.dtype_policy.name != "float32":
        raise NotStackable(f"a {type(layer).__name__} layer computes in "
                           f"{layer.dtype_policy.name}")


def _coefficients(layer: Any, attr: str) -> tuple[float, float]:
    """(L1, L2) strengths of the layer's ``attr`` regularizer: (0, 0) where it has none."""
    import keras

    reg = getattr(layer, attr, None)
    if reg is None:
        return 0.0, 0.0
    name = type(reg).__name__
    if name not in SUPPORTED_REGULARIZERS or type(reg) is not getattr(keras.regularizers, name):
        raise NotStackable(f"a Dense layer's {attr} is a {name}, not one of Keras' own "
                           f"{', '.join(SUPPORTED_REGULARIZERS)}")
    # keras.regularizers.L1 keeps its strength as a tensor, L2 and L1L2 as floats.
    return (float(keras.ops.convert_to_numpy(getattr(reg, "l1", 0.0))),
            float(keras.ops.convert_to_numpy(getattr(reg, "l2", 0.0))))


def _penalties(dense: list[Any]) -> tuple[tuple[float, float, float, float], ...]:
    """:attr:`Structure.penalties` of the model's Dense layers, in order."""
    out = tuple(_coefficients(d, "kernel_regularizer") + _coefficients(d, "bias_regularizer")
                for d in dense)
    return out if any(any(c) for c in out) else ()


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
                layer.padding, act)


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
    for layer in layers[i:]:
        _check_own(layer, (L.Conv1D, L.Conv2D, *pools, *heads))
        kind = type(layer)
        if kind in (L.Conv1D, L.Conv2D):
            if len(shape) != len(layer.kernel_size) + 1:
                raise NotStackable(f"a {kind.__name__} layer reads samples of shape {shape}")
            convs.append(_conv(layer))
        elif not convs:
            break
        elif kind is L.Activation and convs[-1].activation == "linear" and convs[-1].pool is None:
            convs[-1] = Conv(convs[-1].filters, convs[-1].kernel, convs[-1].padding,
                             _activation_name(layer.activation))
        elif kind in pools and convs[-1].pool is None:
            c = convs[-1]
            convs[-1] = Conv(c.filters, c.kernel, c.padding, c.activation, _pool(layer, pools[kind]))
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
                               "Conv [Activation] [MaxPooling | AveragePooling] blocks)")
        i += 1
    if convs:
        raise NotStackable("the convolutions are not followed by Flatten or "
                           "GlobalAveragePooling")
    if len(shape) != 1:
        nxt = layers[i] if i < len(layers) else None
        if nxt is not None and type(nxt) not in (L.Dense, L.Activation, L.Dropout):
            raise NotStackable(f"a {type(nxt).__name__} layer is not one a stack takes (Conv1D, "
                               "Conv2D, MaxPooling, AveragePooling, Flatten, "
                               "GlobalAveragePooling, Dense, Activation, Dropout)")
        raise NotStackable(f"samples of shape {shape} reach a Dense layer: flatten them first")
    return shape, (), "", i


def _norm(layer: Any, after: bool) -> tuple:
    """The ``Hidden.norm`` of a BatchNormalization or LayerNormalization layer."""
    import keras

    name = type(layer).__name__
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if axis not in (-1, 1, (-1,), (1,)) or not layer.center or not layer.scale:
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
    kinds = (keras.layers.Dense, keras.layers.Activation, keras.layers.Dropout,
             keras.layers.BatchNormalization, keras.layers.LayerNormalization)
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
        elif type(layer) is keras.layers.Activation:
            name = _activation_name(layer.activation)
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


def _loss(model: Any) -> tuple[str, tuple]:
    import keras

    loss = model.loss
    kwargs: dict[str, Any] = {}
    if isinstance(loss, keras.losses.Loss):
        if type(loss).__module__.split(".")[0] != "keras" or \
                getattr(loss, "reduction", None) != "sum_over_batch_size":
            raise NotStackable(f"loss {type(loss).__name__} is not one of Keras' own with the "
                               "default reduction")
        kwargs = dict(getattr(loss, "_fn_kwargs", {}))
        fn = getattr(loss, "fn", None)
    else:
        try:
            fn = keras.losses.get(loss)
        except (ValueError, TypeError):
            fn = None
    name = getattr(fn, "__name__", None)
    if name not in SUPPORTED_LOSSES:
        shown = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
        raise NotStackable(f"loss {shown!r} is not one of {', '.join(SUPPORTED_LOSSES)}")
    return name, tuple(sorted(kwargs.items()))


def _optimizer(model: Any) -> tuple[str, tuple, float]:
    import keras

    opt = model.optimizer
    name = type(opt).__name__
    if opt is None or type(opt) is not getattr(keras.optimizers, name, None) \
            or name not in SUPPORTED_OPTIMIZERS:
        raise NotStackable(f"optimizer {name} is not one of {', '.join(SUPPORTED_OPTIMIZERS)}")
    config = opt.get_config()
    for key in _MIXING_SETTINGS:
        if config.get(key) not in (None, False):
            raise NotStackable(f"optimizer setting {key}={config[key]!r} mixes replicas")
    if name == "Ftrl" and config.get("beta"):
        # Its per-replica term beta / (2 lr) goes through Keras' TensorFlow ops.add, which
        # adds an (R, 1, 1) tensor along another axis when R equals a weight's dimension.
        raise NotStackable(f"Ftrl with beta={config['beta']!r}: its per-replica beta / (2 lr) "
                           "would be added along the wrong axis; beta=0 stacks")
    lr = config.pop("learning_rate")
    if not isinstance(lr, (int, float)):
        lr = _schedule(opt, config)
    config.pop("name", None)
    return name, tuple(sorted((k, repr(v)) for k, v in config.items())), float(lr)


def _schedule(opt: Any, config: dict) -> float:
    """The initial learning rate of ``opt``'s schedule; its class and other settings go in
    ``config["learning_rate_schedule"]`` (so in the optimizer variant)."""
    import keras

    schedule = opt._learning_rate  # the schedule object (get_config holds it serialised)
    name = type(schedule).__name__
    if name not in SUPPORTED_SCHEDULES \
            or type(schedule) is not getattr(keras.optimizers.schedules, name):
        raise NotStackable(f"learning rate schedule {name} is not one of "
                           f"{', '.join(SUPPORTED_SCHEDULES)}")
    settings = schedule.get_config()
    if settings.get("warmup_target") is not None:
        raise NotStackable("a CosineDecay schedule with a warmup_target branches on the step "
                           "count, which differs between replicas")
    settings.pop("name", None)
    if name == "PiecewiseConstantDecay":  # the first value stands for the rate, as reported
        settings = {k: list(settings[k]) for k in ("boundaries", "values")}
        lr = settings["values"][0]
    else:
        lr = settings.pop("initial_learning_rate")
    plain = (bool, int, float, type(None))
    if not isinstance(lr, (int, float)) or not all(
            isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))
            for v in settings.values()):
        raise NotStackable(f"the {name} schedule's settings are not plain numbers")
    config["learning_rate_schedule"] = (name, tuple(sorted(settings.items())))
    return lr


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
    loss, loss_kwargs = _loss(model)
    optimizer, config, lr = _optimizer(model)
    return Structure(
        input_dim=int(blocks[0][0].kernel.shape[0]),
        hidden=tuple(Hidden(int(d.units), act, rate, first, *norm)
                     for d, act, rate, first, _, *norm in hidden),
        output_units=int(out_layer.units), output_activation=out_act,
        loss=loss, loss_kwargs=loss_kwargs, optimizer=optimizer, optimizer_config=config,
        learning_rate=lr, sample_shape=sample_shape, convs=convs, head=head,
        input_dropout=input_dropout, penalties=_penalties([block[0] for block in blocks]),
    )


def weighted_layers(model: Any) -> list[Any]:
    """The model's Conv, Dense and normalisation layers in order (they hold the weights)."""
    import keras

    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense,
             keras.layers.BatchNormalization, keras.layers.LayerNormalization)
    return [layer for layer in model.layers if type(layer) in kinds]


def layer_weights(model: Any) -> list[tuple[np.ndarray, ...]]:
    """Each weighted layer's arrays, in Keras' order: (kernel, bias) of a Conv or Dense
    layer, (gamma, beta) of a LayerNormalization, (gamma, beta, moving mean, moving
    variance) of a BatchNormalization."""
    return [tuple(np.asarray(v.numpy()) for v in layer.weights) for layer in weighted_layers(model)]
