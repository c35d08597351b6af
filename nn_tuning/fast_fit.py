"""The fast trial path: train small Keras models without per-epoch overhead.

Small networks spend their training time in tracing and per-epoch work, not
in arithmetic (a seed-recipe fit of 80 epochs: ~3 s with numpy input, a few
milliseconds of FLOPs). Three things remove that overhead:

* **All epochs in one execution.** The training data become one in-memory
  ``tf.data`` pipeline holding every epoch's batches, and one traced
  ``tf.while_loop`` calls the model's own ``train_step`` once per batch. The
  batches, their order and the optimizer steps are exactly those of
  ``model.fit(dataset, epochs=epochs)`` on ``dataset =
  from_tensor_slices((x, y)).shuffle(len(x), seed,
  reshuffle_each_iteration=True).batch(batch_size)``: the learned weights are
  identical (see :func:`_epochs_dataset` for how Keras draws its shuffles).
  As ``model.fit`` does, metrics are reset at each epoch's start and read at
  its end, so the run returns ``model.fit``'s history: the loss and every
  compiled metric, one value per epoch. Sample weights go with the rows.
* **One trace per configuration.** A process keeps a few *engines*: a compiled
  model per configuration whose training loop is already traced. A new fit of
  the same configuration (the next CV fold) copies the freshly built model's
  initial weights and optimizer state into the engine, trains it, and copies
  the result back. The caller's model is never shared.
* **Bounded state.** The cache keeps at most ``_MAX_ENGINES`` engines, and
  after every ``_CLEAR_EVERY`` new configurations it drops them all and clears
  Keras' session (:func:`clear_engines`). Every run also unregisters the
  gradient functions a (re)trace added to TensorFlow's global gradient
  registry (:func:`forget_traced_gradients`): Keras' TensorFlow optimizer
  sums gradients through ``ReplicaContext.all_reduce``, which registers a
  ``tf.custom_gradient`` per trace whose closure holds the traced graph, so
  without this every traced configuration stays in memory for good
  (measured: about 1.1 MB each; ``model.fit`` leaks the same way, about
  3.7 MB per new model).

The cache is process-local; each worker process of a parallel search has its own.
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any, Callable

import numpy as np

__all__ = [
    "NotFastError", "clear_engines", "engine_cache_info", "fit_all_epochs",
    "forget_traced_gradients",
]

_MAX_ENGINES = 4
# New configurations between two clear_engines() calls (a garbage collection,
# ~0.1 s): drops Keras' global state and old engines' Python objects.
_CLEAR_EVERY = 25
_engines: OrderedDict[Hashable, Any] = OrderedDict()
_stats = {"hits": 0, "misses": 0, "clears": 0}
_since_clear = 0
# Fits of one process may run in several threads (Dask runs tasks in threads):
# an engine is shared state, so one fit at a time uses the cache and its engines.
_lock = threading.RLock()


def clear_engines() -> None:
    """Drop every cached engine and free Keras' global state.

    Models built before stay usable; Keras' global seed is reset, so seed again
    (``keras.utils.set_random_seed``) before building the next seeded model.
    The dtype policy, interactive logging and traceback filtering are kept.
    """
    import keras

    global _since_clear
    _engines.clear()
    _since_clear = 0
    _stats["clears"] += 1
    # clear_session also resets the user's Keras settings: a mixed-precision
    # run's later models would be built in float32. They are kept.
    policy = keras.config.dtype_policy()
    logging = keras.config.is_interactive_logging_enabled()
    filtering = keras.config.is_traceback_filtering_enabled()
    keras.backend.clear_session(free_memory=True)
    keras.config.set_dtype_policy(policy)
    (keras.config.enable_interactive_logging if logging
     else keras.config.disable_interactive_logging)()
    (keras.config.enable_traceback_filtering if filtering
     else keras.config.disable_traceback_filtering)()
    gc.collect()


def engine_cache_info() -> dict[str, int]:
    """Hits, misses, automatic and explicit clears, and size of this process's engine cache."""
    return {**_stats, "size": len(_engines)}


def _signature(model: Any) -> tuple:
    # The optimizer's class and the dtype policy too: under mixed precision the same
    # layers get a LossScaleOptimizer, whose variables an engine of plain Adam would
    # copy out of step (a scalar into a kernel's momentum).
    return (tuple(tuple(v.shape) for v in model.variables), type(model.optimizer).__name__,
            model.dtype_policy.name)


def _optimizer_variables(model: Any) -> list:
    opt = model.optimizer
    if not opt.built:
        opt.build(model.trainable_variables)
    return list(opt.variables)


def _copy(dst: list, src: list) -> None:
    for d, s in zip(dst, src):
        d.assign(s)


