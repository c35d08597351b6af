"""Trials and the result of a search."""

from __future__ import annotations

import enum
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .space import SearchSpace

__all__ = ["TrialState", "Trial", "TuningResult", "write_atomic", "one_standard_error",
           "partial_budget"]


class TrialState(str, enum.Enum):
    """What became of a trial."""

    COMPLETE = "complete"
    FAILED = "failed"


@dataclass
class Trial:
    """One configuration evaluated on every CV fold."""

    params: dict[str, Any]
    state: TrialState
    fold_scores: list[float] = field(default_factory=list)
    fit_seconds: float = 0.0
    reason: str | None = None
    number: int | None = None
    worker: str = "main"
    device: str = "cpu"
    budget: int | None = None  # Hyperband: the epochs this trial trained (not a builder argument)
    n_params: int | None = None  # trainable parameters of the trained model; None: unknown
    engine: str = "keras"  # "stacked": trained in a stack, fit_seconds its share of the stack
    # Successive halving: mean CV score at each rung reached (epochs -> score).
    intermediate: dict[int, float] | None = None

    @property
    def mean_score(self) -> float:
        if self.state is not TrialState.COMPLETE or not self.fold_scores:
            return math.nan
        return float(np.mean(self.fold_scores))

    @property
    def std_score(self) -> float:
        if self.state is not TrialState.COMPLETE or not self.fold_scores:
            return math.nan
        return float(np.std(self.fold_scores))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def trials_frame(trials: list[Trial], n_folds: int | None = None) -> pd.DataFrame:
    """One row per trial: hyperparameters, scores, per-fold scores, time, size and state.

    ``n_params`` (trainable parameters) is empty where it is unknown. ``engine``
    says how the trial trained: ``keras`` (its own model per fold) or
    ``stacked`` (with others as one model; ``fit_seconds`` is then its share of
    its stack's time).
    """
    budgets = any(t.budget is not None for t in trials)
    frame = pd.DataFrame([trial_row(t, budgets) for t in trials])
    if "n_params" in frame:
        frame["n_params"] = frame["n_params"].astype("Int64")
    return frame


def trial_row(t: Trial, budget: bool) -> dict[str, Any]:
    """The row of trial ``t`` in :func:`trials_frame` (with a ``budget`` column if ``budget``)."""
    row: dict[str, Any] = {"trial": t.number}
    row.update({k: (json.dumps(v) if isinstance(v, (list, tuple)) else v)
                for k, v in t.params.items()})
    row.update(mean_score=t.mean_score, std_score=t.std_score)
    if budget:  # not a hyperparameter: after the scores, not among the params
        row["budget"] = t.budget
    for i, s in enumerate(t.fold_scores):
        row[f"fold{i}_score"] = s
    row.update(fit_seconds=t.fit_seconds, engine=t.engine, n_params=t.n_params,
               state=t.state.value, reason=t.reason, worker=t.worker, device=t.device)
    return row


def partial_budget(trials: pd.DataFrame, budget_epochs: int | None) -> np.ndarray:
    """True for the Hyperband trials trained on less than ``budget_epochs`` epochs.

    The epochs are the ``budget`` column (run folders written before it had
    them as an ``epochs`` column).
    """
    column = "budget" if "budget" in trials else "epochs" if "epochs" in trials else None
    if budget_epochs is None or column is None:
        return np.zeros(len(trials), dtype=bool)
    return (pd.to_numeric(trials[column], errors="coerce") < budget_epochs).to_numpy()


def fold_score_columns(trials: pd.DataFrame) -> list[str]:
    """The ``fold{i}_score`` columns of a trials table, in fold order."""
    cols = [c for c in trials.columns if c.startswith("fold") and c.endswith("_score")
            and c[4:-6].isdigit()]
    return sorted(cols, key=lambda c: int(c[4:-6]))


