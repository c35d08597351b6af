"""A stack of fixed capacity whose replicas come and go: train a segment, read, replace.

Successive halving inside one model (:mod:`nn_tuning.strategies.asha`) needs
a stack that trains every replica a few epochs (a *segment*), lets the
caller score some of them, stop the hopeless ones and load new replicas into
their slots, and goes on, without retracing its loop. A :class:`SlotStack`
keeps its shapes (depth, width, activations present, dropout: its
*envelope*, fixed when it is made) and so its compiled loop; a replica that
does not fit the envelope goes to another stack (:meth:`SlotStack.fits`).

Continuing is exact: weights and optimizer state stay where they are
between segments, every replica keeps its own step count (the optimizer's
``iterations`` is per replica, :mod:`.loops`) and its own epoch counter (its
shuffles and dropout masks are those of its own epochs), so a replica
trained in segments to E epochs has the weights it would have after E epochs
in one :func:`~nn_tuning.stacked.engine.train_stack`, whatever its slot and
stack-mates (tests/stacked/test_slots.py). An empty slot trains nothing: its
learning rate is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .compiled import exact_loop
from .engine import _predict, predict_chunk_rows
from .layout import (Layout, Replica, layout, penalties, stack_consts, stacked_params, unstack,
                     write_replica)
from .structure import Structure

__all__ = ["SlotStack"]


class SlotStack:
    """``capacity`` slots, each empty or holding one replica, trained ``segment`` epochs at a time.

    Parameters
    ----------
    template : sequence of Replica
        The replicas the envelope is made for (the first ones to load): the
        stack takes any replica whose structure fits them (same group, no
        deeper, no wider, no activation, dropout or optimizer they lack).
    capacity : int
        Number of slots (replicas trained at once).
    X, Y : ndarray
        Features and encoded targets; replicas index their rows.
    batch_size, steps : int
        Batch size and steps per epoch, shared by every replica.
    segment : int
        Epochs per call of :meth:`train`.
    """

    def __init__(self, template: Sequence[Replica], capacity: int, X: np.ndarray, Y: np.ndarray,
                 *, batch_size: int, steps: int, segment: int) -> None:
        self.capacity, self.batch_size, self.steps, self.segment = (capacity, batch_size, steps,
                                                                    segment)
        self.n_pad = steps * batch_size
        self.X = np.asarray(X, "float32")
        self.Y = Y.astype("float32") if Y.dtype.kind == "f" else Y
        self.envelope = layout(template)
        self.structure: Structure = template[0].structure
        # Empty slots hold the first template replica with a learning rate of 0.
        self.slots: list[Replica] = [template[0]] * capacity
        self.active = np.zeros(capacity, bool)
        self.epochs = np.zeros(capacity, "int32")  # epochs each slot's replica has trained
        self.params = stacked_params(self.slots, self._layout())
        self._loop: Any = None
        self.opt_state: list[np.ndarray] = []

    # What goes in
    def fits(self, replica: Replica) -> bool:
        """Whether ``replica`` can join this stack without changing its shapes."""
        s, env = replica.structure, self.envelope
        if s.group != self.structure.group or s.variant not in env.variants \
                or len(s.hidden) > env.depth \
                or -(-len(replica.rows) // self.batch_size) != self.steps \
                or (s.input_dropout and not env.any_input_dropout) \
                or not set(penalties([s])[0]) <= set(env.penalty_terms):
            return False
        for layer, h in enumerate(s.hidden):
            if h.units > env.width or h.activation not in env.acts[layer] \
                    or (h.dropout and not env.any_dropout[layer]) \
                    or (h.dropout and h.dropout_first and not env.any_first[layer]):
                return False
        return True

    def free_slots(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.active)]

    def load(self, slot: int, replica: Replica) -> None:
        """Start ``replica`` in ``slot``: its initial weights, a fresh optimizer state, epoch 0."""
        if not self.fits(replica):
            raise ValueError("the replica does not fit this stack's envelope")
        self.slots[slot] = replica
        self.active[slot] = True
        self.epochs[slot] = 0
        write_replica(self.params, slot, replica, self.envelope)  # its depth is the stack's
        loop = self._compiled()
        for state, initial in zip(self.opt_state, loop.opt_initial):
            state[slot] = initial[slot]

    def release(self, slot: int) -> None:
        """Stop training ``slot``'s replica; the slot is free."""
        self.active[slot] = False

    def adopt(self, slot: int, other: SlotStack, their_slot: int) -> None:
        """Move the replica in ``other``'s ``their_slot``, as it stands, into ``slot``.

        Its weights, optimizer state and epochs come along: it goes on
        training here exactly as it would have there (same envelope).
        """
        self._compiled()
        other._compiled()
        for mine, theirs in zip(self.params, other.params):
            mine[slot] = theirs[their_slot]
        for mine, theirs in zip(self.opt_state, other.opt_state):
            mine[slot] = theirs[their_slot]
        self.slots[slot] = other.slots[their_slot]
        self.epochs[slot] = other.epochs[their_slot]
        self.active[slot] = other.active[their_slot]

    # Training and reading
    def train(self) -> None:
        """Train every loaded replica ``segment`` more epochs, each from where it stopped."""
        lay = self._layout()
        consts = stack_consts(self.slots, lay, self.X, self.Y, self.n_pad)
        consts["epoch0"] = self.epochs.reshape(-1, 1).copy()
        lr = (lay.lr * self.active.reshape(-1, 1, 1)).astype("float32")
        params, state = self._compiled().run(self.params, consts, lr, self.opt_state)
        # Copies: the backend may hand back read-only views of its own buffers.
        self.params = [np.array(p) for p in params]
        self.opt_state = [np.array(o) for o in state]
        self.epochs[self.active] += self.segment

    def predict(self, rows: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Each given slot's outputs on its ``rows`` of X."""
        lay = self._layout()
        empty = np.zeros(0, "int64")
        per_slot = [rows.get(r, empty) for r in range(self.capacity)]
        out = _predict(self._compiled().model, lay, self.params, self.X, per_slot,
                       predict_chunk_rows(self.batch_size))
        return {r: out[r] for r in rows}

    def finite(self, slot: int) -> bool:
        return all(bool(np.isfinite(p[slot]).all()) for p in self.params)

    def weights(self, slot: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """``slot``'s replica's weights now, as (kernel, bias) per Dense layer."""
        lay = self._layout()
        return unstack([p[slot:slot + 1] for p in self.params], [self.slots[slot]], lay)[0]

    # Checkpoints: everything but the compiled loop, which is traced again when needed.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loop": None}

    def _layout(self) -> Layout:
        return layout(self.slots, at_least=self.envelope)

    def _compiled(self) -> Any:
        if self._loop is None:
            lay = self._layout()
            consts = stack_consts(self.slots, lay, self.X, self.Y, self.n_pad)
            self._loop = exact_loop(lay, self.structure, consts, self.params, self.segment,
                                       self.steps, self.n_pad, self.batch_size)
            if not self.opt_state:  # a new stack (a restored one has its state)
                self.opt_state = [np.array(o) for o in self._loop.opt_initial]
        return self._loop
