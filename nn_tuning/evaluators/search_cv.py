"""Train batches through scikit-learn's ``evaluate_candidates``: worker processes or Dask.

scikit-learn's search classes already run (configuration, fold) fits in
parallel with joblib, handle failing fits (``error_score``) and score with the
protocol's scorer. :class:`_BatchSearchCV` is a search whose
``_run_search(evaluate_candidates)`` (scikit-learn's documented extension
point) evaluates exactly the batch it is given, so a batch from *any*
strategy runs on scikit-learn's machinery:

* :class:`WorkerProcessEvaluator`: joblib's process backend with each
  configuration's folds in one process (:mod:`nn_tuning.parallel`);
* :class:`DaskEvaluator`: joblib on a Dask cluster
  (:func:`nn_tuning.distributed.dask_backend`).

Trials come back when the batch ends; the search context cuts batches to
:attr:`batch_limit` configurations so that few are lost to an interruption.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection._search import BaseSearchCV

from ..evaluation import Protocol, error_reason, trial_from_scores
from ..model_size import SIZE_SCORING, size_from_results
from ..parallel import fold_batches
from ..result import Trial
from ..space import SearchSpace
from .base import Evaluator

__all__ = ["DaskEvaluator", "WorkerProcessEvaluator"]

_ALL_FAILED = "fits failed"
# Configurations per batch, per worker: fewer wait on the slowest configuration
# of a batch, more delay the commit to the store.
_CANDIDATES_PER_WORKER = 2


def _pid_scorer(estimator: Any, X: Any, y: Any) -> float:
    """The id of the process that trained the fold: the ``worker`` of the trial."""
    return float(os.getpid())


def _worker_from_results(results: dict[str, Any], index: int) -> str | None:
    """``pid-N``: the process that trained candidate ``index`` (its first fold; on Dask, a
    process of some worker machine)."""
    column = results.get("split0_test_pid")
    if column is None or not math.isfinite(float(column[index])):
        return None
    return f"pid-{int(column[index])}"


class _BatchSearchCV(BaseSearchCV):
    """A scikit-learn search over exactly the ``candidates`` given."""

    def __init__(self, estimator: Any, candidates: Sequence[dict[str, Any]] = (), *,
                 scoring: Any = None, n_jobs: int | None = None, refit: bool = False,
                 cv: Any = None, verbose: int = 0, pre_dispatch: str = "all",
                 error_score: float = np.nan, return_train_score: bool = False) -> None:
        super().__init__(estimator, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv,
                         verbose=verbose, pre_dispatch=pre_dispatch, error_score=error_score,
                         return_train_score=return_train_score)
        self.candidates = candidates

    def _run_search(self, evaluate_candidates):
        evaluate_candidates(list(self.candidates))

    def _check_scorers_accept_sample_weight(self):
        # Fits take the run's sample weights (tune(fit=...)); scores stay unweighted, as
        # on every other path (scikit-learn >= 1.7 would pass them to the scorer too).
        return False


class _SearchCVEvaluator(Evaluator):
    """Batches through :class:`_BatchSearchCV` with ``n_jobs`` parallel fits."""

    def __init__(self, protocol: Protocol, X: np.ndarray, y: np.ndarray, n_jobs: int) -> None:
        super().__init__(protocol, X, y)
        self.n_jobs = n_jobs
        self.batch_limit = max(1, n_jobs) * _CANDIDATES_PER_WORKER

    def _parallel(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def evaluate(self, batch: Sequence[Mapping[str, Any]], *,
                 epochs: int | None = None) -> Iterator[Trial]:
        if not batch or self.stopping:
            return
        p = self.protocol
        extra = {} if epochs is None else {"epochs": int(epochs)}
        candidates = [{**{SearchSpace.param_key(k): v for k, v in params.items()}, **extra}
                      for params in batch]
        # The trained model's size and the training process's id travel as more scores
        # (scikit-learn's multi-metric scoring).
        scoring = {"score": p.scorer, **SIZE_SCORING, "pid": _pid_scorer}
        search = _BatchSearchCV(p.estimator, candidates, scoring=scoring,
                                cv=p.splits, refit=False,
                                n_jobs=self.n_jobs if self.n_jobs > 1 else None)
        n_splits = len(p.splits)
        with warnings.catch_warnings(record=True) as caught, self._parallel():
            warnings.simplefilter("always", FitFailedWarning)
            # Our trials carry the failures; scikit-learn's summary warnings would repeat them.
            warnings.simplefilter("ignore", UserWarning)
            try:
                search.fit(self.X, self.y, **p.fit_params())  # sliced to each fold's rows
            except ValueError as exc:
                if _ALL_FAILED not in str(exc):
                    raise
                reason = error_reason(str(exc))
                for params in batch:
                    yield trial_from_scores(dict(params), [math.nan] * n_splits, 0.0, reason)
                return
        failures = [error_reason(str(w.message)) for w in caught
                    if issubclass(w.category, FitFailedWarning)]
        reason = " | ".join(dict.fromkeys(failures)) or None
        results = search.cv_results_
        for i, params in enumerate(batch):
            scores = [float(results[f"split{k}_test_score"][i]) for k in range(n_splits)]
            seconds = float(results["mean_fit_time"][i] + results["mean_score_time"][i]) * n_splits
            trial = trial_from_scores(dict(params), scores, seconds, reason)
            trial.n_params = size_from_results(results, i)
            trial.worker = _worker_from_results(results, i) or trial.worker
            yield trial


class WorkerProcessEvaluator(_SearchCVEvaluator):
    """``workers`` processes, each training every fold of the configurations it gets.

    joblib's process backend (loky) keeps its processes between batches;
    TensorFlow's thread pools in each are sized to its share of the cores.
    """

    name = "worker-processes"

    def __init__(self, protocol: Protocol, X: np.ndarray, y: np.ndarray, workers: int) -> None:
        super().__init__(protocol, X, y, n_jobs=workers)
        self.workers = workers

    def _parallel(self) -> contextlib.AbstractContextManager:
        return fold_batches(self.workers, len(self.protocol.splits))


class DaskEvaluator(_SearchCVEvaluator):
    """scikit-learn's joblib work on a Dask cluster: ``"local"`` or a scheduler address."""

    name = "dask"

    def __init__(self, protocol: Protocol, X: np.ndarray, y: np.ndarray, scheduler: str,
                 workers: int = 1) -> None:
        from ..distributed import dask_backend

        self._stack = contextlib.ExitStack()
        client = self._stack.enter_context(dask_backend(scheduler, n_workers=max(workers, 2)))
        self.client = client  # the stacked engine sends its chunks to the same cluster
        super().__init__(protocol, X, y,
                         n_jobs=max(workers, sum(client.nthreads().values()), 2))

    def close(self) -> None:
        self._stack.close()
