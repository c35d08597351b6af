"""Manual search: evaluate the user's own list of configurations."""

from __future__ import annotations

from collections.abc import Mapping

from ..evaluation import evaluate
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

    With ``workers > 1`` the configurations run in parallel worker processes
    (each scoring every fold of its configuration); each finished trial is
    committed as it comes back.
    """

    name = "manual"
    needs_space = False

    def run(self, ctx: SearchContext) -> None:
        todo = [p for p in check_configs(ctx.configs) if ctx.finished(p) is None]
        if ctx.workers <= 1 or len(todo) <= 1:
            for params in todo:
                ctx.run_config(params)
            return
        from joblib import Parallel, delayed

        from ..parallel import fold_batches

        with fold_batches(ctx.workers, n_splits=1):
            trials = Parallel(n_jobs=ctx.workers, return_as="generator_unordered")(
                delayed(evaluate)(ctx.protocol, ctx.X, ctx.y, params) for params in todo
            )
            for trial in trials:
                ctx.record(trial)
