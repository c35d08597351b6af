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
from typing import Any, Protocol

import numpy as np

from .structure import Structure

__all__ = ["JaxLoop", "TFLoop"]


class _Model(Protocol):
    """What a loop needs of the stacked model (engine.py's ``_Model``).

    Declared here rather than imported, so that engine.py (which runs the
    loops) and this module do not import each other.
    """

    def batch_loss(self, params: Any, consts: dict, order: Any, epoch: Any, step: Any) -> Any: ...

    def epoch_order(self, consts: dict, epoch: Any, n_pad: int) -> Any: ...


def _optimizer(structure: Structure, lr_holder: dict, params: list[np.ndarray]) -> Any:
    """Keras' own optimizer of ``structure``, built on the stack's variables, one step count per replica.

    Keras keeps one scalar step count per optimizer (``iterations``, read by
    the bias corrections of Adam, Adamax and Nadam, and Nadam's running
    ``u_product``). Replicas of different ages share a stack, so both become
    ``(R, 1, 1)`` variables before the first step: every update reads them
    elementwise, as it reads the ``(R, 1, 1)`` learning rate, and each replica's
    update is the one Keras makes at that replica's own step.
    """
    import ast

    import keras

    config = {k: ast.literal_eval(v) for k, v in structure.optimizer_config}
    opt = getattr(keras.optimizers, structure.optimizer)(
        learning_rate=lambda: lr_holder["lr"], **config)
    variables = [keras.Variable(p) for p in params]
    R = params[0].shape[0]
    _per_replica(opt, "_iterations", np.zeros((R, 1, 1), "int64"))
    opt.build(variables)
    if hasattr(opt, "_u_product"):  # Nadam
        _per_replica(opt, "_u_product", np.ones((R, 1, 1), "float32"))
    return opt, variables


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

    def __init__(self, model: _Model, params: list[np.ndarray], structure: Structure,
                 epochs: int, steps: int, n_pad: int) -> None:
        import tensorflow as tf

        self.model = model
        holder: dict = {}
        self.opt, self.variables = _optimizer(structure, holder, params)
        self.opt_initial = [v.numpy() for v in self.opt.variables]
        variables, opt = self.variables, self.opt
        tf_vars = [v.value for v in variables]

        @tf.function(autograph=False)
        def run(consts: dict, lr: Any) -> Any:
            holder["lr"] = lr

            def epoch_body(e: Any) -> tuple:
                epoch = consts["epoch0"] + e  # (R, 1): each replica's own epoch
                order = model.epoch_order(consts, epoch, n_pad)

                def step_body(b: Any) -> tuple:
                    with tf.GradientTape() as tape:
                        loss = model.batch_loss(tf_vars, consts, order, epoch, b)
                    opt.apply(tape.gradient(loss, tf_vars), variables)
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
        for v, p in zip(self.opt.variables, self.opt_initial if opt_state is None else opt_state):
            v.assign(p)
        tf_logger = logging.getLogger("tensorflow")
        quiet = _RetracingFilter()
        tf_logger.addFilter(quiet)
        try:
            with forget_traced_gradients():
                self.fn(consts, lr)
        finally:
            tf_logger.removeFilter(quiet)
        return [v.numpy() for v in self.variables], [v.numpy() for v in self.opt.variables]


class JaxLoop:
    """A jitted function of nested ``fori_loop`` s, stateless in weights and optimizer state."""

    def __init__(self, model: _Model, params: list[np.ndarray], structure: Structure,
                 epochs: int, steps: int, n_pad: int) -> None:
        import jax

        self.model = model
        holder: dict = {}
        opt, _ = _optimizer(structure, holder, params)
        self.opt_initial = [np.asarray(v.value) for v in opt.variables]

        def run(params: list, opt_vars: list, consts: dict, lr: Any) -> list:
            holder["lr"] = lr
            grad_fn = jax.grad(model.batch_loss)

            def epoch_body(e: Any, state: tuple) -> tuple:
                epoch = consts["epoch0"] + e  # (R, 1): each replica's own epoch
                order = model.epoch_order(consts, epoch, n_pad)

                def step_body(b: Any, state: tuple) -> tuple:
                    p, o = state
                    grads = grad_fn(p, consts, order, epoch, b)
                    return tuple(opt.stateless_apply(o, grads, p))

                return jax.lax.fori_loop(0, steps, step_body, state)

            return jax.lax.fori_loop(0, epochs, epoch_body, (params, opt_vars))

        self.fn = jax.jit(run)

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray,
            opt_state: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) after the run; the state starts fresh unless given."""
        trained, state = self.fn(params, self.opt_initial if opt_state is None else opt_state,
                                 consts, lr)
        return [np.asarray(p) for p in trained], [np.asarray(o) for o in state]
