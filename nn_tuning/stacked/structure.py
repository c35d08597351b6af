"""What a stack needs to know of one model: :class:`Structure`, and what can stack.

:mod:`.read_model` reads a Structure off a compiled Keras model (its layers),
:mod:`.read_training` its loss, optimizer, schedule and regularizers.

A model is stackable when it is one chain ``Input [Reshape | Flatten]
(Conv [Norm] [Activation] [Norm] [Pooling])* [Flatten | GlobalAveragePooling] [Dropout]
(Dense [Norm] [Activation] [Norm] [Dropout] | Dense Dropout Activation)* -> Dense
[Activation]`` of Keras' own float32 layers (not subclasses): convolutions
(1-D or 2-D, stride 1, any kernel size, ``same`` or ``valid`` padding) with
max or average pooling then a Dense chain, or a Dense chain on a table or on
N-D samples flattened first; Norm is a BatchNormalization or LayerNormalization
(last axis, centred and scaled). It is compiled
with one of :data:`SUPPORTED_LOSSES` and one of :data:`SUPPORTED_OPTIMIZERS`
(an optimizer whose update is elementwise, so that the update of every
replica's weights only reads that replica's gradient and state). A Dense
or Conv layer may carry Keras' own :data:`SUPPORTED_REGULARIZERS` on its kernel and
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

__all__ = ["SUPPORTED_ACTIVATIONS", "SUPPORTED_LOSSES", "SUPPORTED_OPTIMIZERS",
           "SUPPORTED_REGULARIZERS", "SUPPORTED_SCHEDULES", "Conv", "Hidden", "NotStackable",
           "Structure"]

SUPPORTED_ACTIVATIONS = ("relu", "linear", "tanh", "sigmoid", "softmax", "elu", "selu", "gelu",
                         "silu", "softplus", "leaky_relu")
SUPPORTED_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad",
                        "Adadelta", "Lion", "Ftrl")
# keras.regularizers classes a Dense or Conv kernel or bias may carry: each adds its coefficient
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
    bias: bool = True  # False: Dense(use_bias=False), as guides write it before a norm


@dataclass(frozen=True)
class Conv:
    """One convolution block: a Conv of ``filters``, optionally normalised, then optionally pooled.

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
    # A BatchNormalization or LayerNormalization of the channels, before the pooling:
    # as Hidden.norm.
    norm: tuple = ()
    bias: bool = True

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
    # Per Conv layer, then per Dense layer (hidden ones, then the output): (kernel L1,
    # kernel L2, bias L1, bias L2) coefficients; () where no layer has a regularizer.
    penalties: tuple[tuple[float, float, float, float], ...] = ()
    output_bias: bool = True

    @property
    def biases(self) -> tuple[bool, ...]:
        """Whether each Dense layer (hidden ones, then the output) has a bias."""
        return (*(h.bias for h in self.hidden), self.output_bias)

    @property
    def group(self) -> tuple:
        inputs = (self.sample_shape, tuple(c.signature for c in self.convs),
                  tuple(c.filters for c in self.convs), self.head) if self.convs \
            else self.input_dim
        norms = tuple((h.norm[0], h.norm[3]) if h.norm else None for h in self.hidden) \
            if any(h.norm for h in self.hidden) else ()
        # Layers without a bias: one pattern per stack (like normalisations), so a loop
        # knows which biases it holds at zero.
        biases = self.biases if not all(self.biases) else ()
        # Normalised or bias-free convolutions: (kind, after the activation) and bias, each.
        convs = tuple(((c.norm[0], c.norm[3]) if c.norm else None, c.bias) for c in self.convs) \
            if any(c.norm or not c.bias for c in self.convs) else ()
        return (inputs, self.output_units, self.output_activation, self.loss,
                self.loss_kwargs, len(self.hidden) > 0) + ((norms,) if norms else ()) \
            + ((biases,) if biases else ()) + (("convs", convs) if convs else ())

    @property
    def variant(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        return (self.optimizer, self.optimizer_config)

    @property
    def n_params(self) -> int:
        """Trainable parameters (kernels, biases, normalisations' gamma and beta)."""
        widths = [self.input_dim, *(h.units for h in self.hidden), self.output_units]
        channels = [self.sample_shape[-1] if self.sample_shape else 0,
                    *(c.filters for c in self.convs)]
        conv = sum((math.prod(c.kernel) * cin + c.bias + 2 * bool(c.norm)) * c.filters
                   for c, cin in zip(self.convs, channels))
        norms = sum(2 * h.units for h in self.hidden if h.norm)
        return conv + norms + sum((a + bias) * b for a, b, bias
                                  in zip(widths, widths[1:], self.biases))
