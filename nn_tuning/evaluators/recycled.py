"""Train in a child process replaced every so often: the evaluator of long-lived workers.

A keras-tuner worker (a spawned or ``nn-tune worker`` process that may run
for days) scores its first trials itself, then in one child process replaced
after every :data:`TRIALS_PER_CHILD` trials, so that memory a builder or
TensorFlow leaks cannot pile up. nn-tuning's own training path does not grow
(:mod:`nn_tuning.fast_fit`), so a search in the calling process never needs
this.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from ..evaluation import Protocol, evaluate
from ..result import Trial, TrialState
from .in_process import InProcessEvaluator

__all__ = ["RecycledProcessEvaluator", "IN_PROCESS_TRIALS", "TRIALS_PER_CHILD"]

logger = logging.getLogger("nn_tuning")

IN_PROCESS_TRIALS = 50
TRIALS_PER_CHILD = 100


class RecycledProcessEvaluator(InProcessEvaluator):
    """The first ``in_process`` trials here, the rest in a recycled child process.

    Parameters
    ----------
    protocol, X, y
        As for every :class:`~nn_tuning.evaluators.Evaluator`.
    in_process : int
        Trials trained in this process before the child takes over.
    per_child : int
        Trials a child trains before it is replaced.
    """

    name = "recycled-process"

    def __init__(self, protocol: Protocol, X: np.ndarray, y: np.ndarray, *,
                 in_process: int = IN_PROCESS_TRIALS, per_child: int = TRIALS_PER_CHILD) -> None:
        super().__init__(protocol, X, y)
        self.in_process = in_process
        self.per_child = per_child
        self.evaluated = 0
        self.pool: ProcessPoolExecutor | None | bool = None  # False: cannot be pickled

    def _one(self, protocol: Protocol, params: dict[str, Any]) -> Trial:
        self.evaluated += 1
        if self.evaluated <= self.in_process or self.pool is False:
            return evaluate(protocol, self.X, self.y, params)
        if self.pool is None:
            try:
                pickle.dumps((protocol, params))
            except Exception as exc:  # e.g. a builder defined in a notebook
                logger.warning("trials stay in this process (%s cannot be sent to a worker "
                               "process)", exc)
                self.pool = False
                return evaluate(protocol, self.X, self.y, params)
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            max_tasks_per_child=self.per_child)
        try:
            return self.pool.submit(evaluate, protocol, self.X, self.y, params).result()
        except BrokenProcessPool as exc:
            self.pool = None
            return Trial(params, TrialState.FAILED,
                         reason=f"the worker process died during the trial ({exc})")

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()
        self.pool = None
