"""A stack's padded shapes and per-replica constants: what the loop is traced for.

Replica ``r`` is one (configuration, fold). Its weights live in slice ``r`` of
stacked tensors: kernels ``(R, in, H)``, biases ``(R, 1, H)``, with ``H`` the
widest hidden layer of the stack. Narrower layers are padded with zeros and
masked; a replica with fewer hidden layers passes its activations through the
missing ones unchanged. Replicas that differ in activations, dropout,
optimizer or learning rate share a stack: grouped (sorted by optimizer and
activations, each computed on its own slice, :func:`with_groups`) or
selected by ``(R, 1, 1)`` constants.

Convolutions come first (:attr:`Layout.convs`): their kernels are stored
flattened, ``(R, prod(kernel) * C_in, F)``, with ``C_in`` and ``F`` padded to
the stack's most filters and masked as Dense widths are, so a convolution is
one batched matmul over each replica's image patches (:mod:`.model`). After
a ``Flatten``, each spatial position holds ``F`` channels of which a replica
with fewer filters uses the first: the Dense layer that follows reads its
rows at those places (:func:`input_rows`). NumPy only: nothing here imports
Keras.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .structure import Structure

__all__ = ["Layout", "Replica", "Slots", "conv_shapes", "fit_flags", "forward_consts", "group_key",
           "input_rows", "layout", "penalties", "slots", "stack_consts", "stacked_params", "steps_per_epoch",
           "unstack", "with_groups", "write_replica"]


@dataclass
class Replica:
    """One (configuration, fold): its structure, initial weights, rows and random stream."""

    structure: Structure
    weights: list[tuple[np.ndarray, ...]]  # every weighted layer's arrays (layer_weights)
    rows: np.ndarray  # training rows, indices into the stack's X
    seed: int  # 0 <= seed < 2**32
    # model.fit's sample weights of ``rows`` (class weights folded in); None: all 1.
    row_weights: np.ndarray | None = None
    shuffle: bool = True  # False: every epoch takes ``rows`` in order, as model.fit(shuffle=False)


@dataclass
class Layout:
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
    variants: tuple[tuple, ...] = ()  # the optimizers present (type and settings)
    # Replicas [start, stop) of each optimizer variant: one Keras optimizer each, on its
    # own slice of the weights. None where the replicas are not sorted by optimizer.
    variant_runs: tuple[tuple[tuple, int, int], ...] | None = None
    # Grouped stacks: replicas sorted by optimizer then activations, ``groups``
    # (((variant, activation per layer), replicas), ...) in order, and per layer the
    # runs (activation, start, stop), each computed on its own slice; otherwise every
    # activation present is computed for every replica and ``selects`` picks its own.
    groups: tuple[tuple[tuple, int], ...] | None = None
    runs: tuple[tuple[tuple[str, int, int], ...], ...] | None = None
    # Convolutions before the Dense chain: the stack's shared signatures
    # (Conv.signature), filters per layer (padded to the most), channel masks
    # (R, 1, F), the shape a sample is fed in and the head ("flatten" or
    # "global_average"); ``positions`` is the spatial positions a Flatten reads.
    convs: tuple[tuple, ...] = ()
    conv_widths: tuple[int, ...] = ()
    conv_masks: list[np.ndarray] | None = None
    # Per convolution (when any is normalised or bias-free, as Structure.group): None or
    # (kind, after the activation) of its normalisation, and whether it has a bias; the
    # normalisations' epsilon and momentum (R, 1, 1) per replica.
    conv_norms: tuple = ()
    conv_biases: tuple[bool, ...] = ()
    conv_norm_eps: list[np.ndarray] | None = None
    conv_norm_momentum: list[np.ndarray] | None = None
    sample_shape: tuple[int, ...] = ()
    head: str = ""
    positions: int = 1
    # A Dropout on the Dense chain's input: the rate per replica (R, 1, 1), and whether any.
    input_dropout: np.ndarray | None = None
    any_input_dropout: bool = False
    # Per hidden layer: None or (kind, after the activation) of its normalisation, shared
    # by the stack; its epsilon and momentum (R, 1, 1) per replica. () when none has one.
    norms: tuple = ()
    norm_eps: list[np.ndarray] | None = None
    norm_momentum: list[np.ndarray] | None = None
    # Regularization present: ("conv" or "dense", layer, kernel 0 or bias 1, "l1" or "l2")
    # per term any replica has (static: the loop computes these), and each term's (R, 1, 1)
    # coefficients.
    penalty_terms: tuple[tuple[str, int, int, str], ...] = ()
    penalty: list[np.ndarray] = field(default_factory=list)
    # Per Dense layer (hidden ones, then the output): whether it has a bias, shared by the
    # stack (Structure.group); () when all have. A missing bias stays a slot of zeros.
    biases: tuple[bool, ...] = ()


def conv_shapes(sample_shape: Sequence[int], signatures: Sequence[tuple]) -> list[tuple]:
    """Spatial shape after each convolution block ``(kernel, padding, activation, pool)``."""
    shape, out = tuple(sample_shape[:-1]), []
    for kernel, padding, _, pool in signatures:
        if padding == "valid":
            shape = tuple(n - k + 1 for n, k in zip(shape, kernel))
        if pool is not None:
            _, size, strides, pad = pool
            shape = tuple(-(-n // s) if pad == "same" else (n - k) // s + 1
                          for n, k, s in zip(shape, size, strides))
        out.append(shape)
    return out


def input_rows(lay: Layout, structure: Structure) -> np.ndarray:
    """Where the rows of ``structure``'s first Dense kernel sit in the stack's padded input."""
    if not lay.convs:
        return np.arange(structure.input_dim)
    own = structure.convs[-1].filters
    positions = lay.positions if lay.head == "flatten" else 1
    return (np.arange(positions)[:, None] * lay.conv_widths[-1] + np.arange(own)).ravel()


def group_key(replica: Replica, depth: int) -> tuple:
    """(optimizer variant, activation in each of ``depth`` hidden layers): "linear" past the
    replica's own depth (a layer it lacks passes its input through whatever is computed there)."""
    hidden = replica.structure.hidden
    return (replica.structure.variant,
            tuple(hidden[i].activation if i < len(hidden) else "linear" for i in range(depth)))


