"""``validation_split``, Keras' ``EarlyStopping`` and ``ReduceLROnPlateau``, per replica of a stack.

A replica given rows ``rows`` trains as ``model.fit(X[rows], Y[rows],
validation_split=v, callbacks=[EarlyStopping(...)])`` would: Keras splits
*before* shuffling, so the replica trains on ``rows[:floor(n * (1 - v))]``
(:func:`split_rows`, Keras' rounding and its refusal of an empty part) and
validates on the rest. At each epoch's end its ``val_loss`` is what
``model.evaluate`` reports: the compiled loss's mean over each batch of
``validation_batch_size`` (or ``batch_size``) rows, averaged weighted by the
batch's rows as Keras' ``Mean`` metric does, in float32, on the weights at
that epoch's end, without dropout.

The stopping rule is not rewritten here: each replica drives its own
``keras.callbacks.EarlyStopping`` (a fresh one with the user's settings)
through ``on_train_begin``, ``on_epoch_end`` and ``on_train_end``, with a
stand-in model whose weights are the replica's slice of the stack. Its own
``keras.callbacks.ReduceLROnPlateau`` likewise reads and sets the stand-in
model's ``optimizer.learning_rate``: the replica's learning rate in the
stack, used from the next epoch on (callbacks run in the order given, on one
logs dict, as Keras' ``CallbackList`` runs them). So the
improvement test (``min_delta``, ``mode``), ``patience``, ``baseline``,
``start_from_epoch``, the ``epoch > 0`` condition and when the best weights
are taken and restored (only at the end of training, stopped or not) are
Keras' own. A replica that stops is frozen: its learning rate becomes 0 for
the epochs its stack-mates go on training, and its weights (the ones Keras
would leave it with, restored or not) are written back after the stack.

A callback monitoring ``val_loss`` without a validation part finds nothing
to monitor and does nothing (Keras warns so each epoch); one monitoring
``loss`` reads the epoch's training loss as Keras' loss tracker
keeps it: each training batch's mean loss (before that step's update, with
dropout), averaged weighted by the batch's rows; the loop sums it per
replica (:mod:`.loops`). Other monitors and other callbacks are refused
with a reason (:func:`obstacle`), and the configuration trains one at a
time; so is ``ReduceLROnPlateau`` beside a learning-rate schedule (Keras'
callback cannot set a schedule's rate). The callbacks' ``verbose`` messages
are not printed.

Cost: a stack with such a callback trains one epoch per call of its
compiled loop (a loop traced for one epoch, kept like any other: the epochs
are part of its key in :mod:`.compiled`), then predicts its validation rows
and runs the callbacks. Measured on 2 shared CPU cores (TensorFlow, 8
replicas of an 8-unit MLP, 128 training rows, batch 32, 40 epochs, warm):
one call of 40 epochs 0.06-0.08 s; epoch by epoch 1.0-1.2 s, of which the
validation losses and callbacks 0.2 s. About 20 ms an epoch, a fixed cost of
each call (weights and optimizer state go in and out) rather than of the
arithmetic, so it matters for tiny stacks and fades for large ones; a stack
whose replicas have all stopped ends at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Monitoring", "Watchers", "monitoring", "obstacle", "split_rows", "training_rows",
           "val_losses"]

# The settings of each callback a stack drives, by class name.
_SETTINGS = {
    "EarlyStopping": ("monitor", "min_delta", "patience", "mode", "baseline",
                      "restore_best_weights", "start_from_epoch"),
    "ReduceLROnPlateau": ("monitor", "factor", "patience", "mode", "min_delta", "cooldown",
                          "min_lr"),
}


@dataclass(frozen=True)
class Monitoring:
    """What a stack watches while it trains: the validation part and the callbacks.

    ``callbacks`` holds, in the order given, each callback's class name and
    settings as (name, value) pairs (:data:`_SETTINGS`), so that equal rules
    compare equal.
    """

    validation_split: float = 0.0
    callbacks: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    validation_batch_size: int | None = None

    @property
    def sets_learning_rate(self) -> bool:
        """Whether a ``ReduceLROnPlateau`` may set the learning rate (see :attr:`stops`)."""
        return any(name == "ReduceLROnPlateau" for name, _ in self._acting())

    @property
    def stops(self) -> bool:
        """Whether a callback acts between epochs: the stack trains epoch by epoch.

        Not one monitoring ``val_loss`` with no validation part: Keras'
        callback then finds nothing to monitor, warns and does nothing.
        """
        return bool(self._acting())

    def _acting(self) -> list[tuple[str, tuple]]:
        return [(name, s) for name, s in self.callbacks
                if dict(s)["monitor"] == "loss" or self.validation_split > 0]

    def make_callbacks(self) -> list[Any]:
        """Fresh Keras callbacks with these settings, in order."""
        import keras

        return [getattr(keras.callbacks, name)(**dict(s)) for name, s in self.callbacks]


def training_rows(n: int, validation_split: float) -> int:
    """How many of ``n`` rows ``model.fit(validation_split=...)`` trains on (Keras' rounding)."""
    if not validation_split:
        return n
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split={validation_split} leaves no rows to "
                         f"{'train' if split_at == 0 else 'validate'} on among {n}; "
                         "give more rows or another validation_split")
    return split_at


