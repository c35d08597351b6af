"""The stacked forward pass and loss, in ``keras.ops``: one function for every replica.

A padded unit outputs exactly 0 (its mask), so it gets zero gradients and
never touches the real units; a hidden ``softmax`` normalises over the real
units only. The loss is the sum over replicas of each replica's mean batch
loss, so every replica's gradient is its own model's gradient. Randomness
(each epoch's shuffle, dropout masks) comes from a counter-based hash of the
replica's own seed, the epoch, the step and the position, so a replica
trains the same whatever its stack-mates, the chunking or the backend.

Convolutions are each replica's own native convolution (``keras.ops.conv`` on
its slice of the batch with its own kernel; oneDNN on TensorFlow's CPU, XLA's
on JAX), one code path for both backends; the graph holds one per replica.
Measured cold on 2 CPU cores (TensorFlow, ``python experiments/bench_images.py
--trials 48 --repeats 1 --engines stacked``, a random search of 48 CNNs):
8x8 digits 33.3 s, 28x28 229.8 s; with the previous form, batched matmuls of
every replica's image patches (the ``prod(kernel)`` shifted views side by
side), 53.8 s (median of 3) and 446.8 s: the patches' memory traffic grew
with the image.
Per step earlier (18 replicas of a 3x3 convolution of 32 to 64 channels on
8x8, batch 64, forward and backward): patch matmuls 212 ms, native
convolutions 165 ms, ``tf.image.extract_patches`` 381 ms; a grouped
convolution (replicas' channels side by side, ``groups=R``) has no
TensorFlow CPU kernel for its gradient, and through XLA took 17 s to compile
and 7.7 s a step. Stacking saves the per-model costs around the arithmetic,
not the arithmetic: a replica's convolution costs what its own model's does
(at 28x28 on 2 CPU cores one model at a time, 155.7 s, is faster than the
stack). Pooling is Keras' own
(``ops.max_pool``/``ops.average_pool``) with the replicas folded into the
batch axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .layout import Layout, slots
from .structure import Structure

__all__ = ["StackedModel"]

_MASKED = -1e9  # softmax logit of a padded unit: exp underflows to exactly 0

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


def _plus(ops: Any, x: Any, y: Any) -> Any:
    """``x + y``, broadcast as NumPy does (exactly: negation is exact).

    Keras' TensorFlow ``ops.add`` takes a ``y`` with one dimension above 1
    for a bias and adds it along ``x``'s axis 1 or last axis, whichever has
    its length: the (R, 1, 1) biases of a one-unit layer went along the batch
    axis where R equals the batch size.
    """
    return ops.subtract(x, ops.negative(y))


def _uniform(ops: Any, bits: Any) -> Any:
    """Uniform floats in [0, 1) from uint32 bits (their top 24)."""
    return ops.multiply(ops.cast(ops.right_shift(bits, np.uint32(8)), "float32"),
                        np.float32(2.0 ** -24))


class StackedModel:
    """The stacked forward pass and loss, in ``keras.ops``."""

    def __init__(self, lay: Layout, structure: Structure, batch_size: int) -> None:
        import keras

        self.keras, self.ops, self.lay, self.batch_size = keras, keras.ops, lay, batch_size
        self.slots = slots(lay)
        self.out_act = keras.activations.get(structure.output_activation)
        self.loss_fn = keras.losses.get(structure.loss)
        self.loss_kwargs = dict(structure.loss_kwargs)
        names = {a for names in lay.acts for a in names} | {c[2] for c in lay.convs}
        names |= {run[0] for runs in (lay.runs or ()) for run in runs}
        self.by_name = {a: keras.activations.get(a) for a in names}

    def _apply(self, name: str, z: Any, mask: Any) -> Any:
        """Activation ``name`` of ``z``; a softmax normalises over the real units only."""
        if name == "softmax":
            return self.by_name[name](self.ops.where(mask > 0, z, _MASKED))
        return self.by_name[name](z)

    def _activate(self, layer: int, z: Any, mask: Any, consts: dict) -> Any:
        """Each replica's own activation of ``z``: on its group's slice, or selected."""
        ops, lay = self.ops, self.lay
        if lay.runs is not None:
            runs = lay.runs[layer]
            if len(runs) == 1:
                zs, ms = [z], [mask]
            else:  # split, not slices: the gradient of a split is one concatenation
                cuts = [start for _, start, _ in runs[1:]]
                zs, ms = ops.split(z, cuts, axis=0), ops.split(mask, cuts, axis=0)
            parts = [self._apply(name, zi, mi) for (name, _, _), zi, mi in zip(runs, zs, ms)]
            return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=0)
        a = None
        for name, sel in zip(lay.acts[layer], consts["selects"][layer]):
            value = self._apply(name, z, mask)
            a = value if a is None else ops.where(sel > 0, value, a)
        return a

    def _conv_block(self, i: int, x: Any, params: Sequence[Any], consts: dict, valid: Any,
                    updates: list | None) -> Any:
        """Convolution block ``i`` of x (R, B, *spatial, C): (R, B, *spatial', F)."""
        ops, lay, at = self.ops, self.lay, self.slots
        kernel, bias = params[at.conv[i]], params[at.conv[i] + 1]
        mask = consts["conv_masks"][i]
        if lay.conv_biases and not lay.conv_biases[i]:
            bias = ops.multiply(bias, 0.0)  # Conv(use_bias=False): see _bias
        kernel_size, padding, activation, pool = lay.convs[i]
        R, B, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:-1])
        out = spatial if padding == "same" else tuple(n - k + 1 for n, k in
                                                      zip(spatial, kernel_size))
        # Each replica's own native convolution (Keras' ops.conv: oneDNN on TensorFlow's CPU,
        # XLA's on JAX), its kernel's rows unflattened as the layout flattened them.
        kernels = ops.reshape(kernel, (R, *kernel_size, x.shape[-1], kernel.shape[-1]))
        z = ops.stack([ops.conv(x[r], kernels[r], strides=1, padding=padding)
                       for r in range(R)])
        z = _plus(ops, ops.reshape(z, (R, -1, z.shape[-1])), bias)
        norm = lay.conv_norms[i] if lay.conv_norms else None
        if norm:  # each channel over the batch's real rows at every position, as Keras does
            rows = None if valid is None else ops.repeat(valid, int(np.prod(out)), axis=1)

            def normalise(v: Any) -> Any:
                return self._norm(norm[0], v, params, at.conv_norm[i], at.conv_moving[i],
                                  consts["conv_norm_eps"][i], consts["conv_norm_momentum"][i],
                                  mask, rows, updates)

        if norm and not norm[1]:
            z = normalise(z)
        a = ops.multiply(self.by_name[activation](z), mask)
        if norm and norm[1]:
            a = normalise(a)
        if pool is None:
            return ops.reshape(a, (R, B, *out, a.shape[-1]))
        kind, size, strides, pool_padding = pool
        folded = ops.reshape(a, (R * B, *out, a.shape[-1]))
        pooled = (ops.max_pool if kind == "max" else ops.average_pool)(
            folded, size, strides, pool_padding)
        return ops.reshape(pooled, (R, B, *pooled.shape[1:]))

    def _normalise(self, layer: int, v: Any, params: Sequence[Any], consts: dict, mask: Any,
                   valid: Any, updates: list | None) -> Any:
        """Hidden layer ``layer``'s normalisation of ``v`` (R, B, H): :meth:`_norm`."""
        at = self.slots
        return self._norm(self.lay.norms[layer][0], v, params, at.norm[layer], at.moving[layer],
                          consts["norm_eps"][layer], consts["norm_momentum"][layer], mask,
                          valid, updates)

    def _norm(self, kind: str, v: Any, params: Sequence[Any], gamma_at: int,
              moving_at: int | None, eps: Any, m: Any, mask: Any, valid: Any,
              updates: list | None) -> Any:
        """A BatchNormalization or LayerNormalization of ``v`` (R, rows, H), as Keras'.

        LayerNormalization's moments are over each replica's real units;
        BatchNormalization's, in training (``updates`` given), over the real
        rows (``valid``, (R, rows)), and its new moving statistics are appended
        to ``updates``; in inference it reads them.
        """
        ops = self.ops
        sg = ops.stop_gradient  # as tf.nn.moments: the variance's gradient skips the mean
        if kind == "layer":
            units = ops.sum(mask, axis=-1, keepdims=True)
            mean = ops.divide(ops.sum(ops.multiply(v, mask), axis=-1, keepdims=True), units)
            dev = ops.multiply(ops.subtract(v, sg(mean)), mask)
            var = ops.divide(ops.sum(ops.square(dev), axis=-1, keepdims=True), units)
        elif updates is None:
            mean, var = params[moving_at], params[moving_at + 1]
        else:
            rows = ops.expand_dims(valid, -1)
            count = ops.maximum(ops.sum(rows, axis=1, keepdims=True), 1.0)
            mean = ops.divide(ops.sum(ops.multiply(v, rows), axis=1, keepdims=True), count)
            dev = ops.multiply(ops.subtract(v, sg(mean)), rows)
            var = ops.divide(ops.sum(ops.square(dev), axis=1, keepdims=True), count)
            for i, stat in ((moving_at, mean), (moving_at + 1, var)):
                updates.append((i, ops.add(ops.multiply(params[i], m),
                                           ops.multiply(sg(stat), ops.subtract(1.0, m)))))
        gamma, beta = params[gamma_at], params[gamma_at + 1]
        inv = ops.multiply(ops.rsqrt(ops.add(var, eps)), gamma)
        return ops.add(ops.multiply(v, inv), ops.subtract(beta, ops.multiply(mean, inv)))

    def _bias(self, params: Sequence[Any], layer: int) -> Any:
        """Dense layer ``layer``'s bias; times 0 where the stack's layer has none (its slot
        then gets a zero gradient and, from zero, stays zero under every optimizer)."""
        bias = params[self.slots.dense[layer] + 1]
        if self.lay.biases and not self.lay.biases[layer]:
            return self.ops.multiply(bias, 0.0)
        return bias

    def forward(self, params: Sequence[Any], consts: dict, x: Any, drop_bits: Any = None,
                valid: Any = None, updates: list | None = None) -> Any:
        """Outputs (R, B, out) of inputs x (R, B, *sample); dropout where ``drop_bits`` is given.

        Training mode (BatchNormalization on the batch) where ``updates`` is given:
        the new moving statistics are appended to it; ``valid`` (R, B) marks the real rows.
        """
        ops, lay, at = self.ops, self.lay, self.slots
        n_conv = len(lay.convs)
        for i in range(n_conv):
            x = self._conv_block(i, x, params, consts, valid, updates)
        if n_conv:
            x = ops.reshape(x, (x.shape[0], x.shape[1], -1)) if lay.head == "flatten" \
                else ops.mean(x, axis=tuple(range(2, len(x.shape) - 1)))
        norms = lay.norms or (None,) * lay.depth
        if drop_bits is not None and lay.any_input_dropout:
            rate = consts["input_dropout"]
            keep = ops.greater_equal(_uniform(ops, drop_bits(-1, x.shape[-1])), rate)
            x = ops.where(keep, ops.divide(x, ops.subtract(1.0, rate)), 0.0)
        h = x
        for layer in range(lay.depth):
            z = _plus(ops, ops.matmul(h, params[at.dense[layer]]), self._bias(params, layer))
            mask = consts["masks"][layer]
            if norms[layer] and not norms[layer][1]:  # Dense -> Norm -> Activation
                z = self._normalise(layer, z, params, consts, mask, valid, updates)
            dropped = None
            if drop_bits is not None and lay.any_dropout[layer]:
                rate = consts["dropout"][layer]
                keep = ops.greater_equal(_uniform(ops, drop_bits(layer, lay.width)), rate)

                def dropped(v: Any, keep: Any = keep, rate: Any = rate) -> Any:
                    return ops.where(keep, ops.divide(v, ops.subtract(1.0, rate)), 0.0)

                if lay.any_first[layer]:  # Dense -> Dropout -> Activation: drop z itself
                    z = ops.where(consts["first"][layer] > 0, dropped(z), z)
            a = self._activate(layer, z, mask, consts)
            a = ops.multiply(a, mask)
            if norms[layer] and norms[layer][1]:  # the activation, then Norm
                a = self._normalise(layer, a, params, consts, mask, valid, updates)
            if dropped is not None:
                after = dropped(a)
                a = ops.where(consts["first"][layer] > 0, a, after) if lay.any_first[layer] \
                    else after
            h = a if layer == 0 else ops.where(consts["real"][layer] > 0, a, h)
        out = _plus(ops, ops.matmul(h, params[at.dense[-1]]), self._bias(params, -1))
        return self.out_act(out)

    def batch_loss(self, params: Sequence[Any], consts: dict, order: Any, epoch: Any,
                   step: Any, aux: bool = False) -> Any:
        """Sum over replicas of each replica's mean loss on batch ``step`` of ``order``.

        With ``aux``, (loss, (updates, losses)): the BatchNormalization moving
        statistics' new values, as (param index, value) pairs (:meth:`forward`),
        and each replica's mean loss, (R,) (what Keras' loss tracker averages).
        """
        ops, bs = self.ops, self.batch_size
        start = ops.multiply(step, bs)
        rows = ops.slice(order, ops.stack([ops.zeros((), "int32"), start]),
                         (order.shape[0], bs))  # (R, B)
        pos = ops.add(start, ops.arange(bs, dtype="int32"))
        valid = ops.cast(ops.less(ops.expand_dims(pos, 0), consts["n_rows"]), "float32")
        x = ops.take(consts["X"], rows, axis=0)
        y = ops.take(consts["Y"], rows, axis=0)
        drop_bits = None
        if any(self.lay.any_dropout) or self.lay.any_input_dropout:
            seeds3 = ops.expand_dims(consts["seeds"], -1)

            def drop_bits(layer: int, width: int) -> Any:
                """uint32 bits (R, B, width) for the dropout of ``layer`` (-1: the input)."""
                cells = ops.reshape(ops.cast(ops.arange(bs * width, dtype="int32"), "uint32"),
                                    (1, bs, width))
                counter = ops.add(ops.multiply(ops.cast(epoch, "uint32"), np.uint32(0x10000)),
                                  ops.cast(step, "uint32"))
                counter = ops.reshape(counter, (-1, 1, 1))  # per replica, or one for all
                return _hash(ops, seeds3, ops.add(counter, np.uint32(0x9E3779B9 * (layer + 1)
                                                                    % 2 ** 32)), cells)
        updates: list = []
        pred = self.forward(params, consts, x, drop_bits, valid, updates)
        per_sample = self.loss_fn(y, pred, **self.loss_kwargs)  # (R, B)
        weights = valid
        if "W" in consts:  # Keras' sum_over_batch_size: sum(loss * w) / rows in the batch
            weights = ops.multiply(valid, ops.take_along_axis(consts["W"], rows, axis=1))
        total = ops.sum(ops.multiply(per_sample, weights), axis=1)
        count = ops.maximum(ops.sum(valid, axis=1), 1.0)
        losses = ops.divide(total, count)
        if self.lay.penalty_terms:  # each replica's model.losses, added as Keras adds them
            losses = ops.add(losses, self.penalty(params, consts, per_replica=True))
        loss = ops.sum(losses)
        return (loss, (updates, losses)) if aux else loss

    def penalty(self, params: Sequence[Any], consts: dict, per_replica: bool = False) -> Any:
        """Every replica's regularization penalty, summed (``per_replica``: (R,)): what
        ``model.losses`` adds to its loss.

        Keras' own ``L1(1.0)`` and ``L2(1.0)`` of each replica's slice of a
        weight, times that replica's coefficient: its ``L1(l1)`` or ``L2(l2)``
        (``l * sum``), with the same gradient, ``l * sign(w)`` or ``l * 2w``.
        Padding starts at zero and reaches no real unit (masked outputs, zero
        inputs), so it never changes a replica's result (under JAX, whose
        ``abs`` has gradient 1 at 0, L1 moves padded weights; nothing reads them).
        """
        ops, keras = self.ops, self.keras
        units = {"l1": keras.regularizers.L1(1.0), "l2": keras.regularizers.L2(1.0)}
        out = None
        for (place, layer, which, kind), coef in zip(self.lay.penalty_terms, consts["penalty"]):
            # Dense layer -1: the output layer.
            index = (self.slots.conv if place == "conv" else self.slots.dense)[layer] + which
            each = ops.vectorized_map(units[kind], params[index])  # (R,)
            term = ops.multiply(ops.reshape(coef, (-1,)), each)
            out = term if out is None else ops.add(out, term)
        return out if per_replica else ops.sum(out)

    def epoch_order(self, consts: dict, epoch: Any, n_pad: int) -> Any:
        """Each replica's rows in epoch ``epoch``'s order, padded: (R, n_pad).

        Shuffled, or the rows in order where ``consts["shuffled"]`` is 0.
        """
        ops = self.ops
        pos = ops.cast(ops.arange(n_pad, dtype="int32"), "uint32")
        bits = _hash(ops, consts["seeds"], ops.add(ops.cast(epoch, "uint32"), np.uint32(1)),
                     ops.expand_dims(pos, 0))
        keys = ops.cast(ops.right_shift(bits, np.uint32(1)), "int32")
        if "shuffled" in consts:  # shuffle=False: the rows in order
            keys = ops.where(consts["shuffled"] > 0, keys,
                             ops.expand_dims(ops.arange(n_pad, dtype="int32"), 0))
        valid = ops.less(ops.expand_dims(ops.arange(n_pad, dtype="int32"), 0), consts["n_rows"])
        keys = ops.where(valid, keys, np.int32(2 ** 31 - 1))
        perm = ops.argsort(keys, axis=1)
        return ops.take_along_axis(consts["rows"], perm, axis=1)