def _runs(labels: Sequence[Any], sizes: Sequence[int]) -> tuple[tuple[Any, int, int], ...]:
    """Consecutive equal labels merged: (label, start, stop) per run."""
    runs: list[list] = []
    start = 0
    for label, size in zip(labels, sizes):
        if runs and runs[-1][0] == label:
            runs[-1][2] += size
        else:
            runs.append([label, start, start + size])
        start += size
    return tuple(tuple(r) for r in runs)


def with_groups(lay: Layout, groups: Sequence[tuple[tuple, int]]) -> Layout:
    """``lay`` for replicas laid out in ``groups`` (:func:`group_key`, replicas), in order."""
    sizes = [size for _, size in groups]
    runs = tuple(_runs([key[1][layer] for key, _ in groups], sizes) for layer in range(lay.depth))
    return replace(lay, groups=tuple(groups), runs=runs,
                   variant_runs=_runs([key[0] for key, _ in groups], sizes))


def layout(replicas: Sequence[Replica], at_least: Layout | None = None) -> Layout:
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
    variants = {r.structure.variant for r in replicas}
    if at_least is not None:
        variants |= set(at_least.variants)
    variants = tuple(sorted(variants))
    rates = np.array([r.structure.input_dropout for r in replicas], "float32").reshape(R, 1, 1)
    lay = Layout(depth, width, s0.input_dim, s0.output_units, masks, real, acts, selects,
                 dropout, any_dropout, first, any_first, lr, variants,
                 ((variants[0], 0, R),) if len(variants) == 1 else None, input_dropout=rates,
                 any_input_dropout=bool(rates.any()) or bool(at_least and
                                                              at_least.any_input_dropout))
    if any(h.norm for h in s0.hidden):
        lay = replace(lay, norms=tuple((h.norm[0], h.norm[3]) if h.norm else None
                                       for h in s0.hidden),
                      norm_eps=[_norm_setting([r.structure.hidden[i].norm for r in replicas], 1)
                                for i in range(depth)],
                      norm_momentum=[_norm_setting([r.structure.hidden[i].norm
                                                    for r in replicas], 2)
                                     for i in range(depth)])
    if not all(s0.biases):
        lay = replace(lay, biases=s0.biases)
    lay.penalty_terms, lay.penalty = penalties([r.structure for r in replicas],
                                               () if at_least is None else at_least.penalty_terms)
    return _with_convs(lay, replicas, at_least) if s0.convs else lay


