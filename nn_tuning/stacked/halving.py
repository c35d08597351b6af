"""Configurations trained in slot stacks and scored at rungs: the engine of successive halving.

:class:`RungTrainer` holds the configurations alive in a search. Each one's
folds are replicas in :class:`~nn_tuning.stacked.slots.SlotStack` s (one
stack per steps-per-epoch group of the folds, a *bank* per structure group),
trained one segment at a time for every configuration at once. When a
configuration reaches one of the rungs it is scored on its validation folds,
exactly as the per-configuration path scores it; the caller (the strategy)
decides whether it goes on or stops, and a stopped configuration's slots go
to the next one loaded. The trainer only trains and scores; choosing is the
strategy's job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine import Replica
from .plan import Built, _score, _steps_split, _targets, build, fold_replica
from .slots import SlotStack
from .stopping import Monitoring
from .structure import NotStackable

__all__ = ["Live", "RungTrainer"]


@dataclass
class Live:
    """A configuration in training: where its replicas are and how far they got."""

    key: Any
    built: Built
    bank: int
    slot: int  # configuration slot within its bank
    epochs: int = 0
    seconds: float = 0.0  # its share of the stacks' training time so far
    scores: dict[int, float] = field(default_factory=dict)  # rung epochs -> mean CV score
    last: tuple | None = None  # (epochs, fold scores, failure reason) when last scored


class _Bank:
    """One stack per steps group of folds, ``capacity`` configurations each."""

    def __init__(self, group: tuple, batch_size: int, templates: Sequence[Sequence[Replica]],
                 groups: list[list[int]], capacity: int, X: np.ndarray, Y: np.ndarray,
                 segment: int) -> None:
        self.group, self.batch_size = group, batch_size
        self.groups, self.capacity, self.templates = groups, capacity, templates
        self.stacks = []
        for template, folds in zip(templates, groups):
            steps = -(-len(template[0].rows) // batch_size)
            self.stacks.append(SlotStack(template, capacity * len(folds), X, Y,
                                         batch_size=batch_size, steps=steps, segment=segment))
        self.used = [False] * capacity

    def fits(self, replicas: Sequence[Sequence[Replica]]) -> bool:
        return all(stack.fits(rep) for stack, reps in zip(self.stacks, replicas) for rep in reps)

    def free(self) -> int | None:
        return next((c for c, used in enumerate(self.used) if not used), None)

    def load(self, c: int, replicas: Sequence[Sequence[Replica]]) -> None:
        self.used[c] = True
        for stack, folds, reps in zip(self.stacks, self.groups, replicas):
            for j, rep in enumerate(reps):
                stack.load(c * len(folds) + j, rep)

    def release(self, c: int) -> None:
        self.used[c] = False
        for stack, folds in zip(self.stacks, self.groups):
            for j in range(len(folds)):
                stack.release(c * len(folds) + j)

    @property
    def live(self) -> int:
        return sum(self.used)


def _bank_key(b: Built) -> tuple:
    """What the configurations of one bank share: a structure group and one optimizer (a
    slot stack runs one Keras optimizer; a plain stack runs one per optimizer it holds)."""
    return (b.structure.group, b.structure.variant)


def _distinct(replicas: Sequence[Replica]) -> list[Replica]:
    """One replica per distinct structure, in order (what a stack's shapes depend on)."""
    seen: dict[Any, Replica] = {}
    for rep in replicas:
        seen.setdefault(rep.structure, rep)
    return list(seen.values())


class RungTrainer:
    """Configurations alive in slot stacks, trained a segment at a time, scored at rungs.

    Parameters
    ----------
    protocol, X, y
        The run's protocol and data (as every evaluator's).
    seed : int
        The run's seed: each replica's random stream is
        :func:`~nn_tuning.stacked.plan.replica_seed` of it, as in every stack.
    capacity : int
        Configurations trained at once per bank (a bank per structure group:
        optimizer, loss, input and output).
    segment : int
        Epochs per segment; every rung is a multiple of it.
    """

    def __init__(self, protocol: Any, X: np.ndarray, y: np.ndarray, *, seed: int, capacity: int,
                 segment: int) -> None:
        self.protocol, self.X, self.y, self.seed = protocol, X, y, seed
        self.capacity, self.segment = capacity, segment
        self.banks: list[_Bank] = []
        self.live: dict[Any, Live] = {}
        self.replica_epochs = 0  # replica-epochs trained for live configurations
        self.slot_epochs = 0  # replica slots x epochs run
        self._X_fit: np.ndarray | None = None
        self._Y: np.ndarray | None = None

    def build(self, index: int, params: Mapping[str, Any]) -> Built:
        """Build a configuration (NotStackable if it cannot stack)."""
        b = build(self.protocol, self.X, self.y, index, params)
        if b.monitoring != Monitoring():  # slot stacks train rungs, not Keras' fit with a split
            raise NotStackable("successive halving in a stack does not honour validation_split "
                               "or EarlyStopping")
        return b

    def free_slots(self) -> int:
        """Configuration slots free in the banks (a new bank brings ``capacity`` more)."""
        return sum(bank.used.count(False) for bank in self.banks) if self.banks \
            else self.capacity

    def add(self, key: Any, b: Built, waiting: Sequence[Built] = ()) -> bool:
        """Load ``b`` into a free slot; False when every bank that could take it is full.

        A configuration no bank can hold (another group, or wider, deeper or
        with other activations than a bank's shapes) opens a new bank, whose
        shapes cover it, the ``waiting`` configurations and the earlier banks of
        its group: so few banks, and few compiled loops, serve a whole search.
        """
        self._encode(b)
        groups = _steps_split(self.protocol, b.batch_size)
        replicas = self._replicas(b, groups)
        fitting = [i for i, bank in enumerate(self.banks)
                   if bank.group == _bank_key(b) and bank.fits(replicas)]
        for i in fitting:
            c = self.banks[i].free()
            if c is not None:
                self.banks[i].load(c, replicas)
                self.live[key] = Live(key, b, i, c)
                return True
        if fitting:
            return False  # wait for a slot
        mates = [m for m in waiting if _bank_key(m) == _bank_key(b)
                 and m.batch_size == b.batch_size]
        per_config = [self._replicas(m, groups) for m in [b, *mates]]
        templates = [[rep for reps in per_config for rep in reps[g]] for g in range(len(groups))]
        for old in self.banks:
            if old.group == _bank_key(b) and old.groups == groups:
                templates = [t + list(o) for t, o in zip(templates, old.templates)]
        templates = [_distinct(t) for t in templates]
        bank = _Bank(_bank_key(b), b.batch_size, templates, groups, self.capacity,
                     self._X_fit, self._Y, self.segment)
        self.banks.append(bank)
        bank.load(0, replicas)
        self.live[key] = Live(key, b, len(self.banks) - 1, 0)
        return True

    def restore(self, banks: list[_Bank], live: Sequence[tuple]) -> None:
        """Take back checkpointed banks and their live configurations.

        ``live`` holds ``(key, params, bank, slot, epochs, seconds, scores)``
        per configuration; each is built again (for its scorer and encoders),
        its weights and optimizer state are the banks'.
        """
        self.banks = banks
        for key, params, bank, slot, epochs, seconds, scores in live:
            b = self.build(key, params)
            self._encode(b)
            self.live[key] = Live(key, b, bank, slot, epochs, seconds, dict(scores))

    def _encode(self, b: Built) -> None:
        """The features and targets every stack trains on, encoded by the first configuration."""
        if self._X_fit is None:
            self._X_fit = np.asarray(b.estimator.feature_encoder_.transform(self.X), "float32")
            self._Y = _targets(b, self.y)

    def _replicas(self, b: Built, groups: list[list[int]]) -> list[list[Replica]]:
        """``b``'s replicas, one list per steps group of folds."""
        return [[fold_replica(b, self.protocol, self.y, k, self.seed) for k in folds]
                for folds in groups]

    def shrink(self, bank: int, keep: int) -> list[tuple[Any, Built]]:
        """Move ``keep`` of a bank's live configurations, as they stand, into a smaller bank.

        The others leave, to start again from scratch later: returned as
        ``(key, built)``. A stack's time per epoch grows with its replicas,
        empty or not; a search short of time trains fewer at once so that some
        reach the full epochs.
        """
        old = self.banks[bank]
        members = sorted((lv for lv in self.live.values() if lv.bank == bank),
                         key=lambda lv: (-lv.epochs, lv.slot))
        kept, evicted = members[:keep], members[keep:]
        new = _Bank(old.group, old.batch_size, old.templates, old.groups, max(len(kept), 1),
                    self._X_fit, self._Y, self.segment)
        self.capacity = min(self.capacity, new.capacity)  # new banks no larger either
        for c, lv in enumerate(kept):
            new.used[c] = True
            for stack, folds, old_stack in zip(new.stacks, new.groups, old.stacks):
                for j in range(len(folds)):
                    stack.adopt(c * len(folds) + j, old_stack, lv.slot * len(folds) + j)
            lv.slot = c
        for lv in evicted:
            del self.live[lv.key]
        self.banks[bank] = new
        return [(lv.key, lv.built) for lv in evicted]

    def train(self) -> float:
        """Train every live configuration one segment; the seconds it took."""
        start = time.perf_counter()
        for bank in self.banks:
            if bank.live:
                for stack in bank.stacks:
                    stack.train()
                    self.slot_epochs += stack.capacity * self.segment
                    self.replica_epochs += int(stack.active.sum()) * self.segment
        seconds = time.perf_counter() - start
        for lv in self.live.values():
            lv.epochs += self.segment
            lv.seconds += seconds / max(len(self.live), 1)
        return seconds

    def score(self, keys: Sequence[Any]) -> dict[Any, tuple[list[float], str | None]]:
        """Fold scores of the given live configurations as they are now (and a failure reason)."""
        wanted: dict[tuple[int, int], dict[int, np.ndarray]] = {}
        where: dict[tuple[Any, int], tuple[int, int, int]] = {}
        for key in keys:
            lv = self.live[key]
            bank = self.banks[lv.bank]
            for g, folds in enumerate(bank.groups):
                for j, k in enumerate(folds):
                    slot = lv.slot * len(folds) + j
                    wanted.setdefault((lv.bank, g), {})[slot] = self.protocol.splits[k][1]
                    where[(key, k)] = (lv.bank, g, slot)
        preds = {bg: self.banks[bg[0]].stacks[bg[1]].predict(rows) for bg, rows in wanted.items()}
        out = {}
        for key in keys:
            lv = self.live[key]
            scores, reason = [], None
            for k, (_, valid) in enumerate(self.protocol.splits):
                bank, g, slot = where[(key, k)]
                if not self.banks[bank].stacks[g].finite(slot):
                    scores.append(math.nan)
                    reason = f"training diverged: non-finite weights after {lv.epochs} epochs"
                    continue
                scores.append(_score(self.protocol, lv.built.estimator, preds[(bank, g)][slot],
                                     self.X[valid], self.y[valid]))
            out[key] = (scores, reason)
        return out

    def stop(self, key: Any) -> Live:
        """Stop a configuration: its slots are free for the next one."""
        lv = self.live.pop(key)
        self.banks[lv.bank].release(lv.slot)
        return lv

    @property
    def utilisation(self) -> float:
        """Replica-epochs spent on live configurations over slots x epochs run."""
        return self.replica_epochs / self.slot_epochs if self.slot_epochs else math.nan

    @property
    def loops(self) -> int:
        """Compiled training loops in use (one per distinct stack signature)."""
        return len({id(s._compiled()) for b in self.banks for s in b.stacks})
