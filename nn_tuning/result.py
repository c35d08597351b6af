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

__all__ = ["TrialState", "Trial", "TuningResult", "write_atomic"]


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
    """One row per trial: hyperparameters, scores, per-fold scores, time and state."""
    rows = []
    budgets = any(t.budget is not None for t in trials)
    for t in trials:
        row: dict[str, Any] = {"trial": t.number}
        row.update({k: (json.dumps(v) if isinstance(v, (list, tuple)) else v)
                    for k, v in t.params.items()})
        if budgets:
            row["budget"] = t.budget
        row.update(mean_score=t.mean_score, std_score=t.std_score)
        for i, s in enumerate(t.fold_scores):
            row[f"fold{i}_score"] = s
        row.update(fit_seconds=t.fit_seconds, state=t.state.value, reason=t.reason,
                   worker=t.worker, device=t.device)
        rows.append(row)
    return pd.DataFrame(rows)


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
