"""Train R replicas of small MLPs as one stacked model, in one traced loop over all epochs.

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

Two drivers run the loop (:mod:`.loops`): TensorFlow (``tf.function`` of
nested ``tf.while_loop`` s, stateful variables, ``optimizer.apply``) and JAX
(``jax.jit`` of nested ``fori_loop`` s, ``optimizer.stateless_apply``). Keras
and the backend are imported when a stack trains, not when this module is.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .structure import Structure

__all__ = ["Replica", "StackResult", "compiled_loop", "epoch_orders", "predict_chunk_rows",
           "stack_bytes", "train_stack"]

_MASKED = -1e9  # softmax logit of a padded unit: exp underflows to exactly 0


@dataclass
class Replica:
    """One (configuration, fold): its structure, initial weights, rows and random stream."""

    structure: Structure
    weights: list[tuple[np.ndarray, np.ndarray]]  # (kernel, bias) of every Dense layer
    rows: np.ndarray  # training rows, indices into the stack's X
    seed: int  # 0 <= seed < 2**32


@dataclass
class StackResult:
    """Trained weights per replica, in the replicas' order."""

    weights: list[list[tuple[np.ndarray, np.ndarray]]]
    finite: list[bool]
    seconds: float = 0.0
    predictions: list[np.ndarray] | None = None
    epochs: int = 0  # epochs trained (fewer than asked when a deadline stopped the stack)


@dataclass
class _Layout:
    """The padded shapes and per-replica constants of one stack."""

    depth: int
    width: int
    n_inputs: int
    n_outputs: int
    masks: list[np.ndarray]  # per hidden layer (R, 1, H)
    real: list[np.ndarray]  # per hidden layer (R, 1, 1): the replica has this layer
    acts: list[tuple[str, ...]]  # per hidden layer, the activations present
    selects: list[list[np.ndarray]]  # per hidden layer, per activation (R, 1, 1)
    dropout: list[np.ndarray]  # per hidden layer (R, 1, 1)
    any_dropout: list[bool]
    first: list[np.ndarray]  # per hidden layer (R, 1, 1): dropout comes before the activation
    any_first: list[bool]
    lr: np.ndarray  # (R, 1, 1)


def _layout(replicas: Sequence[Replica], at_least: _Layout | None = None) -> _Layout:
    """The stack's padded shapes and per-replica constants.

    With ``at_least``, the static parts (depth, width, activations present,
    dropout flags) are at least that layout's, so a stack whose members change
    keeps the shapes, and the compiled loop, it started with.
    """
    R = len(replicas)
    depth = max(len(r.structure.hidden) for r in replicas)
    width = max((h.units for r in replicas for h in r.structure.hidden), default=0)
    if at_least is not None:
        depth, width = max(depth, at_least.depth), max(width, at_least.width)
    s0 = replicas[0].structure
    masks, real, acts, selects, dropout, any_dropout, first = [], [], [], [], [], [], []
    for layer in range(depth):
        hs = [r.structure.hidden[layer] if layer < len(r.structure.hidden) else None
              for r in replicas]
        mask = np.zeros((R, 1, width), "float32")
        for i, h in enumerate(hs):
            mask[i, 0, :h.units if h else 0] = 1.0
        masks.append(mask)
        real.append(np.array([h is not None for h in hs], "float32").reshape(R, 1, 1))
        present = {h.activation for h in hs if h is not None}
        if at_least is not None and layer < at_least.depth:
            present |= set(at_least.acts[layer])
        present = tuple(sorted(present))
        acts.append(present)
        selects.append([np.array([h is not None and h.activation == a for h in hs],
                                 "float32").reshape(R, 1, 1) for a in present])
        rates = np.array([h.dropout if h else 0.0 for h in hs], "float32").reshape(R, 1, 1)
        dropout.append(rates)
        kept = at_least is not None and layer < at_least.depth
        any_dropout.append(bool(rates.any()) or (kept and at_least.any_dropout[layer]))
        first.append(np.array([bool(h and h.dropout and h.dropout_first) for h in hs],
                              "float32").reshape(R, 1, 1))
    any_first = [bool(f.any()) or (at_least is not None and i < at_least.depth
                                   and at_least.any_first[i]) for i, f in enumerate(first)]
    lr = np.array([r.structure.learning_rate for r in replicas], "float32").reshape(R, 1, 1)
    return _Layout(depth, width, s0.input_dim, s0.output_units, masks, real, acts, selects,
                   dropout, any_dropout, first, any_first, lr)