def _get_engine(key: Hashable, model: Any, build: Callable[[], Any]) -> Any:
    engine = _engines.get(key)
    if engine is not None and engine.signature == _signature(model):
        _engines.move_to_end(key)
        _stats["hits"] += 1
        return engine
    global _since_clear
    _stats["misses"] += 1
    if _CLEAR_EVERY and _since_clear >= _CLEAR_EVERY:
        # The caller's model is already built (and seeded): clearing is safe here.
        clear_engines()
    _since_clear += 1
    engine = build()
    _engines[key] = engine
    while len(_engines) > _MAX_ENGINES:
        _engines.popitem(last=False)
    return engine


class _Engine:
    """A compiled twin of a model, with a traced function that runs every epoch at once.

    ``run(iterator, epochs, steps_per_epoch)`` is one ``tf.while_loop`` over
    the epochs, each an inner loop of ``steps_per_epoch`` calls of the
    model's own ``train_step`` (wrapped, as ``model.fit`` wraps it, in a
    ``tf.function``). As ``model.fit`` does, every epoch starts with reset
    metrics and ends by reading ``get_metrics_result()``: the loss and every
    compiled metric, one value per epoch. Keras' own ``steps_per_execution``
    loop checks for the end of the data at every step through optionals and
    conditionals, which cost tracing time and a little time per step; here
    the number of steps is known in advance. The engine's optimizer state is
    the caller's, copied in before and out after every run.
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        self.model = model
        self.signature = _signature(model)
        self.optimizer_variables = _optimizer_variables(model)

        def train_step(data: Any) -> Any:
            return model.train_step(data)

        step = tf.function(train_step, reduce_retracing=True, autograph=False,
                           jit_compile=bool(model.jit_compile))

        def reset() -> None:
            for metric in model.metrics:
                metric.reset_state()

        @tf.function(autograph=False, reduce_retracing=True)
        def run(iterator: Any, epochs: Any, steps_per_epoch: Any) -> dict:
            template = model.get_metrics_result()
            logs = {name: tf.TensorArray(tf.convert_to_tensor(value).dtype, size=epochs)
                    for name, value in template.items()}

            def end_epoch(i: Any, logs: dict) -> dict:
                result = model.get_metrics_result()
                logs = {name: logs[name].write(i // steps_per_epoch, result[name])
                        for name in logs}
                reset()
                return logs

            def body(i: Any, logs: dict) -> tuple:
                step(iterator.get_next())
                # One flat loop: a nested loop per epoch costs more than this cond.
                logs = tf.cond(tf.equal((i + 1) % steps_per_epoch, 0),
                               lambda: end_epoch(i, logs), lambda: logs)
                return i + 1, logs

            reset()
            _, logs = tf.while_loop(lambda i, _: i < epochs * steps_per_epoch, body,
                                    (tf.constant(0), logs))
            return {name: array.stack() for name, array in logs.items()}

        self.run = run
        for function in (step, run):
            _count_retracing_per_engine(function, self)


def _count_retracing_per_engine(function: Any, engine: _Engine) -> None:
    """Make TensorFlow's retracing warning count this engine's traces alone.

    TensorFlow counts a ``tf.function``'s traces per Python code object, so
    the one trace each new engine makes (every configuration, by design)
    would add up to a "triggered tf.function retracing" warning after five
    configurations. Keyed by the engine instead, a warning still means what it
    says: one engine retraced again and again.
    """
    if hasattr(function, "_key_for_call_stats"):
        function._key_for_call_stats = engine  # a weakly referenced key


def _gradient_registry() -> dict:
    """TensorFlow's global gradient registry (name -> function), or {} if it moved."""
    try:
        from tensorflow.python.framework import ops
    except ImportError:  # pragma: no cover - a TensorFlow without this module
        return {}
    return getattr(getattr(ops, "_gradient_registry", None), "_registry", None) or {}


@contextlib.contextmanager
def forget_traced_gradients() -> Iterator[None]:
    """Unregister the custom gradients that traces inside the block register.

    A traced training step has its backward pass built in, so nothing looks
    these gradients up again, and unregistering them lets the graph go with
    its model (or engine). Used around every engine run and ``model.fit``.
    """
    before = _custom_gradient_names()
    try:
        yield
    finally:
        registry = _gradient_registry()
        for name in _custom_gradient_names() - before:
            registry.pop(name, None)


def _custom_gradient_names() -> set[str]:
    # tf.custom_gradient registers its graph-mode gradients as "CustomGradient-<uid>".
    return {name for name in _gradient_registry() if name.startswith("CustomGradient-")}


