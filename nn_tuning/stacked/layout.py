"""A stack's padded shapes and per-replica constants: what the loop is traced for.

Replica ``r`` is one (configuration, fold). Its weights live in slice ``r`` of
stacked tensors: kernels ``(R, in, H)``, biases ``(R, 1, H)``, with ``H`` the
widest hidden layer of the stack. Narrower layers are padded with zeros and
masked; a replica with fewer hidden layers passes its activations through the
missing ones unchanged. Replicas that differ in activations, dropout,
optimizer or learning rate share a stack: grouped (sorted by optimizer and
activations, each computed on its own slice, :func:`with_groups`) or
selected by ``(R, 1, 1)`` constants. NumPy only: nothing here imports Keras.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .structure import Structure

__all__ = ["Layout", "Replica", "group_key", "layout", "penalties", "stack_consts",
           "stacked_params", "steps_per_epoch", "unstack", "with_groups", "write_replica"]


@dataclass
class Replica:
    """One (configuration, fold): its structure, initial weights, rows and random stream."""

    structure: Structure
    weights: list[tuple[np.ndarray, np.ndarray]]  # (kernel, bias) of every Dense layer
    rows: np.ndarray  # training rows, indices into the stack's X
    seed: int  # 0 <= seed < 2**32


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
    # Regularization present: (index into the stacked weights, "l1" or "l2") per term any
    # replica has (static: the loop computes these), and each term's (R, 1, 1) coefficients.
    penalty_terms: tuple[tuple[int, str], ...] = ()
    penalty: list[np.ndarray] = field(default_factory=list)


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
    terms, coefficients = penalties([r.structure for r in replicas],
                                    () if at_least is None else at_least.penalty_terms)
    return Layout(depth, width, s0.input_dim, s0.output_units, masks, real, acts, selects,
                  dropout, any_dropout, first, any_first, lr, variants,
                  ((variants[0], 0, R),) if len(variants) == 1 else None,
                  penalty_terms=terms, penalty=coefficients)


def penalties(structures: Sequence[Structure], at_least: Sequence[tuple] = ()
              ) -> tuple[tuple[tuple[int, str], ...], list[np.ndarray]]:
    """The regularization terms present (and ``at_least`` those), and each term's (R, 1, 1)
    coefficients (0 for a replica without it).

    A term is (index into :func:`stacked_params`' list, ``"l1"`` or ``"l2"``); the
    output layer's weights are -2 and -1 (the last two, whatever the stack's depth).
    """
    found: dict[tuple[int, str], dict[int, float]] = {term: {} for term in at_least}
    for r, s in enumerate(structures):
        for i, coefs in enumerate(s.penalties):
            kernel = 2 * i if i < len(s.hidden) else -2
            for index, kind, c in ((kernel, "l1", coefs[0]), (kernel, "l2", coefs[1]),
                                   (kernel + 1, "l1", coefs[2]), (kernel + 1, "l2", coefs[3])):
                if c:
                    found.setdefault((index, kind), {})[r] = c
    terms = tuple(sorted(found))
    values = []
    for term in terms:
        column = np.zeros((len(structures), 1, 1), "float32")
        for r, c in found[term].items():
            column[r] = c
        values.append(column)
    return terms, values


def stacked_params(replicas: Sequence[Replica], lay: Layout) -> list[np.ndarray]:
    """[W_0, b_0, ..., W_out, b_out], zero-padded to the stack's shapes."""
    R, H = len(replicas), lay.width
    ins = [lay.n_inputs] + [H] * max(lay.depth - 1, 0)
    shapes = [((R, ins[i], H), (R, 1, H)) for i in range(lay.depth)]
    shapes.append(((R, H if lay.depth else lay.n_inputs, lay.n_outputs), (R, 1, lay.n_outputs)))
    params = [np.zeros(s, "float32") for pair in shapes for s in pair]
    for r, rep in enumerate(replicas):
        write_replica(params, r, rep, lay)
    return params


def write_replica(params: list[np.ndarray], r: int, replica: Replica, lay: Layout) -> None:
    """Put ``replica``'s weights in slice ``r`` of the stacked ``params``, zero-padded."""
    n_hidden = len(replica.structure.hidden)
    for p in params:
        p[r] = 0.0
    for i, (kernel, bias) in enumerate(replica.weights):
        slot = i if i < n_hidden else lay.depth  # the output layer goes last
        params[2 * slot][r, :kernel.shape[0], :kernel.shape[1]] = kernel
        params[2 * slot + 1][r, 0, :bias.shape[0]] = bias


def unstack(params: list[np.ndarray], replicas: Sequence[Replica],
            lay: Layout) -> list[list[tuple[np.ndarray, np.ndarray]]]:
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


def stack_consts(replicas: Sequence[Replica], lay: Layout, X: np.ndarray, Y: np.ndarray,
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
        "first": lay.first, "penalty": lay.penalty,
    }


def steps_per_epoch(replicas: Sequence[Replica], batch_size: int) -> int:
    steps = {math.ceil(len(r.rows) / batch_size) for r in replicas}
    if len(steps) != 1:
        raise ValueError(f"replicas of one stack must take the same steps per epoch, got {steps}")
    return steps.pop()
