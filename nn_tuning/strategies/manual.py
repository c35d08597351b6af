"""Manual search: evaluate the user's own list of configurations."""

from __future__ import annotations

from collections.abc import Mapping

from ..exceptions import ConfigError
from .base import SearchContext, Strategy


def check_configs(configs: object) -> list[dict]:
    """Return ``configs`` as a list of dicts, or raise a one-line ConfigError."""
    if not isinstance(configs, (list, tuple)) or not configs:
        raise ConfigError(
            f"strategy 'manual' needs configs: a non-empty list of dicts of hyperparameters, got {configs!r}"
        )
    for i, config in enumerate(configs):
        if not isinstance(config, Mapping) or not config:
            raise ConfigError(f"configs[{i}] must be a non-empty dict of hyperparameters, got {config!r}")
        bad = [k for k in config if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ConfigError(f"configs[{i}] has an invalid hyperparameter name {bad[0]!r}")
    return [dict(c) for c in configs]


class ManualSearch(Strategy):
    """Evaluate ``configs`` in order, as a person tuning by hand would.

    The whole list is one batch: the evaluator decides how many train at
    once (``workers`` processes, Dask, ...); each trial is committed as it
    comes back.
    """

    name = "manual"
    needs_space = False

    def planned_trials(self, ctx: SearchContext) -> int | None:
        return len(ctx.configs or ())

    def run(self, ctx: SearchContext) -> None:
        ctx.evaluate(check_configs(ctx.configs))
