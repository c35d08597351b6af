"""Asynchronous successive halving inside the stack: stop hopeless replicas, give their slots away.

``strategy="asha"`` (ASHA, Li et al., "A System for Massively Parallel
Hyperparameter Tuning", 2018) on the stacked engine. Configurations train
side by side in stacks of fixed capacity
(:class:`~nn_tuning.stacked.halving.RungTrainer`), a segment of epochs at a
time. At each rung (``min_epochs``, ``min_epochs * eta``, ... up to the run's
``epochs``) a configuration is scored on its validation folds (the mean over
its folds, the protocol every strategy uses) and reported to Optuna's
:class:`~optuna.pruners.SuccessiveHalvingPruner`; those outside the top
``1/eta`` of their rung stop and their slots go at once to new
configurations from the sampler, the others **continue** (their weights,
optimizer state, shuffles and dropout streams carry on: never retrained).
The sampler is Optuna's: TPE (``constant_liar``, so that proposals asked
while others train spread out) or random, asked through ``study.ask()`` and
told through ``study.tell()``.

Each configuration is one stored trial: its ``budget`` is the epochs it
reached (the run's ``epochs`` for those that finished, a rung for those
stopped), its ``intermediate`` the mean CV score at each rung reached. The
best configuration and the refit are chosen among those that reached the
most epochs. With ``max_seconds``, training stops at the first segment
boundary after the deadline; the configurations in flight are scored and
stored at the epochs they reached.

A run with a run folder writes a checkpoint (``asha.ckpt``: the sampler,
the stacks' weights and optimizer state, who is where) after every segment
that stored a trial, so a killed run loses at most what it trained since,
and a rerun continues with the same decisions. Configurations whose model
cannot stack train one at a time in full (no pruning), with the reason
logged once; so does every configuration under ``engine="keras"``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import check_int
from ..exceptions import ConfigError
from ..optuna_space import distributions, from_optuna, quiet_optuna
from ..result import Trial, TrialState
from ..space import config_key
from ..stacked.plan import DEFAULT_MAX_REPLICAS
from ..stacked.structure import NotStackable
from .asha_checkpoint import Checkpointed
from .base import BudgetSpent, SearchContext, Strategy

__all__ = ["AshaOptions", "AshaSearch", "rungs"]

logger = logging.getLogger("nn_tuning")

_SAMPLERS = ("tpe", "random")
_CHECKPOINT = "asha.ckpt"
# Proposals in a row that the run had already trained: the sampler has nothing new.
_MAX_REPEATS = 100
# Share of a time budget spent building the first stack's configurations.
_FIRST_FILL = 0.05
# A stack whose pace would take a configuration to the full epochs in more than this
# share of the time left trains fewer configurations at once (at most _MAX_SHRINKS times).
_SHRINK_AT = 0.5
_MAX_SHRINKS = 2


@dataclass(frozen=True)
class AshaOptions:
    """Options of successive halving.

    Parameters
    ----------
    sampler : {"tpe", "random"}, default="tpe"
        Optuna's sampler that proposes new configurations.
    reduction_factor : int, default=3
        ``eta``: the top ``1/eta`` of each rung go on.
    min_epochs : int, optional
        Epochs of the first rung; by default ``max(1, epochs // eta**3)``
        (four rungs below ``epochs``).
    slots : int, optional
        Configurations trained at once (each one's folds are replicas); by
        default as many as fit the stacked engine's 512 replicas.
    """

    sampler: str = "tpe"
    reduction_factor: int = 3
    min_epochs: int | None = None
    slots: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in _SAMPLERS:
            raise ConfigError(f"option 'sampler' must be one of {', '.join(_SAMPLERS)}, "
                              f"got {self.sampler!r}")
        check_int("reduction_factor", self.reduction_factor, 2)
        if self.min_epochs is not None:
            check_int("min_epochs", self.min_epochs)
        if self.slots is not None:
            check_int("slots", self.slots)


def rungs(epochs: int, eta: int, min_epochs: int | None) -> list[int]:
    """The epochs at which configurations are scored: ``min_epochs * eta**k`` below ``epochs``, then ``epochs``."""
    r = min_epochs if min_epochs is not None else max(1, epochs // eta ** 3)
    out = []
    while r < epochs:
        out.append(r)
        r *= eta
    return out + [epochs]


class AshaSearch(Strategy):
    """Asynchronous successive halving in the stack, proposals from Optuna's TPE or random sampler."""

    name = "asha"
    Options = AshaOptions
    needs_budget = True
    partial_budgets = True
    # Its stacks train in this process (scale-out of stacks is the scale-out issue's).
    scale_out: frozenset = frozenset()

    def run(self, ctx: SearchContext) -> None:
        with quiet_optuna():  # its study's INFO lines, not the caller's Optuna settings
            _Search(ctx).run()


class _Search(Checkpointed):
    """One run of successive halving: the sampler's study, the trainer, the store."""

    def __init__(self, ctx: SearchContext) -> None:
        import optuna

        from ..stacked.halving import RungTrainer

        self.ctx, opts = ctx, ctx.options
        self.epochs = ctx.protocol.epochs
        self.rungs = rungs(self.epochs, opts.reduction_factor, opts.min_epochs)
        if self.rungs[0] > self.epochs:
            raise ConfigError(f"option 'min_epochs' must be at most epochs ({self.epochs}), "
                              f"got {opts.min_epochs}")
        self.segment = math.gcd(*self.rungs)  # every rung ends a segment
        folds = len(ctx.protocol.splits)
        capacity = opts.slots or max(1, DEFAULT_MAX_REPLICAS // folds)
        if opts.slots is None and ctx.max_trials is not None:
            # A few trials: enough slots that those the first rung stops are
            # refilled at once, not so many that most stay empty.
            capacity = min(capacity, -(-ctx.max_trials // opts.reduction_factor))
        self.stacked = ctx.engine != "keras"
        self.trainer = RungTrainer(ctx.protocol, ctx.X, ctx.y, seed=ctx.seed, capacity=capacity,
                                   segment=self.segment)
        self.dists = distributions(ctx.space)
        sampler = (optuna.samplers.TPESampler(seed=ctx.seed, constant_liar=True)
                   if opts.sampler == "tpe" else optuna.samplers.RandomSampler(seed=ctx.seed))
        self.study = optuna.create_study(
            direction="maximize", sampler=sampler,
            pruner=optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.rungs[0], reduction_factor=opts.reduction_factor))
        self.otrials: dict[int, Any] = {}  # optuna trial number -> its trial object
        self.pending: list[tuple[int, Any]] = []  # (number, built): proposed, waiting for a slot
        self.outcomes: dict[str, tuple[str, float | None]] = {}  # config key -> (state, value)
        self.started = 0
        self.repeats = 0
        self.exhausted = False
        self.checkpoint = None if ctx.workdir is None else Path(ctx.workdir) / _CHECKPOINT
        self.logged: set[str] = set()
        self.last_segment = 0.0  # seconds the last segment trained
        self.segments = 0
        self.shrinks = 0
        # Rungs each trial has reported: one moved out of a stack that was too slow starts
        # again from scratch and meets them a second time (same value: not reported twice).
        self.reported: dict[int, set[int]] = {}

    # The loop
    def run(self) -> None:
        ctx = self.ctx
        logger.info("asha: %s sampler, rungs at %s epochs, eta %d, %s", ctx.options.sampler,
                    self.rungs, ctx.options.reduction_factor,
                    f"{self.trainer.capacity} configurations per stack" if self.stacked
                    else "engine 'keras': each configuration trains in full (no pruning)")
        self._restore()
        try:
            while True:
                self._fill()
                if not self.trainer.live:
                    break
                self.last_segment = self.trainer.train()
                self.segments += 1
                stored = self._decide()
                self._fit_the_time()
                if ctx.budget_spent:  # past the deadline, and at least one trial stored
                    self._snapshot()
                    self._save()
                    raise BudgetSpent
                if stored:
                    self._save()
        finally:
            ctx.notes.update(self.notes())
        self._save()

    def notes(self) -> dict[str, Any]:
        return {"sampler": self.ctx.options.sampler, "rungs": self.rungs,
                "configurations": self.started,
                "slot_utilisation": round(self.trainer.utilisation, 4),
                "compiled_loops": self.trainer.loops if self.trainer.banks else 0}

    def _fit_the_time(self) -> None:
        """Under a time budget, train fewer configurations at once if none could finish.

        From the second segment on (the first one traces the loop), if taking
        a configuration to the full epochs at this pace would take more than
        half the time left, the largest bank keeps the share of its
        configurations that fits (a stack's time per epoch grows with its
        replicas) and the others wait to start again. At most twice.
        """
        ctx = self.ctx
        if ctx.deadline is None or self.segments < 2 or self.shrinks >= _MAX_SHRINKS \
                or not self.trainer.banks:
            return
        left = ctx.deadline - time.perf_counter()
        per_epoch = self.last_segment / self.segment
        needed = per_epoch * self.epochs
        if left <= 0 or needed <= _SHRINK_AT * left:
            return
        sizes = [bank.live for bank in self.trainer.banks]
        bank = max(range(len(sizes)), key=sizes.__getitem__)
        keep = int(sizes[bank] * _SHRINK_AT * left / needed)
        if keep >= sizes[bank] or keep < 1:
            return
        self.shrinks += 1
        logger.info("asha: %d configurations at once would not reach %d epochs in the %.0f s "
                    "left; training %d at once", sizes[bank], self.epochs, left, keep)
        self.pending[:0] = self.trainer.shrink(bank, keep)
        self.segments = 0  # the smaller stack traces its loop again

    def _may_start(self) -> bool:
        if self.exhausted:
            return False
        if self.ctx.max_trials is not None and self.started >= self.ctx.max_trials:
            return False
        return not self.ctx.budget_spent

    def _fill(self) -> None:
        """Give every free slot a configuration: waiting ones first, then new proposals.

        Proposals are built before any is placed, so that a new stack's shapes
        cover all of them (one compiled loop for many configurations). Under a
        time budget, the first stack gets the configurations built in the first
        :data:`_FIRST_FILL` of the budget (building a Keras model costs more
        than training it in a stack): its capacity is what the machine builds in
        that time, so the first rungs come early and no slot trains empty.
        """
        timed = self.ctx.deadline is not None
        first = not self.trainer.banks and timed and self.ctx.options.slots is None
        until = None
        now = time.perf_counter()
        if first:
            until = now + _FIRST_FILL * max(self.ctx.deadline - now, 0.0)
        elif timed and self.trainer.banks:
            # Later refills build for as long as the last segment trained: where building
            # a model costs more than training it (small models on a CPU), the survivors
            # still reach the full epochs before the deadline instead of waiting on builds.
            until = now + self.last_segment
        while self._may_start() and len(self.pending) < max(self.trainer.free_slots(), 1):
            if until is not None and self.pending and time.perf_counter() >= until:
                break
            proposal = self._propose()
            if proposal is not None:
                built = self._build(*proposal)
                if built is not None:
                    self.pending.append((proposal[0], built))
        if first and self.pending:
            self.trainer.capacity = min(self.trainer.capacity, len(self.pending))
        waiting = []
        for i, (number, built) in enumerate(self.pending):
            rest = [b for _, b in self.pending[i + 1:]]
            if not self.trainer.add(number, built, rest):
                waiting.append((number, built))
        self.pending = waiting

    def _propose(self) -> tuple[int, dict[str, Any]] | None:
        trial = self.study.ask(self.dists)
        params = from_optuna(self.ctx.space, trial.params)
        key = config_key(params)
        if key in self.outcomes:  # proposed again (TPE does, on small discrete spaces)
            self.repeats += 1
            self.exhausted = self.repeats >= _MAX_REPEATS
            self._tell(trial, *self.outcomes[key])
            return None
        self.repeats = 0
        self.started += 1
        stored = self._stored(params)
        if stored is not None:  # trained by an earlier run of this folder
            self._tell_trial(trial, stored, replay=True)
            return None
        self.otrials[trial.number] = trial
        return trial.number, params

    def _stored(self, params: dict[str, Any]) -> Trial | None:
        for budget in reversed(self.rungs):
            found = self.ctx.finished(params, budget)
            if found is not None:
                return found
        return self.ctx.finished(params, None)

    def _build(self, number: int, params: dict[str, Any]) -> Any:
        """The configuration built for a stack; None when it cannot stack (then it trains in full)."""
        if self.stacked:
            try:
                return self.trainer.build(number, params)
            except NotStackable as exc:
                if str(exc) not in self.logged:
                    self.logged.add(str(exc))
                    logger.info("asha: not stacked, trained in full one at a time: %s", exc)
            except Exception:  # the builder fails: the per-configuration path records why
                pass
        trial = self.ctx.evaluate([params])[0]
        self._tell_trial(self.otrials.pop(number), trial)
        return None

    def _decide(self) -> bool:
        """Score the configurations at a rung; stop or finish them. True if a trial was stored."""
        due = [k for k, lv in self.trainer.live.items() if lv.epochs in self.rungs]
        if not due:
            return False
        stored = False
        for key, (scores, reason) in self.trainer.score(due).items():
            lv = self.trainer.live[key]
            lv.last = (lv.epochs, scores, reason)
            trial = self.otrials[key]
            mean = float(sum(scores) / len(scores)) if reason is None else math.nan
            if reason is None and lv.epochs < self.epochs:
                lv.scores[lv.epochs] = mean
                if lv.epochs not in self.reported.setdefault(key, set()):
                    self.reported[key].add(lv.epochs)
                    trial.report(mean, lv.epochs)
                if not trial.should_prune():
                    continue
            elif reason is None:
                lv.scores[lv.epochs] = mean
            self._finish(key, scores, reason)
            stored = True
        return stored

    def _finish(self, key: int, scores: list[float], reason: str | None) -> None:
        lv = self.trainer.stop(key)
        t = self._record(lv, scores, reason)
        self._tell_trial(self.otrials.pop(key), t)

    def _record(self, lv: Any, scores: list[float], reason: str | None) -> Trial:
        from ..evaluation import trial_from_scores

        t = trial_from_scores(dict(lv.built.params), scores, lv.seconds, reason)
        t.engine, t.n_params, t.budget = "stacked", lv.built.structure.n_params, lv.epochs
        t.intermediate = dict(lv.scores)
        return self.ctx.record(t)

    def _snapshot(self) -> None:
        """The deadline passed: store every configuration in flight at the epochs it reached.

        They stay in the checkpoint, alive: a rerun of the folder continues them.
        """
        lives = self.trainer.live
        # Those scored at a rung this segment are not scored again.
        fresh = {k: lv.last[1:] for k, lv in lives.items()
                 if lv.last is not None and lv.last[0] == lv.epochs}
        todo = [k for k, lv in lives.items() if lv.epochs > 0 and k not in fresh]
        for key, (scores, reason) in {**fresh, **self.trainer.score(todo)}.items():
            lv = lives[key]
            if reason is None:
                lv.scores[lv.epochs] = float(sum(scores) / len(scores))
            self._record(lv, scores, reason)

    # Telling the sampler
    def _tell_trial(self, otrial: Any, t: Trial, replay: bool = False) -> None:
        """Tell the sampler ``t``'s outcome; ``replay`` reports its rungs first (a stored trial),
        so that the pruner's rungs hold what they held when it was trained."""
        key = config_key(t.params)
        if replay:
            for epochs, score in sorted((t.intermediate or {}).items()):
                if epochs < self.epochs:
                    otrial.report(score, epochs)
                    otrial.should_prune()
        if t.state is not TrialState.COMPLETE:
            outcome = ("fail", None)
        elif t.budget is not None and t.budget < self.epochs:
            outcome = ("pruned", t.mean_score)
        else:
            outcome = ("complete", t.mean_score)
        self.outcomes[key] = outcome
        self._tell(otrial, *outcome)

    def _tell(self, otrial: Any, state: str, value: float | None) -> None:
        import optuna

        if state == "complete":
            self.study.tell(otrial, value)
        elif state == "pruned":
            self.study.tell(otrial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(otrial, state=optuna.trial.TrialState.FAIL)
