"""Hyperparameter importance: Optuna's fANOVA evaluator over the stored trials.

Why fANOVA through Optuna rather than scikit-learn's forest importances:
fANOVA (Hutter, Hoos and Leyton-Brown, ICML 2014) fits a random forest to the
scores and decomposes the variance of its predictions over the search
space, so an importance is the share of the score's variance a
hyperparameter explains on its own, measured over its whole range and not
only where trials happened to land. Impurity-based forest importances are
biased towards hyperparameters with many distinct values (a continuous
learning rate beats a two-way choice regardless of effect). Optuna's
evaluator is well kept, handles categorical and log-scaled hyperparameters
through the same distributions the Optuna export writes, and gives the
numbers ``optuna-dashboard`` shows for the exported studies. This makes
Optuna a required dependency.

With few trials the forest has little to learn from: importances are
computed but marked unreliable below :data:`MIN_TRIALS` complete trials or
fewer than :data:`TRIALS_PER_PARAM` per varied hyperparameter.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np

from ..result import partial_budget
from ._optuna import optuna_study, optuna_value

__all__ = ["importances", "complete_trials", "MIN_TRIALS", "TRIALS_PER_PARAM", "STUDY"]

logger = logging.getLogger("nn_tuning")

#: Fewer complete trials than this and importances are marked unreliable.
MIN_TRIALS = 20
#: ... or fewer than this many complete trials per varied hyperparameter.
TRIALS_PER_PARAM = 5
#: The key of the whole study's importances.
STUDY = "whole study"


def _subset(data: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    rows = np.flatnonzero(keep)
    finished = data.get("finished_at")
    return {"trials": data["trials"].iloc[rows].reset_index(drop=True),
            "params": [data["params"][i] for i in rows],
            "finished_at": [finished[i] for i in rows] if finished is not None else None,
            "space": data.get("space")}


def complete_trials(data: dict[str, Any], full_budget_only: bool) -> dict[str, Any]:
    """The complete trials of one strategy (full-budget ones only, if asked)."""
    t = data["trials"]
    if not len(t):
        return _subset(data, np.zeros(0, dtype=bool))
    keep = (t["state"] == "complete").to_numpy() & np.isfinite(
        np.asarray(t["mean_score"], dtype=float))
    if full_budget_only and data.get("budget_epochs"):
        keep &= ~partial_budget(t, data["budget_epochs"])
    return _subset(data, keep)


def _varied(params: list[dict[str, Any]]) -> list[str]:
    names = list(dict.fromkeys(k for p in params for k in p))
    common = [n for n in names if all(n in p for p in params)]
    return [n for n in common if len({repr(optuna_value(p[n])) for p in params}) > 1]


def _evaluate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    params = [p for d in parts for p in d["params"]]
    n = len(params)
    varied = _varied(params)
    out: dict[str, Any] = {"n_trials": n, "params": varied, "importances": {}}
    if n < 2 or not varied:
        out.update(reliable=False, note=(f"not computed: {n} complete trial(s)" if n < 2 else
                                         "not computed: no hyperparameter varied"))
        return out
    study = optuna_study(parts)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = get_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=0), params=varied)
    except (ValueError, RuntimeError) as exc:
        out.update(reliable=False, note=f"not computed: {exc}")
        return out
    out["importances"] = {k: float(v) for k, v in values.items() if math.isfinite(v)}
    wanted = max(MIN_TRIALS, TRIALS_PER_PARAM * len(varied))
    out["reliable"] = n >= wanted
    out["note"] = ("" if out["reliable"] else
                   f"unreliable: {n} complete trials for {len(varied)} hyperparameter(s); "
                   f"at least {wanted} wanted")
    return out


def importances(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """fANOVA importances per strategy and over the whole study.

    Per strategy: its complete trials (Hyperband's with their ``epochs``
    budget as a hyperparameter). Whole study: every strategy's complete
    full-budget trials, over the hyperparameters they all share.

    Returns
    -------
    dict
        Strategy name (and :data:`STUDY`) to ``importances`` (name to share,
        summing to 1, largest first), ``n_trials``, ``params``, ``reliable``
        and ``note`` (why unreliable or not computed; empty otherwise).
    """
    out = {}
    for name, data in runs.items():
        out[name] = _evaluate([complete_trials(data, full_budget_only=False)])
    if len(runs) > 1:
        out[STUDY] = _evaluate([complete_trials(d, full_budget_only=True) for d in runs.values()])
    return out
