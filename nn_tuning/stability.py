"""Winner stability: re-run the top configurations with other seeds.

A search ranks configurations by one seed's training. Small networks are
noisy, so the winner may only be lucky. :func:`check_stability` re-scores the
top ``k`` configurations on the same CV folds with several training seeds
(weight initialisation and shuffling), on the engine the search trained them
with (a spread measured on another engine would not be the search's), and
reports each one's mean and spread;
the winner is flagged unstable when another configuration's mean over seeds
beats it, or when its spread across seeds exceeds its lead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .checks import check_int
from .evaluation import Protocol
from .evaluators import choose_evaluator
from .exceptions import ConfigError
from .result import TrialState
from .scaleout import ScaleOut
from .space import config_key

__all__ = ["check_stability"]


def check_stability(
    protocol: Protocol,
    X: np.ndarray,
    y: np.ndarray,
    trials: pd.DataFrame,
    params: Sequence[dict[str, Any]],
    *,
    top_k: int = 3,
    seeds: Sequence[int] = (1, 2, 3),
    engine: str | None = None,
) -> pd.DataFrame:
    """Re-score the ``top_k`` best complete trials with each of ``seeds``.

    Parameters
    ----------
    protocol : Protocol
        The run's protocol (same folds and scorer); only the training seed changes.
    X, y : ndarray
    trials : DataFrame
        ``TuningResult.trials``.
    params : list of dict
        The hyperparameters of each row of ``trials`` (same order).
    top_k : int
    seeds : sequence of int
    engine : {"auto", "keras", "stacked"}, optional
        How to train the re-runs; by default the engine the search used (the
        ``engine`` column of ``trials``: ``stacked`` if it stacked any of them).

    Returns
    -------
    DataFrame
        One row per configuration, best first: ``params`` (JSON), the original
        ``search_score``, ``seed_mean``, ``seed_std``, ``seed_scores``, ``engine`` (how
        the re-runs trained), ``rank``
        and ``stable`` (on the winner's row: False when it is not a stable winner).
    """
    check_int("top_k", top_k)
    if not seeds:
        raise ConfigError("stability needs at least one seed, got []")
    complete = trials.index[trials["state"] == TrialState.COMPLETE.value]
    order = trials.loc[complete, "mean_score"].sort_values(ascending=False).index[:top_k]
    configs = [params[trials.index.get_loc(idx)] for idx in order]
    if engine is None:
        used = set(trials.loc[order, "engine"]) if "engine" in trials else {"keras"}
        engine = "stacked" if "stacked" in used else "keras"
    keys = [config_key(c) for c in configs]
    scores: dict[str, list[float]] = {k: [] for k in keys}
    engines: dict[str, set[str]] = {k: set() for k in keys}
    for seed in seeds:  # each seed's configurations as one batch: one stack when they stack
        with choose_evaluator(engine, ScaleOut(), protocol.with_seed(seed), X, y) as evaluator:
            # Hyperband may rank one configuration twice (two budgets): trained once.
            for trial in evaluator.evaluate(list(dict(zip(keys, configs)).values())):
                key = config_key(trial.params)
                scores[key].append(trial.mean_score if trial.state is TrialState.COMPLETE
                                   else np.nan)
                engines[key].add(trial.engine)
    rows = []
    for idx, config, key in zip(order, configs, keys):
        s = np.asarray(scores[key], dtype=float)
        rows.append({
            "params": json.dumps(config, default=str),
            "search_score": float(trials.loc[idx, "mean_score"]),
            "seed_mean": float(np.nanmean(s)) if np.isfinite(s).any() else np.nan,
            "seed_std": float(np.nanstd(s)) if np.isfinite(s).any() else np.nan,
            "seed_scores": json.dumps([float(v) for v in s]),
            "engine": ",".join(sorted(engines[key])),
        })
    table = pd.DataFrame(rows)
    table["rank"] = table["seed_mean"].rank(ascending=False, method="min").astype("Int64")
    winner = table.iloc[0]
    others = table.iloc[1:]
    lead = winner["seed_mean"] - (others["seed_mean"].max() if len(others) else -np.inf)
    stable = bool(np.isfinite(winner["seed_mean"]) and lead > 0 and winner["seed_std"] <= lead)
    table["stable"] = [stable] + [None] * (len(table) - 1)
    return table
