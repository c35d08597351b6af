"""The two drivers of a stack's training loop: TensorFlow and JAX.

Each traces a run of ``epochs`` epochs (every epoch, every step) once per
envelope and is reused, with new weights, optimizer state and constants, by
every stack it covers (:mod:`.compiled` keeps them) and by every segment of
a stack trained a few epochs at a time
(:class:`nn_tuning.stacked.slots.SlotStack`). Tracing (or compiling) is
timed apart from training (:mod:`.clock`).

A run starts from the optimizer state it is given and returns the state it
ends with, so training can stop and go on. Each replica keeps its own step
count (the optimizer's ``iterations``, shaped ``(R, 1, 1)``) and its own
epoch counter (``consts["epoch0"]``, ``(R, 1)``): replicas of different ages
share one stack and each steps, shuffles and drops out as its own
``model.fit`` would at that age; a learning-rate schedule, Keras' own, is
evaluated at each replica's own step count.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .clock import timed
from .model import StackedModel

__all__ = ["JaxLoop", "TFLoop"]


def _optimizers(variants: Sequence[tuple], lr_holder: dict,
                variables: Sequence[Sequence[Any]]) -> list[Any]:
    """Keras' own optimizer of each variant, on its replicas' weights, one step count per replica.

    ``variables[k]`` are the weights of variant ``k``'s replicas (a slice of
    the stack); its learning rate is ``lr_holder["lr"][k]``, shaped
    ``(R_k, 1, 1)``. Keras keeps one scalar step count per optimizer
    (``iterations``, read by the bias corrections of Adam, Adamax and Nadam,
    and Nadam's running ``u_product``). Replicas of different ages share a
    stack, so both become ``(R_k, 1, 1)`` variables before the first step:
    every update reads them elementwise, as it reads the learning rate, and
    each replica's update is the one Keras makes at that replica's own step.
    """
    import ast

    import keras

    opts = []
    for k, ((name, settings), built_on) in enumerate(zip(variants, variables)):
        R = built_on[0].shape[0]
        config = {key: ast.literal_eval(v) for key, v in settings}
        schedule = config.pop("learning_rate_schedule", None)
        made: list[Any] = []  # the optimizer, for its schedule to read its step counts
        lr = lambda k=k: lr_holder["lr"][k]  # noqa: E731
        if name == "Ftrl":
            # Ftrl divides by the rate: at 0 (padding, empty slots) its (R, 1, 1) term
            # beta / (2 lr) is 0/0, and Keras' TensorFlow ops.add, taking that term for a bias
            # when R equals a weight's dimension, adds it along that axis: every replica
            # would get the NaN. Those replicas train at 1 instead (nothing reads them).
            lr = lambda k=k: keras.ops.where(lr_holder["lr"][k] > 0,  # noqa: E731
                                             lr_holder["lr"][k], 1.0)
        opt = getattr(keras.optimizers, name)(
            learning_rate=lr if schedule is None else _scheduled(schedule, lr, made), **config)
        made.append(opt)
        _per_replica(opt, "_iterations", np.zeros((R, 1, 1), "int64"))
        opt.build(list(built_on))
        if hasattr(opt, "_u_product"):  # Nadam
            _per_replica(opt, "_u_product", np.ones((R, 1, 1), "float32"))
        opts.append(opt)
    return opts


def _scheduled(schedule: tuple, initial: Any, made: list[Any]) -> Any:
    """A learning rate: Keras' own schedule, evaluated at each replica's step count (the
    ``iterations`` of the optimizer ``made[0]``).

    ``schedule`` is (class name, settings but the initial rate) as
    :mod:`.structure` read them; ``initial()`` is the replicas' initial rates,
    ``(R_k, 1, 1)``. The supported schedules compute elementwise in the
    initial rate and the step, so with both ``(R_k, 1, 1)`` one call gives
    every replica the rate its own ``model.fit`` would use at its own step.
    """
    import keras

    cls = getattr(keras.optimizers.schedules, schedule[0])
    settings = dict(schedule[1])

    def rate() -> Any:
        if schedule[0] == "PiecewiseConstantDecay":
            # No initial rate: its values are the variant's. Replicas at a rate of 0
            # (padding, empty slots) keep 0, as under every other schedule.
            return keras.ops.where(initial() > 0, cls(**settings)(made[0].iterations), 0.0)
        return cls(initial_learning_rate=initial(), **settings)(made[0].iterations)

    return rate


def _by_optimizer(flat: Sequence[Any], opts: Sequence[Any]) -> list[list[Any]]:
    """A flat optimizer state, one list per optimizer."""
    out, i = [], 0
    for opt in opts:
        n = len(opt.variables)
        out.append(list(flat[i:i + n]))
        i += n
    return out


def _whole(ops: Any, parts: Sequence[Sequence[Any]]) -> list[Any]:
    """The stack's weights from each variant's slices, in replica order."""
    if len(parts) == 1:
        return list(parts[0])
    return [ops.concatenate([part[i] for part in parts], axis=0) for i in range(len(parts[0]))]


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


def _batch_rows(consts: dict, step: Any, batch_size: int) -> Any:
    """Each replica's rows in batch ``step``, (R,) float32: the weight Keras' loss tracker gives
    the batch's mean loss."""
    import keras

    ops = keras.ops
    left = ops.subtract(ops.reshape(consts["n_rows"], (-1,)), ops.multiply(step, batch_size))
    return ops.cast(ops.clip(left, 0, batch_size), "float32")


class _RetracingFilter(logging.Filter):
    """Hides TensorFlow's "triggered tf.function retracing" warning: each stack is traced on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "retracing" not in record.getMessage()


class TFLoop:
    """A ``tf.function`` of nested while loops over the stack's variables, one set per optimizer."""

    def __init__(self, model: StackedModel, params: list[np.ndarray],
                 variant_runs: Sequence[tuple], epochs: int, steps: int, n_pad: int) -> None:
        import keras
        import tensorflow as tf

        self.model, self.runs = model, list(variant_runs)
        holder: dict = {}
        # Each optimizer updates its own replicas' slice of every trainable weight; the
        # moving statistics of BatchNormalization layers follow the batches instead.
        self.parts = [[keras.Variable(p[a:b]) for p in params] for _, a, b in self.runs]
        n = model.slots.n_trainable
        self.opts = _optimizers([v for v, _, _ in self.runs], holder,
                                [part[:n] for part in self.parts])
        self.opt_initial = [v.numpy() for opt in self.opts for v in opt.variables]
        parts, opts, runs = self.parts, self.opts, self.runs
        tf_parts = [[v.value for v in part] for part in parts]
        flat = [t for part in tf_parts for t in part[:n]]
        # Each replica's training loss summed over the run's samples (what Keras' epoch
        # "loss" averages): EarlyStopping on "loss" reads it after a one-epoch run.
        self.sums = keras.Variable(np.zeros(params[0].shape[0], "float32"), trainable=False)
        sums = self.sums

        # Not XLA (jit_compile): measured on the seed grid's stack (2 CPU cores), XLA's
        # compile took ~6 s against ~1-2 s to trace, for steps ~2x faster: a study run
        # once pays more than it saves (README, Performance).
        @tf.function(autograph=False)
        def run(consts: dict, lr: Any) -> Any:
            holder["lr"] = [lr[a:b] for _, a, b in runs]

            def epoch_body(e: Any) -> tuple:
                epoch = consts["epoch0"] + e  # (R, 1): each replica's own epoch
                order = model.epoch_order(consts, epoch, n_pad)

                def step_body(b: Any) -> tuple:
                    with tf.GradientTape() as tape:
                        loss, (updates, losses) = model.batch_loss(
                            _whole(model.ops, tf_parts), consts, order, epoch, b, aux=True)
                    sums.assign_add(losses * _batch_rows(consts, b, model.batch_size))
                    grads = tape.gradient(loss, flat)
                    for k, opt in enumerate(opts):
                        opt.apply(grads[k * n:(k + 1) * n], parts[k][:n])
                    for i, value in updates:
                        for part, (_, a, stop) in zip(parts, runs):
                            part[i].assign(value[a:stop])
                    return (b + 1,)

                tf.while_loop(lambda b: b < steps, step_body, (tf.constant(0),))
                return (e + 1,)

            return tf.while_loop(lambda e: e < epochs, epoch_body, (tf.constant(0),))

        self.fn = run
        self.traced = False

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray,
            opt_state: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) after the run; the state starts fresh unless given."""
        from ..fast_fit import forget_traced_gradients

        for part, (_, a, b) in zip(self.parts, self.runs):
            for v, p in zip(part, params):
                v.assign(p[a:b])
        opt_vars = [v for opt in self.opts for v in opt.variables]
        for v, p in zip(opt_vars, self.opt_initial if opt_state is None else opt_state):
            v.assign(p)
        self.sums.assign(np.zeros(self.sums.shape, "float32"))
        tf_logger = logging.getLogger("tensorflow")
        quiet = _RetracingFilter()
        tf_logger.addFilter(quiet)
        try:
            with forget_traced_gradients():
                if not self.traced:
                    with timed("trace"):
                        self.fn.get_concrete_function(consts, lr)
                    self.traced = True
                with timed("train"):
                    self.fn(consts, lr)
        finally:
            tf_logger.removeFilter(quiet)
        trained = [np.concatenate([part[i].numpy() for part in self.parts])
                   for i in range(len(params))]
        self.loss_sums = self.sums.numpy()
        return trained, [v.numpy() for v in opt_vars]


class JaxLoop:
    """A jitted function of nested ``fori_loop`` s, stateless in weights and optimizer state."""

    def __init__(self, model: StackedModel, params: list[np.ndarray],
                 variant_runs: Sequence[tuple], epochs: int, steps: int, n_pad: int) -> None:
        import jax
        import keras

        self.model = model
        runs = list(variant_runs)
        holder: dict = {}
        n = model.slots.n_trainable  # the rest: BatchNormalization moving statistics
        opts = _optimizers([v for v, _, _ in runs], holder,
                           [[keras.Variable(p[a:b]) for p in params[:n]] for _, a, b in runs])
        self.opt_initial = [np.asarray(v.value) for opt in opts for v in opt.variables]
        ops = model.ops

        def loss(trained: list, moving: list, consts: dict, order: Any, epoch: Any,
                 b: Any) -> Any:
            return model.batch_loss(_whole(ops, trained) + moving, consts, order, epoch, b,
                                    aux=True)

        def run(params: list, opt_vars: list, consts: dict, lr: Any) -> list:
            holder["lr"] = [lr[a:b] for _, a, b in runs]
            grad_fn = jax.grad(loss, has_aux=True)
            parts = [[p[a:b] for p in params] for _, a, b in runs]

            def epoch_body(e: Any, state: tuple) -> tuple:
                epoch = consts["epoch0"] + e  # (R, 1): each replica's own epoch
                order = model.epoch_order(consts, epoch, n_pad)

                def step_body(b: Any, state: tuple) -> tuple:
                    parts, o, sums = state
                    grads, (updates, losses) = grad_fn([p[:n] for p in parts],
                                                       _whole(ops, [p[n:] for p in parts]),
                                                       consts, order, epoch, b)
                    sums = sums + losses * _batch_rows(consts, b, model.batch_size)
                    new_parts, new_o = [], []
                    for opt, g, p, o_k in zip(opts, grads, parts, _by_optimizer(o, opts)):
                        p_k, o_k = opt.stateless_apply(o_k, g, p[:n])
                        new_parts.append(list(p_k) + list(p[n:]))
                        new_o += list(o_k)
                    for i, value in updates:
                        for part, (_, a, stop) in zip(new_parts, runs):
                            part[i] = value[a:stop]
                    return new_parts, new_o, sums

                return jax.lax.fori_loop(0, steps, step_body, state)

            sums = ops.zeros((params[0].shape[0],), "float32")
            parts, state, sums = jax.lax.fori_loop(0, epochs, epoch_body,
                                                   (parts, opt_vars, sums))
            return _whole(ops, parts), state, sums

        self.fn = jax.jit(run)
        self.compiled: Any = None

    def run(self, params: list[np.ndarray], consts: dict, lr: np.ndarray,
            opt_state: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, optimizer state) after the run; the state starts fresh unless given."""
        args = (params, self.opt_initial if opt_state is None else opt_state, consts, lr)
        if self.compiled is None:
            with timed("trace"):  # or loaded from JAX's persistent cache
                self.compiled = self.fn.lower(*args).compile()
        with timed("train"):
            trained, state, sums = self.compiled(*args)
            trained = [np.asarray(p) for p in trained]
            self.loss_sums = np.asarray(sums)
        return trained, [np.asarray(o) for o in state]