def split_rows(rows: np.ndarray, validation_split: float) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): the first part and the last ``validation_split``."""
    split_at = training_rows(len(rows), validation_split)
    return rows[:split_at], rows[split_at:]


def obstacle(params: dict[str, Any]) -> str | None:
    """Why a stack cannot watch training as these fit settings ask, or None.

    ``params`` are the estimator's (``validation_split``, ``callbacks``,
    ``validation_freq``, ``class_weight``). Row weights beside a validation
    part are refused (Keras weighs the validation rows by the fit's
    ``sample_weight`` only); the plan refuses a run's ``sample_weight`` too.
    """
    import keras

    given = _given(params)
    kinds = [type(cb).__name__ for cb in given]
    # Keras' own EarlyStopping and ReduceLROnPlateau, once each, only.
    if any(type(cb) is not getattr(keras.callbacks, type(cb).__name__, None)
           or type(cb).__name__ not in _SETTINGS for cb in given) or len(set(kinds)) < len(kinds):
        names = ", ".join(getattr(cb, "__name__", type(cb).__name__) for cb in given)
        return f"fit setting callbacks=[{names}] is not stacked yet"
    for cb in given:
        if cb.monitor not in ("loss", "val_loss"):
            return (f"fit setting {type(cb).__name__}(monitor={cb.monitor!r}) is not stacked "
                    "yet (a stack monitors 'loss' or 'val_loss')")
    if params.get("validation_split"):
        if params.get("validation_freq", 1) not in (None, 1):
            return f"fit setting validation_freq={params['validation_freq']!r} is not stacked yet"
        if params.get("class_weight") is not None:
            return "fit setting validation_split with class_weight is not stacked yet"
    return None


def monitoring(params: dict[str, Any]) -> Monitoring:
    """The :class:`Monitoring` of an estimator's fit settings (:func:`obstacle` passed)."""
    split = float(params.get("validation_split") or 0.0)
    rules = []
    for cb in _given(params):
        name = type(cb).__name__
        values = {key: getattr(cb, key) for key in _SETTINGS[name]}
        # Keras stores min_delta's magnitude, signed once the callback has run.
        values["min_delta"] = abs(values["min_delta"])
        rules.append((name, tuple(values.items())))
    return Monitoring(split, tuple(rules), params.get("validation_batch_size"))


def _given(params: dict[str, Any]) -> list[Any]:
    callbacks = params.get("callbacks") or []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]


class _Rate:
    """What ReduceLROnPlateau sees as the optimizer: one replica's learning rate in the stack."""

    def __init__(self, lr: np.ndarray, r: int) -> None:
        self.lr, self.r = lr, r

    @property
    def learning_rate(self) -> np.float32:
        return np.float32(self.lr[self.r].item())

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.lr[self.r] = np.float32(value)  # a Keras optimizer's float32 variable


class _Slice:
    """What the callbacks see as their model: one replica's slice of the stack's weights and
    its learning rate."""

    def __init__(self, params: list[np.ndarray], r: int, lr: np.ndarray) -> None:
        self.params, self.r = params, r
        self.optimizer = _Rate(lr, r)
        self.stop_training = False
        self.restored: list[np.ndarray] | None = None

    def get_weights(self) -> list[np.ndarray]:
        return [p[self.r].copy() for p in self.params]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.restored = [np.array(w) for w in weights]


