"""Train R replicas of small MLPs as one stacked model, in one traced loop over all epochs.

The stack's shapes are :mod:`.layout`'s, its forward pass and loss
:mod:`.model`'s, its compiled loop :mod:`.compiled`'s (kept and reused by
later stacks it covers) and :mod:`.loops`' (the TensorFlow and JAX drivers).

Replica ``r`` is one (configuration, fold). Its weights live in slice ``r`` of
stacked tensors: kernels ``(R, in, H)``, biases ``(R, 1, H)``, with ``H`` the
widest hidden layer of the stack. Narrower layers are padded with zeros and
masked (their units output exactly 0, so they get zero gradients and never
touch the real units); a hidden ``softmax`` normalises over the real units
only; a replica with fewer hidden layers passes its activations through the
missing ones unchanged. The forward pass is written with ``keras.ops`` and
Keras' own activation and loss functions; the optimizer is Keras' own,
applied to the stacked tensors, with the learning rate a ``(R, 1, 1)`` tensor
so that every replica steps with its own. Because the supported optimizers
update elementwise, replica ``r``'s update reads only its own gradient and
state: it is the update Keras makes for that model alone (to float32
rounding: 0-2 ulp measured, tests/stacked/test_engine.py). The training loss
is the sum over replicas of each replica's mean batch loss, so every
replica's gradient is its own model's gradient.

Randomness (each epoch's shuffle, dropout masks) comes from a counter-based
hash of the replica's own seed, the epoch, the step and the position, so a
replica trains the same whatever its stack-mates, the chunking or the
backend. Batches follow ``model.fit``'s rules (each epoch a new
permutation of the replica's rows, the last batch smaller); all replicas of
a stack take the same number of steps per epoch.

A fit's ``validation_split`` and Keras' ``EarlyStopping`` are honoured per
replica (:mod:`.stopping`): such a stack trains one epoch per call and each
replica stops, frozen, where its own ``model.fit`` would.

Two drivers run the loop (:mod:`.loops`): TensorFlow (``tf.function`` of
nested ``tf.while_loop`` s, stateful variables, ``optimizer.apply``) and JAX
(``jax.jit`` of nested ``fori_loop`` s, ``optimizer.stateless_apply``). Keras
and the backend are imported when a stack trains, not when this module is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .compiled import conv_blocks, fitting_loop
from .layout import (Layout, Replica, forward_consts, layout, stack_consts, stacked_params,
                     steps_per_epoch, unstack)
from .model import StackedModel
from .stopping import Monitoring, Watchers, split_rows, val_losses
from .structure import Structure

__all__ = ["Replica", "StackResult", "conv_sizes", "epoch_orders", "feed", "predict_chunk_rows",
           "stack_bytes", "train_stack"]

@dataclass
class StackResult:
    """Trained weights per replica, in the replicas' order."""

    weights: list[list[tuple[np.ndarray, np.ndarray]]]
    finite: list[bool]
    seconds: float = 0.0
    predictions: list[np.ndarray] | None = None
    epochs: int = 0  # epochs trained (fewer than asked when a deadline stopped the stack)
    # Per replica, Keras' EarlyStopping.stopped_epoch: the 0-based epoch after which it
    # stopped, 0 where it trained every epoch (or None: no early stopping asked).
    stopped_epochs: list[int] | None = None
    # Per replica with early stopping, as Keras' History.history: "loss" (and "val_loss")
    # per epoch it trained.
    history: list[dict[str, list[float]]] | None = None


# What a stack's training holds besides its arrays, measured as the peak RSS a stack adds
# less its arrays (intercepts over 4 to 48 replicas, :mod:`.plan`): TensorFlow's traced loop
# and its runtime, about 20 MiB for an MLP stack; about 20 MiB more once it convolves.
_LOOP_BYTES = 20 << 20
_CONV_LOOP_BYTES = 20 << 20


def stack_bytes(n_replicas: int, depth: int, width: int, n_inputs: int, n_outputs: int,
                batch_size: int, n_rows: int, optimizer_slots: int = 2,
                conv_weights: int = 0, conv_values: int = 0) -> int:
    """An estimate of the peak memory one stack's training adds (what ``max_bytes`` bounds).

    Per replica, in float32: its weights ``8 + 3 * optimizer_slots`` times
    (the padded weights given, the loop's variables, their gradients, the
    optimizer's temporaries, the trained weights returned and unstacked; each
    slot as a variable, the loop's initial state and the state returned), the
    activations of ``batch_size`` rows forward and backward (a prediction pass
    holds as many: it runs forward only on :func:`predict_chunk_rows`, twice
    ``batch_size``, rows per replica at a time), and its row orders; over the
    replicas, the traced loop itself (``_LOOP_BYTES``, and ``_CONV_LOOP_BYTES``
    more with convolutions). ``conv_weights`` and ``conv_values`` are one
    replica's convolution weights and the values its convolutions hold per
    sample (:func:`conv_sizes`). ``n_replicas`` counts the replicas the loop
    trains, padding included. The coefficients are measured, not derived:
    :mod:`.plan` gives the figures.
    """
    weights = (n_inputs + 1) * width + max(depth - 1, 0) * (width + 1) * width \
        + (width + 1) * n_outputs + conv_weights
    per_replica = 4 * (weights * (8 + 3 * optimizer_slots)
                       + batch_size * (n_inputs + 3 * depth * width + 2 * n_outputs
                                       + conv_values) * 2
                       + 3 * n_rows)
    return n_replicas * per_replica + _LOOP_BYTES + (_CONV_LOOP_BYTES if conv_values else 0)


