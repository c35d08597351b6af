"""Grid and random search: scikit-learn's candidate generators.

Grid and random search choose configurations exactly as scikit-learn's
``GridSearchCV`` and ``RandomizedSearchCV`` do (their ``_run_search`` draws
from ``ParameterGrid`` and ``ParameterSampler``), then hand the whole list to
the search context as one batch. Training is the evaluator's job: in this
process, or through scikit-learn's own ``evaluate_candidates`` on worker
processes or Dask (:mod:`nn_tuning.evaluators.search_cv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import ParameterGrid, ParameterSampler

from ..space import SearchSpace
from .base import SearchContext, Strategy


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
        grid = ParameterGrid(ctx.space.to_sklearn_grid())
        ctx.evaluate([_as_params(c) for c in grid])


class RandomSearch(Strategy):
    """``max_trials`` configurations drawn by ``ParameterSampler`` (seeded with ``seed``)."""

    name = "random"
    needs_max_trials = True

    def run(self, ctx: SearchContext) -> None:
        sampler = ParameterSampler(ctx.space.to_sklearn_distributions(), ctx.max_trials,
                                   random_state=ctx.seed)
        ctx.evaluate([_as_params(c) for c in sampler])