def _with_convs(lay: Layout, replicas: Sequence[Replica], at_least: Layout | None) -> Layout:
    """``lay`` with the stack's convolutions: filters padded to the most, channel masks."""
    s0 = replicas[0].structure
    widths = [max(r.structure.convs[i].filters for r in replicas) for i in range(len(s0.convs))]
    if at_least is not None:
        widths = [max(w, a) for w, a in zip(widths, at_least.conv_widths)]
    masks = []
    for i, w in enumerate(widths):
        mask = np.zeros((len(replicas), 1, w), "float32")
        for r, rep in enumerate(replicas):
            mask[r, 0, :rep.structure.convs[i].filters] = 1.0
        masks.append(mask)
    signatures = tuple(c.signature for c in s0.convs)
    positions = int(np.prod(conv_shapes(s0.sample_shape, signatures)[-1]))
    n_inputs = widths[-1] * (positions if s0.head == "flatten" else 1)
    lay = replace(lay, n_inputs=n_inputs, convs=signatures, conv_widths=tuple(widths),
                  conv_masks=masks, sample_shape=s0.sample_shape, head=s0.head,
                  positions=positions)
    if any(c.norm or not c.bias for c in s0.convs):
        norms = [[r.structure.convs[i].norm for r in replicas] for i in range(len(s0.convs))]
        lay = replace(lay, conv_norms=tuple((c.norm[0], c.norm[3]) if c.norm else None
                                            for c in s0.convs),
                      conv_biases=tuple(c.bias for c in s0.convs),
                      conv_norm_eps=[_norm_setting(each, 1) for each in norms],
                      conv_norm_momentum=[_norm_setting(each, 2) for each in norms])
    return lay


def _norm_setting(norms: Sequence[tuple], k: int) -> np.ndarray:
    """Setting ``k`` (1: epsilon, 2: momentum) of each replica's normalisation of one layer
    (``Hidden.norm`` or ``Conv.norm``), (R, 1, 1): 0 where the replica has none."""
    return np.array([n[k] if n else 0.0 for n in norms], "float32").reshape(len(norms), 1, 1)


@dataclass(frozen=True)
class Slots:
    """Where each layer's weights sit in the stacked params list.

    Trainable first: per convolution and per hidden layer its kernel, bias
    and, with a normalisation, gamma and beta; then the output layer's kernel
    and bias. Then the BatchNormalization moving means and variances (the
    convolutions', then the hidden layers'), which the optimizer never sees.
    """

    conv: tuple[int, ...]
    dense: tuple[int, ...]  # hidden layers, then the output layer
    norm: tuple[int | None, ...]  # gamma, per hidden layer
    moving: tuple[int | None, ...]  # moving mean, per hidden layer
    n_trainable: int
    conv_norm: tuple[int | None, ...] = ()  # gamma, per convolution
    conv_moving: tuple[int | None, ...] = ()  # moving mean, per convolution


def slots(lay: Layout) -> Slots:
    """The :class:`Slots` of ``lay``."""
    i, conv, dense, norm, conv_norm = 0, [], [], [], []
    conv_norms = lay.conv_norms or (None,) * len(lay.convs)
    for kind in conv_norms:
        conv.append(i)
        i += 2
        conv_norm.append(i if kind else None)
        i += 2 if kind else 0
    norms = lay.norms or (None,) * lay.depth
    for kind in norms:
        dense.append(i)
        i += 2
        norm.append(i if kind else None)
        i += 2 if kind else 0
    dense.append(i)
    n_trainable = i + 2
    i = n_trainable
    moving: list[list[int | None]] = [[], []]
    for out, kinds in zip(moving, (conv_norms, norms)):
        for kind in kinds:
            out.append(i if kind and kind[0] == "batch" else None)
            i += 2 if kind and kind[0] == "batch" else 0
    return Slots(tuple(conv), tuple(dense), tuple(norm), tuple(moving[1]), n_trainable,
                 tuple(conv_norm), tuple(moving[0]))