def _stacked_params(replicas: Sequence[Replica], lay: _Layout) -> list[np.ndarray]:
    """[W_0, b_0, ..., W_out, b_out], zero-padded to the stack's shapes."""
    R, H = len(replicas), lay.width
    ins = [lay.n_inputs] + [H] * max(lay.depth - 1, 0)
    shapes = [((R, ins[i], H), (R, 1, H)) for i in range(lay.depth)]
    shapes.append(((R, H if lay.depth else lay.n_inputs, lay.n_outputs), (R, 1, lay.n_outputs)))
    params = [np.zeros(s, "float32") for pair in shapes for s in pair]
    for r, rep in enumerate(replicas):
        write_replica(params, r, rep, lay)
    return params


def write_replica(params: list[np.ndarray], r: int, replica: Replica, lay: _Layout) -> None:
    """Put ``replica``'s weights in slice ``r`` of the stacked ``params``, zero-padded."""
    n_hidden = len(replica.structure.hidden)
    for p in params:
        p[r] = 0.0
    for i, (kernel, bias) in enumerate(replica.weights):
        slot = i if i < n_hidden else lay.depth  # the output layer goes last
        params[2 * slot][r, :kernel.shape[0], :kernel.shape[1]] = kernel
        params[2 * slot + 1][r, 0, :bias.shape[0]] = bias


def _unstack(params: list[np.ndarray], replicas: Sequence[Replica],
             lay: _Layout) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    out = []
    for r, rep in enumerate(replicas):
        n_hidden = len(rep.structure.hidden)
        weights = []
        for i, (kernel, bias) in enumerate(rep.weights):
            slot = i if i < n_hidden else lay.depth
            weights.append((params[2 * slot][r, :kernel.shape[0], :kernel.shape[1]].copy(),
                            params[2 * slot + 1][r, 0, :bias.shape[0]].copy()))
        out.append(weights)
    return out


def _mix(ops: Any, x: Any) -> Any:
    """A 32-bit integer hash (lowbias32): uint32 -> uint32, wrapping arithmetic."""
    x = ops.bitwise_xor(x, ops.right_shift(x, np.uint32(16)))
    x = ops.multiply(x, np.uint32(0x7FEB352D))
    x = ops.bitwise_xor(x, ops.right_shift(x, np.uint32(15)))
    x = ops.multiply(x, np.uint32(0x846CA68B))
    return ops.bitwise_xor(x, ops.right_shift(x, np.uint32(16)))


def _hash(ops: Any, seeds: Any, a: Any, b: Any) -> Any:
    """uint32 bits from (seed, a, b); seeds (R, 1), a scalar, b broadcastable."""
    x = _mix(ops, ops.bitwise_xor(_mix(ops, seeds), ops.cast(a, "uint32")))
    return _mix(ops, ops.bitwise_xor(x, ops.cast(b, "uint32")))


