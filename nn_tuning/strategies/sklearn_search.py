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

import math
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


def sub_grid(space: SearchSpace, max_points: int) -> SearchSpace:
    """A sub-grid of ``space`` with at most ``max_points`` points: the leading values of each
    entry, the longest entry shortened first."""
    values = {n: e.grid_values(n) for n, e in space.items()}
    while math.prod(len(v) for v in values.values()) > max_points \
            and any(len(v) > 1 for v in values.values()):
        longest = max(values, key=lambda n: len(values[n]))
        values[longest] = values[longest][:-1]
    return SearchSpace({n: list(v) for n, v in values.items()})


class GridSearch(Strategy):
    """Every point of the grid, in ``ParameterGrid``'s order.

    A config gives it no ``max_trials``; ``--max-trials N`` runs a sub-grid of
    at most N points (:func:`sub_grid`).
    """

    name = "grid"
    takes_max_trials = False

    @classmethod
    def check_space(cls, space: SearchSpace | None) -> None:
        super().check_space(space)
        space.to_sklearn_grid()  # a SearchSpaceError names a continuous entry

    @classmethod
    def search_args(cls, space: SearchSpace | None, max_trials: int | None
                    ) -> tuple[SearchSpace | None, int | None]:
        if space is None or max_trials is None or (space.grid_size or 0) <= max_trials:
            return space, None
        return sub_grid(space, max_trials), None

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