def _epochs_dataset(tf: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
                    shuffle: bool, seed: int | None,
                    sample_weight: np.ndarray | None = None) -> Any:
    """Every epoch's batches, in the order ``model.fit(data, epochs=epochs)`` trains on them.

    ``data`` is ``from_tensor_slices((x, y)).shuffle(len(x), seed,
    reshuffle_each_iteration=True).batch(batch_size)``. Each new iterator over
    it draws the next shuffle. Keras 3's epoch iterator makes two iterators per
    epoch (the one it trains on, and a spare one made when the epoch ends and
    then dropped), so epoch ``k`` trains on the ``2k-1``-th shuffle. Here each
    shuffled epoch is one element, ``repeat`` draws a new shuffle per
    repetition, ``shard(2, 0)`` keeps every other one and ``rebatch`` cuts each
    into Keras' batches (the last one smaller). No Python function enters the
    pipeline, so nothing is traced per fit. With ``sample_weight`` the
    elements are ``(x, y, sample_weight)``, as ``model.fit`` takes them.
    """
    data = tf.data.Dataset.from_tensor_slices(
        (x, y) if sample_weight is None else (x, y, sample_weight))
    if not shuffle:
        return data.batch(batch_size).repeat(epochs).prefetch(tf.data.AUTOTUNE)
    n = len(x)
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    return (data.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(n)
            .repeat(2 * epochs).shard(2, 0)
            .rebatch(np.asarray(sizes, dtype="int64"))
            .prefetch(tf.data.AUTOTUNE))


class NotFastError(Exception):
    """The configuration cannot train on the fast path; train it with ``model.fit`` instead."""


def _build_state(model: Any, x: np.ndarray, y: np.ndarray, *, weights_only: bool = False) -> None:
    """Create the model's weights, loss and compiled metrics from one batch, as ``model.fit`` does.

    ``weights_only``: only when some layer has no weights yet (the caller's
    model, whose metrics the engine computes; about 25 ms a fit saved).
    """
    if weights_only and all(layer.built for layer in model._flatten_layers()):
        return
    model._symbolic_build(data_batch=(x[:1], y[:1]))


def fit_all_epochs(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    shuffle: bool = True,
    seed: int | None = None,
    build: Callable[[], Any],
    key: Hashable | None = None,
    sample_weight: np.ndarray | None = None,
) -> dict[str, list]:
    """Train ``model`` in place as ``model.fit`` would, in one execution.

    Parameters
    ----------
    model : keras.Model
        A compiled, untrained (or warm) model; its weights and optimizer state
        are updated in place.
    x, y : ndarray
        Training data.
    epochs, batch_size : int
        As in ``model.fit``; the last batch of an epoch may be smaller.
    shuffle : bool
        Reshuffle the rows every epoch.
    seed : int, optional
        Seed of the shuffle.
    build : callable
        Returns a new compiled model of the same configuration: the engine.
    key : hashable, optional
        Identifies the configuration; the traced engine is reused across
        calls with the same key (the CV folds of one configuration). Fits
        with and without ``sample_weight`` need different keys.
    sample_weight : ndarray, optional
        One weight per row, as ``model.fit(..., sample_weight=...)``.

    Returns
    -------
    dict
        What ``model.fit(...).history`` holds: for the loss and every compiled
        metric, one value per epoch (NaN or inf when training diverged).

    Raises
    ------
    NotFastError
        When ``build`` returns the caller's model (a pre-built model):
        nothing has been trained, and ``model.fit`` should train it.
    """
    with _lock:
        return _fit_locked(model, x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                           seed=seed, build=build, key=key, sample_weight=sample_weight)


def _new_engine(model: Any, x: np.ndarray, y: np.ndarray, build: Callable[[], Any]) -> Any:
    import keras

    twin = build()
    if twin is model:
        raise NotFastError("the builder returns the caller's model")
    if twin.optimizer is model.optimizer:
        # An optimizer instance compiled into every model the builder returns:
        # the engine takes a copy (its state is the caller's, copied in each run).
        twin.optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    _build_state(twin, x, y)
    return _Engine(twin)


def _fit_locked(model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
                shuffle: bool, seed: int | None, build: Callable[[], Any],
                key: Hashable | None, sample_weight: np.ndarray | None) -> dict[str, list]:
    import tensorflow as tf
    from keras.src.utils.python_utils import pythonify_logs

    _build_state(model, x, y, weights_only=True)
    engine = _get_engine(key if key is not None else object(), model,
                         lambda: _new_engine(model, x, y, build))
    target, engine_opt = engine.model, engine.optimizer_variables
    _copy(target.variables, model.variables)
    _copy(engine_opt, _optimizer_variables(model))

    steps_per_epoch = math.ceil(len(x) / batch_size)
    if not epochs or not steps_per_epoch:
        return {}
    data = _epochs_dataset(tf, x, y, epochs=epochs, batch_size=batch_size,
                           shuffle=shuffle, seed=seed, sample_weight=sample_weight)
    with forget_traced_gradients():
        logs = engine.run(iter(data), tf.constant(epochs, dtype="int32"),
                          tf.constant(steps_per_epoch, dtype="int32"))
    logs = {name: value.numpy() for name, value in logs.items()}
    history: dict[str, list] = {}
    for epoch in range(epochs):
        # model.fit's History records each epoch's logs through pythonify_logs.
        for name, value in pythonify_logs({k: v[epoch] for k, v in logs.items()}).items():
            history.setdefault(name, []).append(value)

    _copy(model.variables, target.variables)
    _copy(_optimizer_variables(model), engine_opt)
    return history