class Watchers:
    """Each replica's own Keras callbacks (replicas at ``slots`` among the stack's padded ones;
    ``lr`` the stack's learning rates, which a ``ReduceLROnPlateau`` sets)."""

    def __init__(self, rule: Monitoring, slots: Sequence[int], lr: np.ndarray) -> None:
        self.slots, self.lr = list(slots), lr
        self.callbacks = [rule.make_callbacks() for _ in self.slots]
        self.models: list[_Slice | None] = [None] * len(self.slots)
        self.final: dict[int, list[np.ndarray]] = {}  # slot -> the weights it ends with
        # Per replica, as Keras' History: each log's value per epoch trained.
        self.history: list[dict[str, list[float]]] = [{} for _ in self.slots]

    def begin(self, params: list[np.ndarray]) -> None:
        for i, (callbacks, r) in enumerate(zip(self.callbacks, self.slots)):
            self.models[i] = _Slice(params, r, self.lr)
            for cb in callbacks:
                cb.set_model(self.models[i])
                cb.on_train_begin()

    def running(self) -> list[int]:
        """Indices of the replicas still training."""
        return [i for i, r in enumerate(self.slots) if r not in self.final]

    def epoch_end(self, epoch: int, params: list[np.ndarray], logs: dict[int, dict[str, float]]
                  ) -> list[int]:
        """Each running replica's callback at the end of ``epoch`` with its ``logs`` (by index);
        the slots that stop now."""
        stopped = []
        for i in self.running():
            model, own = self.models[i], dict(logs[i])
            model.params = params
            for cb in self.callbacks[i]:  # one logs dict, in order, as Keras' CallbackList
                cb.on_epoch_end(epoch, own)
            for key, value in own.items():  # Keras' History comes after the user's callbacks
                self.history[i].setdefault(key, []).append(value)
            if model.stop_training:
                self._end(i, params)
                stopped.append(self.slots[i])
        return stopped

    def end(self, params: list[np.ndarray]) -> None:
        """Training is over for every replica still running (Keras' ``on_train_end``)."""
        for i in self.running():
            self._end(i, params)

    def _end(self, i: int, params: list[np.ndarray]) -> None:
        model = self.models[i]
        model.params = params
        for cb in self.callbacks[i]:
            cb.on_train_end()
        self.final[self.slots[i]] = model.restored or model.get_weights()

    def write_back(self, params: list[np.ndarray]) -> list[np.ndarray]:
        """The stack's ``params`` with each replica's final weights (a JAX result is read-only)."""
        params = [p if p.flags.writeable else p.copy() for p in params]
        for r, weights in self.final.items():
            for p, w in zip(params, weights):
                p[r] = w
        return params

    def stopped_epochs(self) -> list[int]:
        """Keras' ``stopped_epoch`` of each replica: 0 where it trained every epoch."""
        return [next((int(cb.stopped_epoch) for cb in callbacks
                      if hasattr(cb, "stopped_epoch")), 0) for callbacks in self.callbacks]


def val_losses(model: Any, predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               batch_size: int) -> list[float]:
    """Each replica's ``val_loss`` as ``model.evaluate`` reports it.

    ``model`` is the :class:`~nn_tuning.stacked.model.StackedModel` (its
    Keras loss function); per batch of ``batch_size`` rows the loss's mean
    (the compiled loss reduces ``sum_over_batch_size``), then Keras' ``Mean``
    metric weighted by the rows of each batch, in float32. (Keras' loss also
    adds the model's regularization penalties: the engine adds each replica's.)
    """
    import keras

    # One call of the loss on every replica's rows: it is computed sample by sample.
    per_sample = keras.ops.convert_to_numpy(model.loss_fn(
        np.concatenate(targets), np.concatenate(predictions), **model.loss_kwargs))
    per_sample = per_sample.astype("float32").reshape(len(per_sample), -1).mean(axis=1)
    out, start = [], 0
    for pred in predictions:
        own, start = per_sample[start:start + len(pred)], start + len(pred)
        total = count = np.float32(0.0)
        for first in range(0, len(own), batch_size):
            part = own[first:first + batch_size]
            n = np.float32(len(part))
            total = np.float32(total + np.float32(part.sum(dtype="float32") / n) * n)
            count = np.float32(count + n)
        out.append(float(total / count))
    return out