def one_standard_error(trials: pd.DataFrame, budget_epochs: int | None = None
                       ) -> dict[str, Any] | None:
    """The smallest good network: the one-standard-error rule over trainable parameters.

    Among complete trials, take the best mean CV score and its standard error
    (the standard deviation of its fold scores with ``ddof=1`` over the square
    root of the number of folds). The choice is the trial with the fewest
    trainable parameters whose mean score is at least ``best - SE``; ties go
    to the higher score, then the earlier trial. This is scikit-learn's
    ``refit=callable`` example, with size as the measure of simplicity.

    Parameters
    ----------
    trials : pandas.DataFrame
        A trials table (``TuningResult.trials`` or ``trials.csv``), with
        ``n_params`` and ``fold{i}_score`` columns.
    budget_epochs : int, optional
        Hyperband's full budget: trials whose ``budget`` column is smaller were
        trained on part of it and are left out.

    Returns
    -------
    dict or None
        ``trial`` (its row's ``trial`` number), ``row`` (position in
        ``trials``), ``score``, ``n_params``, ``best_trial``, ``best_score``,
        ``std_error``, ``threshold``. None when no complete full-budget trial
        has a known parameter count.

    Examples
    --------
    >>> table = pd.DataFrame({"trial": [0, 1], "mean_score": [0.90, 0.89],
    ...     "fold0_score": [0.95, 0.88], "fold1_score": [0.85, 0.90],
    ...     "n_params": [1000, 50], "state": ["complete", "complete"]})
    >>> one_standard_error(table)["trial"]
    1
    """
    if trials is None or not len(trials) or "n_params" not in trials:
        return None
    score = pd.to_numeric(trials["mean_score"], errors="coerce")
    ok = (trials["state"] == TrialState.COMPLETE.value).to_numpy() & np.isfinite(score.to_numpy())
    if budget_epochs is not None:
        ok &= ~partial_budget(trials, budget_epochs)
    size = pd.to_numeric(trials["n_params"], errors="coerce").to_numpy(dtype=float)
    known = ok & np.isfinite(size)
    if not known.any():
        return None
    pos = np.flatnonzero(ok)
    best = pos[np.argmax(score.to_numpy()[pos])]  # the first of equal bests
    folds = trials.iloc[best][fold_score_columns(trials)].to_numpy(dtype=float)
    folds = folds[np.isfinite(folds)]
    se = float(np.std(folds, ddof=1) / math.sqrt(len(folds))) if len(folds) > 1 else 0.0
    threshold = float(score.iloc[best]) - se
    good = np.flatnonzero(known & (score.to_numpy() >= threshold))
    if not len(good):  # the best itself has no count
        return None
    chosen = min(good, key=lambda i: (size[i], -score.iloc[i], i))
    number = trials["trial"].iloc[chosen] if "trial" in trials else chosen
    best_number = trials["trial"].iloc[best] if "trial" in trials else best
    return {"trial": int(number), "row": int(chosen), "score": float(score.iloc[chosen]),
            "n_params": int(size[chosen]), "best_trial": int(best_number),
            "best_score": float(score.iloc[best]), "std_error": se, "threshold": threshold}


@dataclass
class TuningResult:
    """What ``tune`` returns.

    Attributes
    ----------
    trials : pandas.DataFrame
        One row per trial: each hyperparameter as a column, ``mean_score``,
        ``std_score``, ``fold{i}_score``, ``fit_seconds``, ``state``, ``reason``.
    best_params : dict
        The configuration with the best mean CV score.
    best_score : float
        Its mean CV score (greater is better, as in scikit-learn's scorers).
    best_model : keras.Model or None
        Refit on all the data given (None with ``refit=False``).
    best_estimator : scikeras wrapper or None
        The fitted wrapper holding ``best_model``.
    strategy : str
    space : SearchSpace or None
    scoring : str
    wall_seconds : float
    resumed_trials : int
        Trials taken from the store of an earlier run instead of trained.
    trial_params : list of dict
        The hyperparameters of each row of ``trials``, as the builder gets them.
    simplest : dict or None
        The smallest good network (:func:`one_standard_error`): ``params``,
        ``score``, ``n_params``, ``trial``, ``std_error`` and the best it was
        measured against; None when no parameter count is known.
    simplest_params : dict or None
        Its hyperparameters.
    refit_choice : {"best", "simplest"}
        Which of the two ``best_model`` is.
    """

    trials: pd.DataFrame
    best_params: dict[str, Any]
    best_score: float
    best_model: Any
    strategy: str
    space: SearchSpace | None
    scoring: str
    best_estimator: Any = None
    wall_seconds: float = 0.0
    resumed_trials: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    trial_params: list[dict[str, Any]] = field(default_factory=list)
    refit_choice: str = "best"

    @property
    def simplest(self) -> dict[str, Any] | None:
        choice = one_standard_error(self.trials, self.extra.get("budget_epochs"))
        if choice is None:
            return None
        row = choice.pop("row")
        params = (dict(self.trial_params[row]) if row < len(self.trial_params)
                  else {k: self.trials.iloc[row][k] for k in self.best_params})
        return {"params": params, **choice}

    @property
    def simplest_params(self) -> dict[str, Any] | None:
        simplest = self.simplest
        return simplest["params"] if simplest else None

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def n_failed(self) -> int:
        return int((self.trials["state"] == TrialState.FAILED.value).sum()) if len(self.trials) else 0

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (what ``summary.json`` holds)."""
        return {
            "strategy": self.strategy,
            "scoring": self.scoring,
            "trials_run": self.n_trials,
            "trials_failed": self.n_failed,
            "resumed_trials": self.resumed_trials,
            "best_cv_score": self.best_score,
            "best_params": self.best_params,
            "simplest": self.simplest,
            "refit": self.refit_choice,
            "wall_seconds": round(self.wall_seconds, 3),
            **self.extra,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``trials.csv``, ``best_params.json``, ``summary.json``,
        ``space.json`` and ``best_model.keras`` (Keras' own format, never a pickle)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "trials.csv", self.trials.to_csv(index=False))
        write_atomic(out / "best_params.json", json.dumps(self.best_params, indent=2, default=str))
        write_atomic(out / "summary.json", json.dumps(self.summary(), indent=2, default=str))
        if self.space is not None:
            write_atomic(out / "space.json", json.dumps(self.space.to_dict(), indent=2))
        if self.best_model is not None:
            tmp = out / ".best_model.tmp.keras"
            self.best_model.save(tmp)
            os.replace(tmp, out / "best_model.keras")
        return out
