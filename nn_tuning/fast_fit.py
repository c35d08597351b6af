"""The fast trial path: train small Keras models without per-epoch overhead.

Small networks spend their training time in tracing and per-epoch work, not
in arithmetic (a seed-recipe fit of 80 epochs: ~3 s with numpy input, a few
milliseconds of FLOPs). Two things remove that overhead:

* **All epochs in one execution.** The training data become one in-memory
  ``tf.data`` pipeline, shuffled afresh every epoch, batched, and repeated for
  every epoch; the model is compiled with a ``steps_per_execution`` larger than
  any run, so one call of Keras' own traced train function runs every step.
  The batches, their order and the optimizer steps are exactly those of
  ``model.fit(dataset, epochs=epochs)``: the learned weights are identical.
* **One trace per configuration.** A process keeps a few *engines*: a compiled
  model per configuration whose train function is already traced. A new fit of
  the same configuration (the next CV fold) copies the freshly built model's
  initial weights and optimizer state into the engine, trains it, and copies
  the result back. The caller's model is never shared.

The cache is process-local and bounded; clear it with :func:`clear_engines`.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Callable

import numpy as np

__all__ = ["clear_engines", "fit_all_epochs", "engine_cache_info"]

# Large enough that one execution covers every step of any run.
_ALL_STEPS = 2**30
_MAX_ENGINES = 4
_engines: OrderedDict[Hashable, Any] = OrderedDict()
_stats = {"hits": 0, "misses": 0}


def clear_engines() -> None:
    """Drop every cached engine and free Keras' global state."""
    import keras

    _engines.clear()
    keras.backend.clear_session(free_memory=True)
    gc.collect()


def engine_cache_info() -> dict[str, int]:
    """Hits, misses and size of this process's engine cache."""
    return {**_stats, "size": len(_engines)}


def _signature(model: Any) -> tuple:
    return tuple(tuple(v.shape) for v in model.variables)


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
    _stats["misses"] += 1
    engine = _Engine(build())
    _engines[key] = engine
    while len(_engines) > _MAX_ENGINES:
        _engines.popitem(last=False)
    return engine


class _Engine:
    """A compiled twin of a model whose train function runs every step at once."""

    def __init__(self, model: Any) -> None:
        model.compile(
            optimizer=model.optimizer,
            loss=model.loss,
            loss_weights=getattr(model, "loss_weights", None),
            steps_per_execution=_ALL_STEPS,
            jit_compile=getattr(model, "jit_compile", "auto"),
        )
        self.model = model
        self.signature = _signature(model)
        self.optimizer_variables = _optimizer_variables(model)


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
) -> float:
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
        calls with the same key (the CV folds of one configuration).

    Returns
    -------
    float
        The mean training loss over the run (NaN or inf when training diverged).
    """
    import tensorflow as tf

    engine = _get_engine(key if key is not None else object(), model, build)
    target, engine_opt = engine.model, engine.optimizer_variables
    _copy(target.variables, model.variables)
    _copy(engine_opt, _optimizer_variables(model))

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size).repeat(epochs).prefetch(tf.data.AUTOTUNE)
    history = target.fit(data, epochs=1, verbose=0, shuffle=False)

    _copy(model.variables, target.variables)
    _copy(_optimizer_variables(model), engine_opt)
    losses = history.history.get("loss") or [float("nan")]
    return float(losses[-1])
