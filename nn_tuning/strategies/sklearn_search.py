"""Grid and random search: scikit-learn's candidate generators.

Grid and random search choose configurations exactly as scikit-learn's
``GridSearchCV`` and ``RandomizedSearchCV`` do (their ``_run_search`` draws
from ``ParameterGrid`` and ``ParameterSampler``), then hand the whole list to
the search context in batches of :data:`DRAWS_PER_BATCH`, so
that a huge ``max_trials`` with a ``max_seconds`` budget starts training at
once instead of drawing and looking up every configuration first). Training
is the evaluator's job: in this process, or through scikit-learn's own
``evaluate_candidates`` on worker processes or Dask
(:mod:`nn_tuning.evaluators.search_cv`).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import numpy as np
from sklearn.model_selection import ParameterGrid, ParameterSampler

from ..space import SearchSpace
from .base import SearchContext, Strategy

#: Configurations handed over per batch: enough for several full stacks
#: (at most 512 replicas each), few enough that drawing them takes milliseconds.
DRAWS_PER_BATCH = 1024


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _as_params(candidate: dict[str, Any]) -> dict[str, Any]:
    return {SearchSpace.from_param_key(k): _native(v) for k, v in candidate.items()}


class GridSearch(Strategy):
    """Every point of the grid, in ``ParameterGrid``'s order."""

    name = "grid"

    def planned_trials(self, ctx: SearchContext) -> int | None:
        return ctx.space.grid_size

    def run(self, ctx: SearchContext) -> None:
        points = iter(ParameterGrid(ctx.space.to_sklearn_grid()))
        while batch := [_as_params(c) for c in islice(points, DRAWS_PER_BATCH)]:
            ctx.evaluate(batch)


class RandomSearch(Strategy):
    """``max_trials`` configurations drawn by ``ParameterSampler`` (seeded with ``seed``)."""

    name = "random"
    needs_max_trials = True

    def run(self, ctx: SearchContext) -> None:
        sampler = ParameterSampler(ctx.space.to_sklearn_distributions(), ctx.max_trials,
                                   random_state=ctx.seed)
        # ParameterSampler draws lazily (one candidate per step of its iterator), so
        # the same seed gives the same sequence whatever the batch size.
        draws = iter(sampler)
        while batch := [_as_params(c) for c in islice(draws, DRAWS_PER_BATCH)]:
            ctx.evaluate(batch)