class _Model:
    """The stacked forward pass and loss, in ``keras.ops``."""

    def __init__(self, lay: _Layout, structure: Structure, batch_size: int) -> None:
        import keras

        self.keras, self.ops, self.lay, self.batch_size = keras, keras.ops, lay, batch_size
        self.out_act = keras.activations.get(structure.output_activation)
        self.loss_fn = keras.losses.get(structure.loss)
        self.loss_kwargs = dict(structure.loss_kwargs)
        self.acts = [[self._activation(a) for a in names] for names in lay.acts]

    def _activation(self, name: str) -> Any:
        if name != "softmax":
            return self.keras.activations.get(name)
        ops, softmax = self.ops, self.keras.activations.softmax
        return lambda z, mask: softmax(ops.where(mask > 0, z, _MASKED))

    def forward(self, params: Sequence[Any], consts: dict, x: Any, drop_bits: Any = None) -> Any:
        """Outputs (R, B, out) of inputs x (R, B, F); dropout where ``drop_bits`` is given."""
        ops, lay = self.ops, self.lay
        h = x
        for layer in range(lay.depth):
            z = ops.add(ops.matmul(h, params[2 * layer]), params[2 * layer + 1])
            mask = consts["masks"][layer]
            dropped = None
            if drop_bits is not None and lay.any_dropout[layer]:
                rate = consts["dropout"][layer]
                u = ops.multiply(ops.cast(ops.right_shift(drop_bits(layer), np.uint32(8)),
                                          "float32"), np.float32(2.0 ** -24))
                keep = ops.greater_equal(u, rate)

                def dropped(v: Any, keep: Any = keep, rate: Any = rate) -> Any:
                    return ops.where(keep, ops.divide(v, ops.subtract(1.0, rate)), 0.0)

                if lay.any_first[layer]:  # Dense -> Dropout -> Activation: drop z itself
                    z = ops.where(consts["first"][layer] > 0, dropped(z), z)
            a = None
            for name, fn, sel in zip(lay.acts[layer], self.acts[layer], consts["selects"][layer]):
                value = fn(z, mask) if name == "softmax" else fn(z)
                a = value if a is None else ops.where(sel > 0, value, a)
            a = ops.multiply(a, mask)
            if dropped is not None:
                after = dropped(a)
                a = ops.where(consts["first"][layer] > 0, a, after) if lay.any_first[layer] \
                    else after
            h = a if layer == 0 else ops.where(consts["real"][layer] > 0, a, h)
        out = ops.add(ops.matmul(h, params[-2]), params[-1])
        return self.out_act(out)

    def batch_loss(self, params: Sequence[Any], consts: dict, order: Any, epoch: Any,
                   step: Any) -> Any:
        """Sum over replicas of each replica's mean loss on batch ``step`` of ``order``."""
        ops, bs = self.ops, self.batch_size
        start = ops.multiply(step, bs)
        rows = ops.slice(order, ops.stack([ops.zeros((), "int32"), start]),
                         (order.shape[0], bs))  # (R, B)
        pos = ops.add(start, ops.arange(bs, dtype="int32"))
        valid = ops.cast(ops.less(ops.expand_dims(pos, 0), consts["n_rows"]), "float32")
        x = ops.take(consts["X"], rows, axis=0)
        y = ops.take(consts["Y"], rows, axis=0)
        drop_bits = None
        if any(self.lay.any_dropout):
            width = max(self.lay.width, 1)
            cells = ops.reshape(ops.cast(ops.arange(bs * width, dtype="int32"), "uint32"),
                                (1, bs, width))
            seeds3 = ops.expand_dims(consts["seeds"], -1)

            def drop_bits(layer: int) -> Any:
                counter = ops.add(ops.multiply(ops.cast(epoch, "uint32"), np.uint32(0x10000)),
                                  ops.cast(step, "uint32"))
                counter = ops.reshape(counter, (-1, 1, 1))  # per replica, or one for all
                return _hash(ops, seeds3, ops.add(counter, np.uint32(0x9E3779B9 * (layer + 1)
                                                                    % 2 ** 32)), cells)
        pred = self.forward(params, consts, x, drop_bits)
        per_sample = self.loss_fn(y, pred, **self.loss_kwargs)  # (R, B)
        total = ops.sum(ops.multiply(per_sample, valid), axis=1)
        count = ops.maximum(ops.sum(valid, axis=1), 1.0)
        return ops.sum(ops.divide(total, count))

    def epoch_order(self, consts: dict, epoch: Any, n_pad: int) -> Any:
        """Each replica's rows in epoch ``epoch``'s shuffled order, padded: (R, n_pad)."""
        ops = self.ops
        pos = ops.cast(ops.arange(n_pad, dtype="int32"), "uint32")
        bits = _hash(ops, consts["seeds"], ops.add(ops.cast(epoch, "uint32"), np.uint32(1)),
                     ops.expand_dims(pos, 0))
        keys = ops.cast(ops.right_shift(bits, np.uint32(1)), "int32")
        valid = ops.less(ops.expand_dims(ops.arange(n_pad, dtype="int32"), 0), consts["n_rows"])
        keys = ops.where(valid, keys, np.int32(2 ** 31 - 1))
        perm = ops.argsort(keys, axis=1)
        return ops.take_along_axis(consts["rows"], perm, axis=1)


