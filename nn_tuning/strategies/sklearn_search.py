"""Grid and random search: scikit-learn's GridSearchCV and RandomizedSearchCV.

Both search classes get the protocol's estimator (the nn-tuning wrapper), its
CV splits and its scorer, with ``error_score=nan`` so a failing configuration
does not stop the search. They are subclassed at scikit-learn's documented
extension point, ``_run_search(evaluate_candidates)``, to add what
scikit-learn lacks: configurations already in the trial store are skipped
(resume), and each batch of candidates is committed to the store as soon as it
finishes.

With ``workers > 1`` every configuration's folds run in one worker process
(:mod:`nn_tuning.parallel`), which traces its training engine once.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from itertools import islice
from typing import Any

import numpy as np
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV, ParameterGrid, ParameterSampler, RandomizedSearchCV

from ..evaluation import error_reason, trial_from_scores
from ..exceptions import ConfigError
from ..model_size import SIZE_SCORING, size_from_results
from ..parallel import fold_batches
from ..space import SearchSpace
from .base import SearchContext, Strategy

_ALL_FAILED = "fits failed"
# Configurations per evaluate_candidates call, per worker: fewer calls wait on
# the slowest configuration of a call, more delay the commit to the store.
_CANDIDATES_PER_WORKER = 2


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _StoredSearchMixin:
    """Evaluate candidates in batches, skipping stored ones and committing each batch."""

    ctx: SearchContext

    def __getstate__(self):
        # scikit-learn >= 1.8 sends the search itself (``caller=self``) to the
        # workers; the context holds the store's database connection.
        # (BaseEstimator.__getstate__ may return the live __dict__: copy it.)
        state = dict(super().__getstate__())
        state.pop("ctx", None)
        return state

    def _candidates(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _run_search(self, evaluate_candidates):
        ctx = self.ctx
        todo = []
        for cand in self._candidates():
            params = {SearchSpace.from_param_key(k): _native(v) for k, v in cand.items()}
            if ctx.finished(params) is None:
                todo.append((cand, params))
        workers = max(1, ctx.workers)
        batch_size = workers * _CANDIDATES_PER_WORKER if workers > 1 else 1
        it = iter(todo)
        while batch := list(islice(it, batch_size)):
            self._evaluate_batch(evaluate_candidates, batch)
        self._search_done = True

    def _evaluate_batch(self, evaluate_candidates, batch) -> None:
        n_splits = len(self.ctx.protocol.splits)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitFailedWarning)
            try:
                results = evaluate_candidates([cand for cand, _ in batch])
            except ValueError as exc:
                if _ALL_FAILED not in str(exc):
                    raise
                reason = error_reason(str(exc))
                for _, params in batch:
                    self.ctx.record(trial_from_scores(params, [math.nan] * n_splits, 0.0, reason))
                return
        failures = [error_reason(str(w.message)) for w in caught
                    if issubclass(w.category, FitFailedWarning)]
        reason = " | ".join(dict.fromkeys(failures)) or None
        first = len(results["params"]) - len(batch)
        for i, (_, params) in enumerate(batch, start=first):
            scores = [float(results[f"split{k}_test_score"][i]) for k in range(n_splits)]
            seconds = float(results["mean_fit_time"][i] + results["mean_score_time"][i]) * n_splits
            trial = trial_from_scores(params, scores, seconds, reason)
            trial.n_params = size_from_results(results, i)
            self.ctx.record(trial)


class _StoredGridSearchCV(_StoredSearchMixin, GridSearchCV):
    def _candidates(self):
        return list(ParameterGrid(self.param_grid))


class _StoredRandomizedSearchCV(_StoredSearchMixin, RandomizedSearchCV):
    def _candidates(self):
        return list(ParameterSampler(self.param_distributions, self.n_iter,
                                     random_state=self.random_state))


def _run(search: Any, ctx: SearchContext) -> None:
    search.ctx = ctx
    # On Dask (tune's dask_scheduler) joblib's backend is already chosen.
    local = ctx.workers > 1 and not ctx.options.get("dask")
    parallel = (fold_batches(ctx.workers, len(ctx.protocol.splits)) if local
                else contextlib.nullcontext())
    with warnings.catch_warnings(), parallel:
        # Our own records carry the failures; scikit-learn's summary warnings would repeat them.
        warnings.simplefilter("ignore", UserWarning)
        try:
            search.fit(ctx.X, ctx.y)
        except (ValueError, TypeError, IndexError, AttributeError, KeyError):
            # After _run_search everything is in the store; scikit-learn's own
            # bookkeeping fails when every candidate failed or was resumed.
            if not getattr(search, "_search_done", False):
                raise


def _search_kwargs(ctx: SearchContext) -> dict[str, Any]:
    p = ctx.protocol
    # The trained model's size travels as a second score (scikit-learn's multi-metric scoring).
    return dict(scoring={"score": p.scorer, **SIZE_SCORING}, cv=p.splits, refit=False,
                error_score=np.nan,
                n_jobs=ctx.workers if ctx.workers > 1 else None,
                # Every task up front, so joblib cuts them into whole configurations.
                pre_dispatch="all")


class GridSearch(Strategy):
    """Every point of the grid, through ``GridSearchCV``."""

    name = "grid"

    def run(self, ctx: SearchContext) -> None:
        grid = ctx.space.to_sklearn_grid()
        search = _StoredGridSearchCV(ctx.protocol.estimator, grid, **_search_kwargs(ctx))
        _run(search, ctx)


class RandomSearch(Strategy):
    """``max_trials`` configurations sampled through ``RandomizedSearchCV``."""

    name = "random"

    def run(self, ctx: SearchContext) -> None:
        if not ctx.max_trials:
            raise ConfigError(f"strategy 'random' needs max_trials >= 1, got {ctx.max_trials!r}")
        search = _StoredRandomizedSearchCV(
            ctx.protocol.estimator, ctx.space.to_sklearn_distributions(),
            n_iter=ctx.max_trials, random_state=ctx.seed, **_search_kwargs(ctx),
        )
        _run(search, ctx)