def conv_sizes(structures: Sequence[Structure]) -> tuple[int, int]:
    """(weights, values per sample) of one replica's convolutions in a stack of ``structures``.

    Per block and sample, the values its forward pass keeps for the backward
    one: its input, the patches (``prod(kernel)`` shifted copies of it), the
    outputs before the activation, after it and masked, and the pooled
    outputs; :func:`stack_bytes` counts them twice (their gradients).
    """
    s0 = structures[0]
    if not s0.convs:
        return 0, 0
    widths = [max(s.convs[i].filters for s in structures) for i in range(len(s0.convs))]
    weights = values = 0
    for n, k, c_in, f, pooled in conv_blocks(s0.sample_shape, [c.signature for c in s0.convs],
                                             widths):
        weights += (k * c_in + 1) * f
        values += n * (c_in + k * c_in + 3 * f) + pooled * f
    return weights, values


def segment_epochs(epochs: int) -> int:
    """Epochs per segment of a stack trained against a deadline: a divisor of ``epochs``
    near an eighth of it, so one compiled loop serves every segment."""
    return max(d for d in range(1, max(epochs // 8, 1) + 1) if epochs % d == 0)


def train_stack(replicas: Sequence[Replica], X: np.ndarray, Y: np.ndarray, *, epochs: int,
                batch_size: int, predict_rows: Sequence[np.ndarray] | None = None,
                deadline: float | None = None,
                monitoring: Monitoring | None = None) -> StackResult:
    """Train every replica for ``epochs`` epochs of ``batch_size`` on its own rows of X, Y.

    With ``predict_rows`` (one index array per replica), the result's
    ``predictions`` hold each trained replica's outputs on those rows of X.
    With a ``deadline`` (a ``time.perf_counter()`` value), the stack trains
    in segments of :func:`segment_epochs` and stops at the first segment
    boundary past it: the result's ``epochs`` says how far it got (each
    replica exactly as far as its own ``model.fit`` of that many epochs).

    With ``monitoring`` (:mod:`.stopping`), each replica trains on the first
    part of its rows and validates on the last ``validation_split`` of them,
    as ``model.fit(validation_split=...)`` does; with an ``EarlyStopping``
    rule the stack trains one epoch per call and each replica stops (and is
    frozen, its weights restored as Keras restores them) as its own
    ``model.fit`` with that callback would. The result's ``epochs`` stays the
    epochs asked when every replica stopped early (each trained as far as its
    own fit with the callback); ``stopped_epochs`` says where each stopped.
    """
    import time

    start = time.perf_counter()
    rule = monitoring or Monitoring()
    val_rows: list[np.ndarray] = []
    if rule.validation_split:  # Keras splits before it shuffles: the last part validates
        parts = [split_rows(np.asarray(r.rows), rule.validation_split) for r in replicas]
        replicas = [replace(r, rows=train, row_weights=None if r.row_weights is None
                            else r.row_weights[:len(train)])
                    for r, (train, _) in zip(replicas, parts)]
        val_rows = [valid for _, valid in parts]
    steps = steps_per_epoch(replicas, batch_size)
    n_pad = steps * batch_size
    Y = np.asarray(Y)
    X, Y = feed(X, replicas[0].structure), Y.astype("float32") if Y.dtype.kind == "f" else Y
    segment = 1 if rule.stops else epochs if deadline is None else segment_epochs(epochs)
    # A kept loop whose envelope covers these replicas, or a new one: padded to its shapes.
    compiled, padded, lay, at = fitting_loop(replicas, X, Y, epochs=segment, steps=steps,
                                             n_pad=n_pad, batch_size=batch_size)
    consts = stack_consts(padded, lay, X, Y, n_pad)
    trained, state, done = stacked_params(padded, lay), None, 0
    lr = lay.lr.copy()
    watchers = Watchers(rule, at, lr) if rule.stops else None
    if watchers is not None:
        watchers.begin(trained)
    while done < epochs:
        consts["epoch0"][:] = done
        trained, state = compiled.run(trained, consts, lr, state)
        done += segment
        if watchers is not None:
            logs = _epoch_logs(compiled, lay, trained, X, Y, watchers, consts, val_rows,
                               rule.validation_batch_size or batch_size)
            # A stopped replica's learning rate is 0 from now on: its stack-mates go on.
            lr[watchers.epoch_end(done - 1, trained, logs)] = 0.0
            if not watchers.running():  # each replica as far as its own fit: all of it
                done = epochs
                break
        if deadline is not None and time.perf_counter() >= deadline:
            break
    stopped_epochs = history = None
    if watchers is not None:
        history = watchers.history
        watchers.end(trained)
        trained = watchers.write_back(trained)
        stopped_epochs = watchers.stopped_epochs()
    finite = [all(np.isfinite(p[r]).all() for p in trained) for r in at]
    predictions = None
    if predict_rows is not None:
        rows = [np.zeros(0, "int64")] * len(padded)
        for r, own in zip(at, predict_rows):
            rows[r] = own
        out = _predict(compiled.model, lay, trained, X, rows, predict_chunk_rows(batch_size))
        predictions = [out[r] for r in at]
    weights = unstack(trained, padded, lay)
    return StackResult([weights[r] for r in at], finite, time.perf_counter() - start,
                       predictions, done, stopped_epochs, history)


def _epoch_logs(loop: Any, lay: Layout, params: list[np.ndarray], X: np.ndarray,
                Y: np.ndarray, watchers: Watchers, consts: dict, val_rows: Sequence[np.ndarray],
                batch_size: int) -> dict[int, dict[str, float]]:
    """The epoch's logs (``loss``, and ``val_loss`` with a validation part) of each replica
    still running, by its index among the given replicas, after a one-epoch run of ``loop``."""
    running = watchers.running()
    n_rows = consts["n_rows"].ravel()
    logs = {i: {"loss": float(np.float32(loop.loss_sums[r] / np.float32(n_rows[r])))}
            for i, r in ((i, watchers.slots[i]) for i in running)}
    if not len(val_rows):
        return logs
    rows = [np.zeros(0, "int64")] * len(lay.lr)
    for i in running:
        rows[watchers.slots[i]] = val_rows[i]
    out = _predict(loop.model, lay, params, X, rows, predict_chunk_rows(batch_size))
    losses = val_losses(loop.model, [out[watchers.slots[i]] for i in running],
                        [Y[val_rows[i]] for i in running], batch_size)
    penalty = None
    if loop.model.lay.penalty_terms:  # Keras' evaluate adds model.losses too
        penalty = np.asarray(loop.model.ops.convert_to_numpy(
            loop.model.penalty(params, consts, per_replica=True)), "float32")
    for i, loss in zip(running, losses):
        extra = 0.0 if penalty is None else penalty[watchers.slots[i]]
        logs[i]["val_loss"] = float(np.float32(np.float32(loss) + np.float32(extra)))
    return logs


def feed(X: np.ndarray, structure: Structure) -> np.ndarray:
    """``X`` as the stack feeds it: float32, each sample in ``structure.sample_shape``
    (a leading Reshape or Flatten of the model is this reshape)."""
    X = np.asarray(X, "float32")
    shape = structure.sample_shape
    return X.reshape(len(X), *shape) if shape and X.shape[1:] != shape else X


def predict_chunk_rows(batch_size: int) -> int:
    """Rows per replica in one prediction pass: the activations :func:`stack_bytes` counts."""
    return 2 * batch_size


def _predict(model: StackedModel, lay: Layout, params: list[np.ndarray], X: np.ndarray,
             rows: Sequence[np.ndarray] | None, chunk_rows: int = 4096) -> list[np.ndarray]:
    """Each replica's outputs on its ``rows`` of X, ``chunk_rows`` rows per replica at a time."""
    import keras

    R = len(lay.lr)
    X = np.asarray(X, "float32")
    if rows is None:
        rows = [np.arange(len(X))] * R
    longest = max(len(r) for r in rows)
    consts = forward_consts(lay)
    outs = [np.empty((len(r), lay.n_outputs), "float32") for r in rows]
    for start in range(0, longest, chunk_rows):
        # Only this chunk's (R, rows, features) inputs and activations are alive at once.
        index = np.zeros((R, min(chunk_rows, longest - start)), "int64")
        for i, r in enumerate(rows):
            part = r[start:start + chunk_rows]
            index[i, :len(part)] = part
        out = keras.ops.convert_to_numpy(model.forward(params, consts, X[index]))
        for i, r in enumerate(rows):
            n = max(min(len(r) - start, chunk_rows), 0)
            outs[i][start:start + n] = out[i, :n]
    return outs


def epoch_orders(replicas: Sequence[Replica], epochs: int, batch_size: int) -> np.ndarray:
    """The rows each replica trains on, epoch by epoch: (epochs, R, n_pad), padding past its rows."""
    import keras

    lay = layout(replicas)
    n_pad = steps_per_epoch(replicas, batch_size) * batch_size
    consts = stack_consts(replicas, lay, np.zeros((1, 1), "float32"), np.zeros((1, 1)), n_pad)
    model = StackedModel(lay, replicas[0].structure, batch_size)
    return np.stack([keras.ops.convert_to_numpy(model.epoch_order(consts, e, n_pad))
                     for e in range(epochs)])