def _consts(replicas: Sequence[Replica], lay: _Layout, X: np.ndarray, Y: np.ndarray,
            n_pad: int) -> dict:
    R = len(replicas)
    rows = np.zeros((R, n_pad), "int32")
    for r, rep in enumerate(replicas):
        rows[r, :len(rep.rows)] = rep.rows
    return {
        "X": X, "Y": Y, "rows": rows, "epoch0": np.zeros((R, 1), "int32"),
        "n_rows": np.array([len(r.rows) for r in replicas], "int32").reshape(R, 1),
        "seeds": np.array([r.seed for r in replicas], "uint32").reshape(R, 1),
        "masks": lay.masks, "real": lay.real, "selects": lay.selects, "dropout": lay.dropout,
        "first": lay.first,
    }


def _steps_per_epoch(replicas: Sequence[Replica], batch_size: int) -> int:
    steps = {math.ceil(len(r.rows) / batch_size) for r in replicas}
    if len(steps) != 1:
        raise ValueError(f"replicas of one stack must take the same steps per epoch, got {steps}")
    return steps.pop()


def stack_bytes(n_replicas: int, depth: int, width: int, n_inputs: int, n_outputs: int,
                batch_size: int, n_rows: int, optimizer_slots: int = 2) -> int:
    """A fixed estimate of one stack's memory (weights, optimizer state, activations, orders).

    Activations are counted for ``batch_size`` rows, forward and backward:
    as many as the prediction pass holds, which runs forward only on
    :func:`predict_chunk_rows` (twice ``batch_size``) rows per replica at a
    time, however large the validation folds.
    """
    weights = (n_inputs + 1) * width + max(depth - 1, 0) * (width + 1) * width \
        + (width + 1) * n_outputs
    per_replica = 4 * (weights * (2 + optimizer_slots + 2)  # + gradients and updates
                       + batch_size * (n_inputs + 3 * depth * width + 2 * n_outputs) * 2
                       + 3 * n_rows)
    return n_replicas * per_replica


# Compiled training loops by static signature: stacks of the same shapes reuse
# one trace (TensorFlow) or one compilation (JAX). Few entries: each holds its
# stack's variables.
_COMPILED: OrderedDict[tuple, Any] = OrderedDict()
_MAX_COMPILED = 4


def _signature(lay: _Layout, structure: Structure, consts: dict, epochs: int, steps: int,
               n_pad: int, batch_size: int) -> tuple:
    import keras

    return (keras.backend.backend(), lay.depth, lay.width, lay.n_inputs, lay.n_outputs,
            tuple(lay.acts), tuple(lay.any_dropout), tuple(lay.any_first), structure.group, epochs, steps, n_pad,
            batch_size, len(lay.lr), consts["X"].shape, consts["Y"].shape, str(consts["Y"].dtype))