def penalties(structures: Sequence[Structure], at_least: Sequence[tuple] = ()
              ) -> tuple[tuple[tuple[str, int, int, str], ...], list[np.ndarray]]:
    """The regularization terms present (and ``at_least`` those), and each term's (R, 1, 1)
    coefficients (0 for a replica without it).

    A term is (``"conv"`` or ``"dense"``, layer, 0 for its kernel or 1 for
    its bias, ``"l1"`` or ``"l2"``): a convolution's index, or a hidden Dense
    layer's index or -1 for the output layer (:class:`Slots` says where
    their weights are).
    """
    found: dict[tuple[str, int, int, str], dict[int, float]] = {term: {} for term in at_least}
    for r, s in enumerate(structures):
        for i, coefs in enumerate(s.penalties):
            j = i - len(s.convs)
            place = ("conv", i) if j < 0 else ("dense", j if j < len(s.hidden) else -1)
            for which, kind, c in ((0, "l1", coefs[0]), (0, "l2", coefs[1]),
                                   (1, "l1", coefs[2]), (1, "l2", coefs[3])):
                if c:
                    found.setdefault((*place, which, kind), {})[r] = c
    terms = tuple(sorted(found))
    values = []
    for term in terms:
        column = np.zeros((len(structures), 1, 1), "float32")
        for r, c in found[term].items():
            column[r] = c
        values.append(column)
    return terms, values


def stacked_params(replicas: Sequence[Replica], lay: Layout) -> list[np.ndarray]:
    """Every layer's weights (:class:`Slots`' order), zero-padded to the stack's shapes."""
    R, H = len(replicas), lay.width
    ins = [lay.n_inputs] + [H] * max(lay.depth - 1, 0)
    channels = [lay.sample_shape[-1], *lay.conv_widths] if lay.convs else []
    conv_norms = lay.conv_norms or (None,) * len(lay.convs)
    shapes = [s for sig, c_in, f, kind in zip(lay.convs, channels, lay.conv_widths, conv_norms)
              for s in ((R, int(np.prod(sig[0])) * c_in, f), (R, 1, f))
              + ((R, 1, f),) * (2 if kind else 0)]
    norms = lay.norms or (None,) * lay.depth
    for i, kind in enumerate(norms):
        shapes += [(R, ins[i], H), (R, 1, H)] + [(R, 1, H)] * (2 if kind else 0)
    shapes += [(R, H if lay.depth else lay.n_inputs, lay.n_outputs), (R, 1, lay.n_outputs)]
    shapes += [(R, 1, f) for f, k in zip(lay.conv_widths, conv_norms) if k and k[0] == "batch"
               for _ in range(2)]
    shapes += [(R, 1, H)] * (2 * sum(1 for k in norms if k and k[0] == "batch"))
    params = [np.zeros(s, "float32") for s in shapes]
    for r, rep in enumerate(replicas):
        write_replica(params, r, rep, lay)
    return params


def _places(replica: Replica, lay: Layout) -> list[list[tuple[int, Any, int]]]:
    """Per weight tuple of ``replica``, per array: (stacked param, kernel rows, columns).

    Kernel rows are None for vectors (biases, gamma, beta, moving statistics)
    and ``"conv"`` for a convolution kernel.
    """
    s, at = replica.structure, slots(lay)
    out: list[list[tuple[int, Any, int]]] = []
    for i, c in enumerate(s.convs):
        out.append([(at.conv[i], "conv", c.filters), (at.conv[i] + 1, None, c.filters)])
        if c.norm:
            g = at.conv_norm[i]
            out.append([(g, None, c.filters), (g + 1, None, c.filters)])
            if c.norm[0] == "batch":
                out[-1] += [(at.conv_moving[i], None, c.filters),
                            (at.conv_moving[i] + 1, None, c.filters)]
    widths = [h.units for h in s.hidden] + [s.output_units]
    for j, units in enumerate(widths):
        last = j == len(s.hidden)
        k = at.dense[-1] if last else at.dense[j]
        rows = input_rows(lay, s) if j == 0 else slice(0, widths[j - 1])
        out.append([(k, rows, units), (k + 1, None, units)])
        if not last and s.hidden[j].norm:
            g = at.norm[j]
            out.append([(g, None, units), (g + 1, None, units)])
            if s.hidden[j].norm[0] == "batch":
                out[-1] += [(at.moving[j], None, units), (at.moving[j] + 1, None, units)]
    return out


def _conv_kernel(kernel: np.ndarray, c_in: int, f: int) -> np.ndarray:
    """A (k..., c, filters) kernel padded to ``c_in`` channels and ``f`` filters, flattened."""
    padded = np.zeros((*kernel.shape[:-2], c_in, f), "float32")
    padded[..., :kernel.shape[-2], :kernel.shape[-1]] = kernel
    return padded.reshape(-1, f)


