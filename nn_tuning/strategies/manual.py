"""Manual search: evaluate the user's own list of configurations."""

from __future__ import annotations

from .base import SearchContext, Strategy, check_configs

__all__ = ["ManualSearch", "check_configs"]


class ManualSearch(Strategy):
    """Evaluate ``configs`` in order, as a person tuning by hand would.

    The whole list is one batch: the evaluator decides how many train at
    once (``workers`` processes, Dask, ...); each trial is committed as it
    comes back.
    """

    name = "manual"
    needs_space = False
    takes_configs = True
    takes_max_trials = False

    def run(self, ctx: SearchContext) -> None:
        ctx.evaluate(check_configs(ctx.configs))