def segment_epochs(epochs: int) -> int:
    """Epochs per segment of a stack trained against a deadline: a divisor of ``epochs``
    near an eighth of it, so one compiled loop serves every segment."""
    return max(d for d in range(1, max(epochs // 8, 1) + 1) if epochs % d == 0)


def train_stack(replicas: Sequence[Replica], X: np.ndarray, Y: np.ndarray, *, epochs: int,
                batch_size: int, predict_rows: Sequence[np.ndarray] | None = None,
                deadline: float | None = None) -> StackResult:
    """Train every replica for ``epochs`` epochs of ``batch_size`` on its own rows of X, Y.

    With ``predict_rows`` (one index array per replica), the result's
    ``predictions`` hold each trained replica's outputs on those rows of X.
    With a ``deadline`` (a ``time.perf_counter()`` value), the stack trains
    in segments of :func:`segment_epochs` and stops at the first segment
    boundary past it: the result's ``epochs`` says how far it got (each
    replica exactly as far as its own ``model.fit`` of that many epochs).
    """
    import time

    start = time.perf_counter()
    lay = _layout(replicas)
    steps = _steps_per_epoch(replicas, batch_size)
    n_pad = steps * batch_size
    Y = np.asarray(Y)
    consts = _consts(replicas, lay, np.asarray(X, "float32"),
                     Y.astype("float32") if Y.dtype.kind == "f" else Y, n_pad)
    structure = replicas[0].structure
    params = _stacked_params(replicas, lay)
    segment = epochs if deadline is None else segment_epochs(epochs)
    compiled = compiled_loop(lay, structure, consts, params, segment, steps, n_pad, batch_size)
    trained, state, done = params, None, 0
    while done < epochs:
        consts["epoch0"][:] = done
        trained, state = compiled.run(trained, consts, lay.lr, state)
        done += segment
        if deadline is not None and time.perf_counter() >= deadline:
            break
    finite = [all(np.isfinite(p[r]).all() for p in trained) for r in range(len(replicas))]
    predictions = (None if predict_rows is None else
                   _predict(compiled.model, lay, trained, X, predict_rows,
                            predict_chunk_rows(batch_size)))
    return StackResult(_unstack(trained, replicas, lay), finite, time.perf_counter() - start,
                       predictions, done)


def compiled_loop(lay: _Layout, structure: Structure, consts: dict, params: list[np.ndarray],
                  epochs: int, steps: int, n_pad: int, batch_size: int) -> Any:
    """The training loop of ``epochs`` epochs for stacks of this layout: traced once, then reused."""
    import keras

    key = _signature(lay, structure, consts, epochs, steps, n_pad, batch_size)
    compiled = _COMPILED.get(key)
    if compiled is None:
        from .loops import JaxLoop, TFLoop

        model = _Model(lay, structure, batch_size)
        driver = JaxLoop if keras.backend.backend() == "jax" else TFLoop
        compiled = driver(model, params, structure, epochs, steps, n_pad)
        _COMPILED[key] = compiled
        while len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.popitem(last=False)
    _COMPILED.move_to_end(key)
    return compiled


def predict_chunk_rows(batch_size: int) -> int:
    """Rows per replica in one prediction pass: the activations :func:`stack_bytes` counts."""
    return 2 * batch_size


def _predict(model: _Model, lay: _Layout, params: list[np.ndarray], X: np.ndarray,
             rows: Sequence[np.ndarray] | None, chunk_rows: int = 4096) -> list[np.ndarray]:
    """Each replica's outputs on its ``rows`` of X, ``chunk_rows`` rows per replica at a time."""
    import keras

    R = len(lay.lr)
    X = np.asarray(X, "float32")
    if rows is None:
        rows = [np.arange(len(X))] * R
    longest = max(len(r) for r in rows)
    consts = {"masks": lay.masks, "real": lay.real, "selects": lay.selects}
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

    lay = _layout(replicas)
    n_pad = _steps_per_epoch(replicas, batch_size) * batch_size
    consts = _consts(replicas, lay, np.zeros((1, 1), "float32"), np.zeros((1, 1)), n_pad)
    model = _Model(lay, replicas[0].structure, batch_size)
    return np.stack([keras.ops.convert_to_numpy(model.epoch_order(consts, e, n_pad))
                     for e in range(epochs)])