def write_replica(params: list[np.ndarray], r: int, replica: Replica, lay: Layout) -> None:
    """Put ``replica``'s weights in slice ``r`` of the stacked ``params``, zero-padded."""
    for p in params:
        p[r] = 0.0
    for places, arrays in zip(_places(replica, lay), replica.weights):
        for (i, rows, cols), value in zip(places, arrays):
            if rows is None:
                params[i][r, 0, :cols] = value
            elif isinstance(rows, str):  # a convolution kernel
                k = int(np.prod(value.shape[:-2]))
                params[i][r] = _conv_kernel(value, params[i].shape[1] // k, params[i].shape[2])
            else:
                params[i][r, rows, :cols] = value


def unstack(params: list[np.ndarray], replicas: Sequence[Replica],
            lay: Layout) -> list[list[tuple[np.ndarray, ...]]]:
    """Each replica's weights, shaped as its own model's (:func:`write_replica` undone)."""
    out = []
    for r, rep in enumerate(replicas):
        weights = []
        for places, arrays in zip(_places(rep, lay), rep.weights):
            got = []
            for (i, rows, cols), value in zip(places, arrays):
                if rows is None:
                    got.append(params[i][r, 0, :cols].copy())
                elif isinstance(rows, str):  # back to (k..., c, filters)
                    full = params[i][r].reshape(*value.shape[:-2], -1, params[i].shape[2])
                    got.append(full[..., :value.shape[-2], :cols].copy())
                else:
                    got.append(params[i][r, rows, :cols].copy())
            weights.append(tuple(got))
        out.append(weights)
    return out


def fit_flags(replicas: Sequence[Replica]) -> tuple[str, ...]:
    """The fit constants a stack of ``replicas`` needs: ``"W"`` (row weights), ``"shuffled"``.

    Present only where some replica needs them, so other stacks trace as before;
    a compiled loop serves stacks of the same flags only (:mod:`.compiled`).
    """
    return tuple(name for name, needed in (
        ("W", any(r.row_weights is not None for r in replicas)),
        ("shuffled", any(not r.shuffle for r in replicas))) if needed)


def stack_consts(replicas: Sequence[Replica], lay: Layout, X: np.ndarray, Y: np.ndarray,
                 n_pad: int) -> dict:
    R = len(replicas)
    rows = np.zeros((R, n_pad), "int32")
    for r, rep in enumerate(replicas):
        rows[r, :len(rep.rows)] = rep.rows
    flags, fit = fit_flags(replicas), {}
    if "W" in flags:  # (R, rows of X): each replica's weight of each of its rows
        # (At least as wide as the rows: epoch_orders passes a placeholder X.)
        n = max([len(X)] + [int(rep.rows.max()) + 1 for rep in replicas if len(rep.rows)])
        fit["W"] = np.zeros((R, n), "float32")
        for r, rep in enumerate(replicas):
            fit["W"][r, rep.rows] = 1.0 if rep.row_weights is None else rep.row_weights
    if "shuffled" in flags:
        fit["shuffled"] = np.array([r.shuffle for r in replicas], "float32").reshape(R, 1)
    return {**fit, **forward_consts(lay),
        "X": X, "Y": Y, "rows": rows, "epoch0": np.zeros((R, 1), "int32"),
        "n_rows": np.array([len(r.rows) for r in replicas], "int32").reshape(R, 1),
        "seeds": np.array([r.seed for r in replicas], "uint32").reshape(R, 1),
        "dropout": lay.dropout, "first": lay.first, "input_dropout": lay.input_dropout,
        "penalty": lay.penalty,
    }


def forward_consts(lay: Layout) -> dict:
    """The per-replica constants the forward pass reads (training adds its own to them)."""
    return {"masks": lay.masks, "real": lay.real, "selects": lay.selects,
            "conv_masks": lay.conv_masks or [], "norm_eps": lay.norm_eps or [],
            "norm_momentum": lay.norm_momentum or [], "conv_norm_eps": lay.conv_norm_eps or [],
            "conv_norm_momentum": lay.conv_norm_momentum or []}


def steps_per_epoch(replicas: Sequence[Replica], batch_size: int) -> int:
    steps = {math.ceil(len(r.rows) / batch_size) for r in replicas}
    if len(steps) != 1:
        raise ValueError(f"replicas of one stack must take the same steps per epoch, got {steps}")
    return steps.pop()
