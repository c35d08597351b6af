"""What every strategy shares: the search context and the strategy interface."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..evaluation import Protocol, evaluate
from ..result import Trial, TrialState
from ..space import SearchSpace
from ..store import TrialStore

logger = logging.getLogger("nn_tuning")

# A keras-tuner worker (a spawned or `nn-tune worker` process that may run for
# days) scores its first trials itself, then in a child process replaced after
# every _TRIALS_PER_WORKER trials, so that memory a builder or TensorFlow leaks
# cannot pile up. nn-tuning's own training path does not grow (fast_fit
# unregisters what each trace leaves in TensorFlow's gradient registry), so a
# search in the calling process stays there: no spawning, no pickling.
_IN_PROCESS_TRIALS = 50
_TRIALS_PER_WORKER = 100


@dataclass
class SearchContext:
    """Everything a strategy needs: the protocol, the data, the space, the store."""

    protocol: Protocol
    X: np.ndarray
    y: np.ndarray
    space: SearchSpace | None
    store: TrialStore
    max_trials: int | None = None
    seed: int = 0
    workers: int = 1
    configs: list[dict[str, Any]] | None = None
    workdir: Path | None = None
    progress: Any = None
    resumed: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    evaluated: int = 0
    repeats: int = 0
    _pool: Any = field(default=None, repr=False)
    _seen: set[int] = field(default_factory=set, repr=False)  # trial numbers met this run

    def _evaluate(self, protocol: Protocol, params: dict[str, Any]) -> Trial:
        """Score ``params``: in this process, or in a worker's recycled child process."""
        self.evaluated += 1
        recycle = bool(self.options.get("worker_of"))
        if not recycle or self.evaluated <= _IN_PROCESS_TRIALS or self._pool is False:
            return evaluate(protocol, self.X, self.y, params)
        if self._pool is None:
            try:
                pickle.dumps((protocol, params))
            except Exception as exc:  # e.g. a builder defined in a notebook
                logger.warning("trials stay in this process (%s cannot be sent to a worker "
                               "process)", exc)
                self._pool = False
                return evaluate(protocol, self.X, self.y, params)
            self._pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=_TRIALS_PER_WORKER)
        try:
            return self._pool.submit(evaluate, protocol, self.X, self.y, params).result()
        except BrokenProcessPool as exc:
            self._pool = None
            return Trial(dict(params), TrialState.FAILED,
                         reason=f"the worker process died during the trial ({exc})")

    def close(self) -> None:
        """Stop the worker process, if one was started."""
        if self._pool:
            self._pool.shutdown()
        self._pool = None

    def finished(self, params: dict[str, Any]) -> Trial | None:
        """The stored trial of ``params``: resumed from an earlier run, or proposed again."""
        trial = self.store.get(params)
        if trial is not None and trial.number in self._seen:
            # An oracle proposing a configuration this run already scored
            # (keras-tuner's Bayesian oracle does, on small discrete spaces).
            self.repeats += 1
            logger.info("trial %s %s was proposed again: not retrained", trial.number, trial.params)
        elif trial is not None:
            self.resumed += 1
            self._seen.add(trial.number)
            logger.info("resuming: trial %s %s is already stored", trial.number, trial.params)
            self._tick(trial)
        return trial

    def record(self, trial: Trial) -> Trial:
        """Commit a finished trial to the store now."""
        trial.device = self.device
        trial.worker = self.options.get("tuner_id", trial.worker)
        self.store.add(trial)
        self._seen.add(trial.number)
        if trial.state is TrialState.FAILED:
            logger.warning("trial %s failed: %s", trial.number, trial.reason)
        self._tick(trial)
        return trial

    def _tick(self, trial: Trial) -> None:
        if self.progress is not None:
            self.progress(trial)

    def run_config(self, params: dict[str, Any], epochs: int | None = None) -> Trial:
        """Score ``params`` on the shared folds, unless the store already has it."""
        done = self.finished(params)
        if done is not None:
            return done
        protocol = self.protocol
        if epochs is not None and epochs != protocol.epochs:
            protocol = replace(protocol, estimator=protocol.estimator_for({"epochs": epochs}))
        return self.record(self._evaluate(protocol, params))


class Strategy:
    """A way of choosing which configurations to evaluate."""

    name: ClassVar[str]
    needs_space: ClassVar[bool] = True

    def run(self, ctx: SearchContext) -> None:
        raise NotImplementedError
