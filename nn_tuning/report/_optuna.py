"""Trials as Optuna studies: the translation behind the importance plots and ``nn-tune export``.

Each strategy's trials become one Optuna study (direction ``maximize``: CV
scores are greater-is-better, as in scikit-learn). The search space maps to
Optuna distributions (``Int`` to ``IntDistribution``, ``Float`` to
``FloatDistribution``, ``Choice`` and ``Fixed`` to
``CategoricalDistribution``); values Optuna's categorical distributions
cannot hold (tuples such as ``hidden_layers = [8, 8]``) are stored as their
JSON text, and values outside the space (a manual config) make that
hyperparameter categorical over the values seen. Failed trials are ``FAIL``
with their reason as a user attribute; fold scores, size, time, worker and
device are user attributes too.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..optuna_space import distribution as _from_entry
from ..optuna_space import optuna_value, quiet_optuna
from ..space import SearchSpace

__all__ = ["optuna_distributions", "optuna_study", "optuna_value", "frozen_trials",
           "quiet_optuna", "study_name", "StrategyTrials"]

logger = logging.getLogger("nn_tuning")

# What export and importance need of one strategy's trials (see report.load_run).
StrategyTrials = Mapping[str, Any]


def _contains(dist: Any, value: Any) -> bool:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return any(type(value) is type(c) and value == c for c in dist.choices) or (
            value is None and None in dist.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def optuna_distributions(params: Sequence[Mapping[str, Any]],
                         space: SearchSpace | None) -> dict[str, Any]:
    """One Optuna distribution per hyperparameter seen in ``params``.

    The space's entry where every value seen lies in it; otherwise categorical
    over the values seen (in the space's order where it has one).
    """
    from optuna.distributions import CategoricalDistribution

    seen: dict[str, list[Any]] = {}
    for p in params:
        for name, value in p.items():
            v = optuna_value(value)
            bucket = seen.setdefault(name, [])
            if not any(type(v) is type(b) and v == b for b in bucket):
                bucket.append(v)
    out = {}
    for name, values in seen.items():
        dist = _from_entry(space[name]) if space is not None and name in space else None
        if dist is None or not all(_contains(dist, v) for v in values):
            base = list(dist.choices) if isinstance(dist, CategoricalDistribution) else []
            extra = sorted((v for v in values if not any(
                type(v) is type(c) and v == c for c in base)), key=_sort_key)
            dist = CategoricalDistribution(base + extra)
        out[name] = dist
    return out


def _when(seconds: float | None) -> dt.datetime:
    if seconds is None or not math.isfinite(seconds):
        return dt.datetime.now()
    return dt.datetime.fromtimestamp(seconds)


def frozen_trials(strategy: StrategyTrials, distributions: Mapping[str, Any]) -> list[Any]:
    """Optuna ``FrozenTrial`` objects for one strategy's trials (see ``report.load_run``)."""
    from optuna.trial import FrozenTrial, TrialState

    table = strategy["trials"]
    finished = strategy.get("finished_at")
    out = []
    for i, params in enumerate(strategy["params"]):
        row = table.iloc[i]
        complete = row["state"] == "complete" and math.isfinite(float(row["mean_score"]))
        folds = [float(row[c]) for c in table.columns
                 if c.startswith("fold") and c.endswith("_score") and c[4:-6].isdigit()]
        end = _when(finished[i] if finished is not None else None)
        seconds = float(row.get("fit_seconds", 0.0) or 0.0)
        n_params = row.get("n_params")
        attrs = {"nn_tune_trial": int(row["trial"]) if "trial" in row else i,
                 "fold_scores": [s if math.isfinite(s) else None for s in folds],
                 "fit_seconds": seconds,
                 "n_params": None if n_params is None or pd.isna(n_params) else int(n_params),
                 "worker": str(row.get("worker", "")), "device": str(row.get("device", ""))}
        if not complete:
            reason = row.get("reason")
            attrs["reason"] = str(reason) if isinstance(reason, str) else "failed"
        values = {k: optuna_value(v) for k, v in params.items()}
        trial = FrozenTrial(
            number=i, trial_id=i,
            state=TrialState.COMPLETE if complete else TrialState.FAIL,
            value=float(row["mean_score"]) if complete else None,
            datetime_start=end - dt.timedelta(seconds=seconds) if seconds > 0 else end,
            datetime_complete=end, params=values,
            distributions={k: distributions[k] for k in values},
            user_attrs=attrs, system_attrs={}, intermediate_values={},
        )
        out.append(trial)
    return out


def optuna_study(strategies: Sequence[StrategyTrials], *, storage: Any = None,
                 study_name: str | None = None, distributions: Mapping[str, Any] | None = None
                 ) -> Any:
    """An Optuna study holding the trials of ``strategies`` (in memory by default)."""
    import optuna

    if distributions is None:
        distributions = optuna_distributions(
            [p for s in strategies for p in s["params"]], _space_of(strategies))
    trials = [t for s in strategies for t in frozen_trials(s, distributions)]
    with quiet_optuna():
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    direction="maximize")
        study.add_trials(trials)
    return study


def _space_of(strategies: Sequence[StrategyTrials]) -> SearchSpace | None:
    spaces = [s.get("space") for s in strategies if s.get("space") is not None]
    return spaces[0] if len(spaces) == 1 or (spaces and all(x == spaces[0] for x in spaces)) \
        else None


def study_name(run_name: str, strategy: str) -> str:
    """The Optuna study name of one strategy of a run."""
    return f"{run_name}-{strategy}"
