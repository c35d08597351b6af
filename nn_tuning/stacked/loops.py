"""The two drivers of a stack's training loop: TensorFlow and JAX.

Each traces a run of ``epochs`` epochs (every epoch, every step) once per
stack signature and is reused, with new weights, optimizer state and
constants, by every stack of the same shapes
(:func:`nn_tuning.stacked.engine.train_stack` keeps them) and by every
segment of a stack trained a few epochs at a time
(:class:`nn_tuning.stacked.slots.SlotStack`).

A run starts from the optimizer state it is given and returns the state it
ends with, so training can stop and go on. Each replica keeps its own step
count (the optimizer's ``iterations``, shaped ``(R, 1, 1)``) and its own
epoch counter (``consts["epoch0"]``, ``(R, 1)``): replicas of different ages
share one stack and each steps, shuffles and drops out as its own
``model.fit`` would at that age.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


__all__ = ["JaxLoop", "TFLoop"]


class StackedModel(Protocol):
    """What a loop needs of the stacked model (engine.py's ``StackedModel``).

    Declared here rather than imported, so that engine.py (which runs the
    loops) and this module do not import each other.
    """

    def batch_loss(self, params: Any, consts: dict, order: Any, epoch: Any, step: Any) -> Any: ...

    def epoch_order(self, consts: dict, epoch: Any, n_pad: int) -> Any: ...


def _optimizers(variants: Sequence[tuple], lr_holder: dict,
                variables: Sequence[Sequence[Any]]) -> list[Any]:
    """Keras' own optimizer of each variant, built on the stack's shapes, one step count per replica.

    Keras keeps one scalar step count per optimizer (``iterations``, read by
    the bias corrections of Adam, Adamax and Nadam, and Nadam's running
    ``u_product``). Replicas of different ages share a stack, so both become
    ``(R, 1, 1)`` variables before the first step: every update reads them
    elementwise, as it reads the ``(R, 1, 1)`` learning rate, and each replica's
    update is the one Keras makes at that replica's own step. Each optimizer
    updates every replica (``variables[k]``, the weights it is built on); a
    replica keeps the update of its own variant.
    """
    import ast

    import keras

    R = variables[0][0].shape[0]
    opts = []
    for (name, settings), built_on in zip(variants, variables):
        config = {k: ast.literal_eval(v) for k, v in settings}
        opt = getattr(keras.optimizers, name)(learning_rate=lambda: lr_holder["lr"], **config)
        _per_replica(opt, "_iterations", np.zeros((R, 1, 1), "int64"))
        opt.build(list(built_on))
        if hasattr(opt, "_u_product"):  # Nadam
            _per_replica(opt, "_u_product", np.ones((R, 1, 1), "float32"))
        opts.append(opt)
    return opts


def _split(flat: Sequence[Any], opts: Sequence[Any]) -> list[list[Any]]:
    """A flat optimizer state, one list per optimizer."""
    out, i = [], 0
    for opt in opts:
        n = len(opt.variables)
        out.append(list(flat[i:i + n]))
        i += n
    return out


def _per_replica(opt: Any, attr: str, value: np.ndarray) -> None:
    """Replace the optimizer's scalar variable ``attr`` with one of ``value``'s shape."""
    import keras

    old = getattr(opt, attr)
    new = keras.Variable(value.astype(keras.backend.standardize_dtype(old.dtype)),
                         name=old.name, trainable=False)
    tracked = opt._variables  # the optimizer's variable list, in its order
    index = next(i for i, v in enumerate(tracked) if v is old)
    object.__setattr__(opt, attr, new)  # bypass Keras' tracker: it would append a second entry
    tracked[index] = new


class _RetracingFilter(logging.Filter):
    """Hides TensorFlow's "triggered tf.function retracing" warning: each stack is traced on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "retracing" not in record.getMessage()


class TFLoop:
    """A ``tf.function`` of nested while loops over the stack's variables."""

    def __init__(self, model: StackedModel, params: list[np.ndarray], variants: Sequence[tuple],
                 epochs: int, steps: int, n_pad: int) -> None:
        import keras
        import tensorflow as tf

        self.model = model
        holder: dict = {}
        self.variables = [keras.Variable(p) for p in params]
        # With several variants each optimizer updates its own copy of the weights.
        copies = [self.variables] if len(variants) == 1 else \
            [[keras.Variable(p) for p in params] for _ in variants]
        self.opts = _optimizers(variants, holder, copies)
        self.opt_initial = [v.numpy() for opt in self.opts for v in opt.variables]
        variables, opts = self.variables, self.opts
        tf_vars = [v.value for v in variables]

        @tf.function(autograph=False, jit_compile=os.environ.get("NNT_XLA") == "1")
        def run(consts: dict, lr: Any) -> Any:
            holder["lr"] = lr

            def epoch_body(e: Any) -> tuple:
                epoch = consts["epoch0"] + e  # (R, 1): each replica's own epoch
                order = model.epoch_order(consts, epoch, n_pad)

                def step_body(b: Any) -> tuple:
                    with tf.GradientTape() as tape:
                        loss = model.batch_loss(tf_vars, consts, order, epoch, b)
                    grads = tape.gradient(loss, tf_vars)
                    if len(opts) == 1:
                        opts[0].apply(grads, variables)
                        return (b + 1,)
                    for opt, copy in zip(opts, copies):
                        for c, v in zip(copy, variables):
                            c.assign(v)
                        opt.apply(grads, copy)
                    for i, v in enumerate(variables):
                        new = copies[0][i].value
                        for sel, copy in zip(consts["opt_selects"][1:], copies[1:]):
                            new = tf.where(sel > 0, copy[i].value, new)
                        v.assign(new)
                    return (b + 1,)

                tf.while_loop(lambda b: b < steps, step_body, (tf.constant(0),))
                return (e + 1,)

            return tf.while_loop(lambda e: e < epochs, epoch_body, (tf.constant(0),))

        self.fn = run

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray,
            opt_state: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) after the run; the state starts fresh unless given."""
        from ..fast_fit import forget_traced_gradients

        for v, p in zip(self.variables, params):
            v.assign(p)
        opt_vars = [v for opt in self.opts for v in opt.variables]
        for v, p in zip(opt_vars, self.opt_initial if opt_state is None else opt_state):
            v.assign(p)
        tf_logger = logging.getLogger("tensorflow")
        quiet = _RetracingFilter()
        tf_logger.addFilter(quiet)
        try:
            with forget_traced_gradients():
                self.fn(consts, lr)
        finally:
            tf_logger.removeFilter(quiet)
        return [v.numpy() for v in self.variables], [v.numpy() for v in opt_vars]


class JaxLoop:
    """A jitted function of nested ``fori_loop`` s, stateless in weights and optimizer state."""

    def __init__(self, model: StackedModel, params: list[np.ndarray], variants: Sequence[tuple],
                 epochs: int, steps: int, n_pad: int) -> None:
        import jax

        self.model = model
        holder: dict = {}
        import keras

        opts = _optimizers(variants, holder, [[keras.Variable(p) for p in params]
                                              for _ in variants])
        self.opt_initial = [np.asarray(v.value) for opt in opts for v in opt.variables]
        ops = model.ops

        def run(params: list, opt_vars: list, consts: dict, lr: Any) -> list:
            holder["lr"] = lr
            grad_fn = jax.grad(model.batch_loss)

            def epoch_body(e: Any, state: tuple) -> tuple:
                epoch = consts["epoch0"] + e  # (R, 1): each replica's own epoch
                order = model.epoch_order(consts, epoch, n_pad)

                def step_body(b: Any, state: tuple) -> tuple:
                    p, o = state
                    grads = grad_fn(p, consts, order, epoch, b)
                    new_p, new_o = None, []
                    for opt, sel, o_k in zip(opts, consts["opt_selects"], _split(o, opts)):
                        p_k, o_k = opt.stateless_apply(o_k, grads, p)
                        new_o += list(o_k)
                        new_p = list(p_k) if new_p is None else \
                            [ops.where(sel > 0, a, b) for a, b in zip(p_k, new_p)]
                    return new_p, new_o

                return jax.lax.fori_loop(0, steps, step_body, state)

            return jax.lax.fori_loop(0, epochs, epoch_body, (params, opt_vars))

        self.fn = jax.jit(run)

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray,
            opt_state: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) after the run; the state starts fresh unless given."""
        trained, state = self.fn(params, self.opt_initial if opt_state is None else opt_state,
                                 consts, lr)
        return [np.asarray(p) for p in trained], [np.asarray(o) for o in state]
