"""The two drivers of a stack's training loop: TensorFlow and JAX.

Each traces the whole run (every epoch, every step) once per stack signature
and is reused, with new initial weights and constants, by every stack of the
same shapes (:func:`nn_tuning.stacked.engine.train_stack` keeps them).
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


def _optimizer(structure: Structure, lr_holder: dict) -> Any:
    import ast

    import keras

    config = {k: ast.literal_eval(v) for k, v in structure.optimizer_config}
    return getattr(keras.optimizers, structure.optimizer)(
        learning_rate=lambda: lr_holder["lr"], **config)


class _RetracingFilter(logging.Filter):
    """Hides TensorFlow's "triggered tf.function retracing" warning: each stack is traced on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "retracing" not in record.getMessage()


class TFLoop:
    """A ``tf.function`` of nested while loops over the stack's variables."""

    def __init__(self, model: _Model, params: list[np.ndarray], structure: Structure,
                 epochs: int, steps: int, n_pad: int) -> None:
        import keras
        import tensorflow as tf

        self.model = model
        self.variables = [keras.Variable(p) for p in params]
        holder: dict = {}
        self.opt = _optimizer(structure, holder)
        self.opt.build(self.variables)
        self.opt_initial = [v.numpy() for v in self.opt.variables]
        variables, opt = self.variables, self.opt
        tf_vars = [v.value for v in variables]

        @tf.function(autograph=False)
        def run(consts: dict, lr: Any) -> Any:
            holder["lr"] = lr

            def epoch_body(e: Any) -> tuple:
                order = model.epoch_order(consts, e, n_pad)

                def step_body(b: Any) -> tuple:
                    with tf.GradientTape() as tape:
                        loss = model.batch_loss(tf_vars, consts, order, e, b)
                    opt.apply(tape.gradient(loss, tf_vars), variables)
                    return (b + 1,)

                tf.while_loop(lambda b: b < steps, step_body, (tf.constant(0),))
                return (e + 1,)

            return tf.while_loop(lambda e: e < epochs, epoch_body, (tf.constant(0),))

        self.fn = run

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray) -> list[np.ndarray]:
        from ..fast_fit import forget_traced_gradients

        for v, p in zip(self.variables, params):
            v.assign(p)
        for v, p in zip(self.opt.variables, self.opt_initial):
            v.assign(p)
        tf_logger = logging.getLogger("tensorflow")
        quiet = _RetracingFilter()
        tf_logger.addFilter(quiet)
        try:
            with forget_traced_gradients():
                self.fn(consts, lr)
        finally:
            tf_logger.removeFilter(quiet)
        return [v.numpy() for v in self.variables]


class JaxLoop:
    """A jitted function of nested ``fori_loop`` s, stateless in weights and optimizer state."""

    def __init__(self, model: _Model, params: list[np.ndarray], structure: Structure,
                 epochs: int, steps: int, n_pad: int) -> None:
        import jax
        import keras

        self.model = model
        variables = [keras.Variable(p) for p in params]
        holder: dict = {}
        opt = _optimizer(structure, holder)
        opt.build(variables)
        self.opt_initial = [np.asarray(v.value) for v in opt.variables]

        def run(params: list, opt_vars: list, consts: dict, lr: Any) -> list:
            holder["lr"] = lr
            grad_fn = jax.grad(model.batch_loss)

            def epoch_body(e: Any, state: tuple) -> tuple:
                order = model.epoch_order(consts, e, n_pad)

                def step_body(b: Any, state: tuple) -> tuple:
                    p, o = state
                    grads = grad_fn(p, consts, order, e, b)
                    return tuple(opt.stateless_apply(o, grads, p))

                return jax.lax.fori_loop(0, steps, step_body, state)

            return jax.lax.fori_loop(0, epochs, epoch_body, (params, opt_vars))[0]

        self.fn = jax.jit(run)

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray) -> list[np.ndarray]:
        trained = self.fn(params, self.opt_initial, consts, lr)
        return [np.asarray(p) for p in trained]
