"""Read a run folder: what each strategy stored, finished or not.

Each strategy folder holds ``trials.db`` (every trial, committed as it
finishes, with its finish time and the run's sessions), and at the end
``trials.csv``, ``summary.json`` and ``space.json``. A run still going or
killed has only ``trials.db`` (and perhaps ``trials.csv``): its summary is
rebuilt from the trials and marked partial. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, NNTuningError
from ..result import TrialState, one_standard_error, trials_frame
from ..space import SearchSpace
from ..store import TrialStore
from ..strategies import STRATEGIES
from ..tensorboard_logs import param_columns

__all__ = ["load_run", "run_name", "read_json"]

logger = logging.getLogger("nn_tuning")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_name(run_dir: str | Path) -> str:
    """The experiment's name (``experiment.json``), else the folder's name."""
    run = Path(run_dir)
    return str(read_json(run / "experiment.json").get("name") or run.resolve().name)


def _from_store(path: Path) -> dict[str, Any]:
    store = TrialStore(path, readonly=True)
    try:
        trials = store.trials()
        return {"trials": trials_frame(trials), "params": [dict(t.params) for t in trials],
                "finished_at": store.finished_at(), "elapsed": store.elapsed_seconds()}
    finally:
        store.close()


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("["):
        try:
            return tuple(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _from_csv(path: Path) -> dict[str, Any]:
    trials = pd.read_csv(path)
    names = param_columns(trials)
    params = [{n: _decode(row[n]) for n in names if not pd.isna(row[n])}
              for _, row in trials.iterrows()]
    return {"trials": trials, "params": params, "finished_at": None, "elapsed": None}


def _space(folder: Path, experiment: dict[str, Any]) -> SearchSpace | None:
    for data in (read_json(folder / "space.json"), experiment.get("space") or {}):
        if data:
            try:
                return SearchSpace.from_dict(data)
            except NNTuningError:
                continue
    return None


def _partial_summary(name: str, trials: pd.DataFrame, params: list[dict[str, Any]],
                     experiment: dict[str, Any], elapsed: list[float] | None) -> dict[str, Any]:
    score = pd.to_numeric(trials.get("mean_score"), errors="coerce") if len(trials) else None
    complete = (trials["state"] == TrialState.COMPLETE.value) if len(trials) else None
    best = None
    if score is not None and complete.any():
        best = int(score.where(complete).idxmax())
    training = experiment.get("training", {})
    return {
        "strategy": name, "scoring": training.get("scoring"),
        "trials_run": len(trials),
        "trials_failed": int((~complete).sum()) if complete is not None else 0,
        "best_cv_score": float(score.iloc[best]) if best is not None else math.nan,
        "best_params": params[best] if best is not None else {},
        "wall_seconds": elapsed[-1] if elapsed else None,
        "cv_folds": training.get("cv"), "epochs": training.get("epochs"),
        "batch_size": training.get("batch_size"), "seed": training.get("seed"),
        "budget": {k: v for k, v in experiment.get("strategies", {}).get(name, {}).items()
                   if k in ("max_trials", "max_seconds")},
    }


def _partial_budgets(name: str, trials: pd.DataFrame) -> bool:
    """Whether strategy ``name``'s trials may train on part of the epochs (Hyperband's do).

    Its class says so; for a strategy this process does not know (another
    package's, not imported here), its trials' ``budget`` column does.
    """
    try:
        return bool(STRATEGIES[name].partial_budgets)
    except (KeyError, NNTuningError):
        return "budget" in trials


def _strategy(folder: Path, experiment: dict[str, Any]) -> dict[str, Any] | None:
    summary = read_json(folder / "summary.json") if (folder / "summary.json").is_file() else None
    data = None
    sources = ((folder / "trials.db", _from_store), (folder / "trials.csv", _from_csv))
    for source, reader in sources:
        if source.is_file():
            try:
                data = reader(source)
                break
            except (NNTuningError, OSError, ValueError, pd.errors.ParserError) as exc:
                logger.warning("%s: cannot read %s (%s)", folder.name, source.name, exc)
    if data is None:
        if summary is not None:
            raise ConfigError(f"{folder}: cannot read the strategy's trials (no readable "
                              "trials.db or trials.csv)")
        return None
    name = (summary or {}).get("strategy", folder.name)
    partial = summary is None
    if partial:
        summary = _partial_summary(name, data["trials"], data["params"], experiment,
                                   data["elapsed"])
    epochs = summary.get("epochs") or experiment.get("training", {}).get("epochs")
    data.update(
        summary=summary, folder=folder.name, partial=partial, space=_space(folder, experiment),
        budget_epochs=int(epochs) if epochs and _partial_budgets(name, data["trials"]) else None,
    )
    data["simplest"] = one_standard_error(data["trials"], data["budget_epochs"])
    if data["simplest"] is not None:
        data["simplest"]["params"] = data["params"][data["simplest"].pop("row")]
    return data


def load_run(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per strategy, in strategy order: what its folder of ``run_dir`` holds.

    Returns
    -------
    dict
        Strategy name to a dict with ``summary`` (``summary.json``, or one
        rebuilt from the trials when the strategy has not finished),
        ``partial`` (True then), ``trials`` (the trials table), ``params``
        (each trial's hyperparameters), ``finished_at`` and ``elapsed``
        (per trial: Unix finish time and wall seconds of running, or None
        when not recorded), ``space``, ``budget_epochs`` (Hyperband's full
        budget) and ``simplest`` (the one-standard-error choice, or None).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"run folder not found: {str(run)!r}")
    experiment = read_json(run / "experiment.json")
    found = {}
    for sub in sorted(p for p in run.iterdir() if p.is_dir()):
        if not any((sub / f).is_file() for f in ("summary.json", "trials.db", "trials.csv")):
            continue
        data = _strategy(sub, experiment)
        if data is not None:
            found[data["summary"].get("strategy", sub.name)] = data
    if not found:
        raise ConfigError(f"run folder {str(run)!r} holds no strategy results (no "
                          "<strategy>/trials.db or summary.json); is it an nn-tune run folder?")
    # The registry's order (its built-in strategies first), then strategies it does not know.
    order = {name: i for i, name in enumerate(STRATEGIES)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
