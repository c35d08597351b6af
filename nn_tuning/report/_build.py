"""Write ``report.md`` and ``report.html`` and their plots from a run folder."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..result import one_standard_error, partial_budget, write_atomic
from . import _plots
from ._html import markdown_to_html
from ._importance import STUDY, complete_trials, importances
from ._load import load_run, read_json

__all__ = ["build_report"]

logger = logging.getLogger("nn_tuning")

_METRIC_LABELS = {"rmse": "test RMSE", "r2": "test R²", "adjusted_r2": "test adj. R²",
                  "mae": "test MAE", "accuracy": "test accuracy", "f1_macro": "test macro F1"}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _config(params: dict[str, Any]) -> str:
    return f"`{json.dumps(params, default=str)}`"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(runs: dict[str, dict[str, Any]]) -> list[str]:
    metrics = list(dict.fromkeys(k for r in runs.values()
                                 for k in r["summary"].get("test_metrics", {})))
    head = ["strategy", "status", "trials run", "failed", "best CV score",
            *(_METRIC_LABELS.get(m, m) for m in metrics), "wall s"]
    lines = [_row(head), "|" + "---|" * len(head)]
    for name, r in runs.items():
        s = r["summary"]
        tm = s.get("test_metrics", {})
        status = "**partial**" if r["partial"] else "finished"
        if s.get("refit") == "simplest":
            status += " (refit: smallest good)"
        cells = [name, status, _fmt(s.get("trials_run")), _fmt(s.get("trials_failed")),
                 _fmt(s.get("best_cv_score")), *(_fmt(tm.get(m)) for m in metrics),
                 _fmt(s.get("wall_seconds"), 3)]
        lines.append(_row(cells))
    return lines


def _full_budget(data: dict[str, Any]) -> pd.DataFrame:
    t = data["trials"]
    if data.get("budget_epochs"):
        return t[~partial_budget(t, data["budget_epochs"])]
    return t


def _study_simplest(runs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The one-standard-error choice over every strategy's full-budget trials."""
    parts, owners = [], []
    for name, data in runs.items():
        t = _full_budget(data)
        parts.append(t)
        owners += [(name, i) for i in t.index]
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    if "n_params" not in table:
        return None
    choice = one_standard_error(table)
    if choice is None:
        return None
    name, index = owners[choice.pop("row")]
    return {**choice, "strategy": name, "params": runs[name]["params"][index]}


def _simplest_section(runs: dict[str, dict[str, Any]], study: dict[str, Any] | None
                      ) -> list[str]:
    lines = ["## Smallest good network", "",
             "The configuration with the fewest trainable parameters whose mean CV score is "
             "within one standard error of the best (standard error: the standard deviation of "
             "the best configuration's fold scores, ddof=1, over the square root of the number "
             "of folds). Hyperband trials trained on part of the epoch budget are left out.", "",
             _row(["strategy", "best CV score", "SE", "smallest good CV score",
                   "trainable params", "configuration"]), "|---|---|---|---|---|---|"]
    unknown = []
    for name, data in runs.items():
        c = data["simplest"]
        if c is None:
            counts = data["trials"].get("n_params")
            complete = data["trials"].get("state", pd.Series(dtype=str)) == "complete"
            if not complete.any():
                lines.append(_row([name, "–", "–", "–", "no complete trial yet", "–"]))
                continue
            if counts is None or counts.isna().all():
                unknown.append(name)
            lines.append(_row([name, "–", "–", "–", "unknown", "–"]))
            continue
        lines.append(_row([name, _fmt(c["best_score"]), _fmt(c["std_error"], 3),
                           _fmt(c["score"]), f"{c['n_params']:,}", _config(c["params"])]))
    lines.append("")
    if study is not None:
        lines += [f"**Whole study:** {study['strategy']} trial {study['trial']}, "
                  f"{study['n_params']:,} trainable parameters, CV score {_fmt(study['score'])} "
                  f"(best {_fmt(study['best_score'])}, SE {_fmt(study['std_error'], 3)}): "
                  f"{_config(study['params'])}", ""]
    if unknown:
        lines += [f"Trainable-parameter counts are unknown for {', '.join(unknown)}: the run "
                  "was made before counts were recorded with each trial.", ""]
    return lines


def _importance_section(found: dict[str, dict[str, Any]]) -> list[str]:
    names = [k for k, v in found.items() if v["importances"]]
    lines = ["## Hyperparameter importance", "",
             "Share of the CV score's variance each hyperparameter explains on its own "
             "(fANOVA, Optuna's `FanovaImportanceEvaluator`, seed 0), per strategy over its "
             "complete trials and over the whole study's full-budget trials.", ""]
    params = list(dict.fromkeys(p for k in names for p in found[k]["importances"]))
    if params:
        lines += [_row(["hyperparameter", *names]), "|" + "---|" * (len(names) + 1)]
        for p in params:
            lines.append(_row([p, *(_fmt(found[k]["importances"].get(p), 2) for k in names)]))
        lines.append("")
    notes = [f"- **{k}**: {v['note']}" for k, v in found.items() if v["note"]]
    if notes:
        lines += ["Not to be trusted:" if any("unreliable" in n for n in notes) else "", *notes,
                  ""]
    return lines


def _partial_banner(runs: dict[str, dict[str, Any]]) -> list[str]:
    partial = [f"{k} ({len(v['trials'])} trials so far)" for k, v in runs.items()
               if v["partial"]]
    if not partial:
        return []
    return [f"> **Partial results.** Still running or stopped before the end: "
            f"{', '.join(partial)}. Read from each strategy's `trials.db`; no test metrics and "
            "no saved model until a strategy finishes.", ""]


def _header(run: Path, runs: dict[str, dict[str, Any]], exp: dict[str, Any],
            data: dict[str, Any], scoring: str) -> list[str]:
    first = next(iter(runs.values()))["summary"]
    tr = exp.get("training", {})
    lines = [f"# nn-tune report: {exp.get('name', run.name)}", "", *_partial_banner(runs)]
    if exp.get("description"):
        lines += [exp["description"], ""]
    return lines + [
        f"- config: `{exp.get('source', '?')}` (as run: `config.toml`, resolved: "
        "`experiment.json`; package versions: `versions.json`)",
        f"- data: {data.get('source', '?')}, target `{data.get('target', '?')}`, "
        f"{data.get('train_rows', '?')} training / {data.get('test_rows', '?')} test rows",
        f"- builder: `{exp.get('builder', {}).get('name', first.get('builder', '?'))}`; "
        f"{first.get('cv_folds', tr.get('cv', '?'))}-fold CV on the training rows, same folds "
        f"for every strategy; epochs {tr.get('epochs', first.get('epochs'))}, batch size "
        f"{tr.get('batch_size', first.get('batch_size'))}, "
        f"seed {tr.get('seed', first.get('seed'))}",
        *_fit_lines(runs, tr),
        f"- CV score: `{scoring}` (greater is better)"
        + (" on the **standardised** target; test metrics are in the target's own units"
           if first.get("target_scaled") else ""), "",
    ]


def _fit_lines(runs: dict[str, dict[str, Any]], training: dict[str, Any]) -> list[str]:
    """The run's ``model.fit`` settings, and per strategy what they kept out of the stacks."""
    lines = [f"- model.fit settings (`[training.fit]`): `{json.dumps(training['fit'])}`"] \
        if training.get("fit") else []
    for name, r in runs.items():
        for reason, n in (r["summary"].get("not_stacked") or {}).items():
            lines.append(f"- {name}: {n} configuration(s) not stacked, trained one at a time: "
                         f"{reason}")
    return lines


def _plots_section(run: Path, runs: dict[str, dict[str, Any]], scoring: str,
                   found: dict[str, dict[str, Any]], study: dict[str, Any] | None) -> list[str]:
    lines = ["## Plots", ""]
    if _plots.plot_best(runs, scoring, run / "best_so_far.png"):
        summed = [k for k, v in runs.items() if v.get("elapsed") is None and len(v["trials"])]
        lines += ["![best score so far](best_so_far.png)", "",
                  "Time is wall-clock time while the run was going (time stopped between a "
                  "kill and a resume is not counted)"
                  + (f"; for {', '.join(summed)} no wall-clock record exists (run made before "
                     "they were kept, or from `trials.csv` alone) and summed trial time is "
                     "shown instead (*)" if summed else "") + ".", ""]
    if _plots.plot_params(runs, scoring, run / "score_by_hyperparameter.png"):
        lines += ["![CV score by hyperparameter value](score_by_hyperparameter.png)", ""]
    parts = [complete_trials(d, full_budget_only=True) for d in runs.values()]
    shared = found.get(STUDY, next(iter(found.values()), {})).get("params", [])
    if _plots.plot_parallel(parts, shared, scoring, run / "parallel_coordinates.png"):
        lines += ["![parallel coordinates](parallel_coordinates.png)", "",
                  "One line per complete full-budget trial over the hyperparameters every "
                  "strategy varied, coloured by CV score.", ""]
    if _plots.plot_size(runs, scoring, run / "score_vs_size.png", study):
        lines += ["![CV score against trainable parameters](score_vs_size.png)", ""]
    return lines


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.md``, ``report.html`` and their plots in ``run_dir``.

    Works from the run folder alone, finished or not: a strategy still going
    or killed is read from its ``trials.db`` and marked partial. Needs no
    model and trains nothing.

    Parameters
    ----------
    run_dir : path
        A folder written by ``nn-tune run`` / ``compare``.

    Returns
    -------
    Path
        ``run_dir / "report.md"`` (``report.html`` is beside it).
    """
    run = Path(run_dir)
    runs = load_run(run)
    exp = read_json(run / "experiment.json")
    data = read_json(run / "data.json")
    scoring = next((r["summary"]["scoring"] for r in runs.values()
                    if r["summary"].get("scoring")), None) or "score"
    found = importances(runs)
    study = _study_simplest(runs)
    refit_simplest = any(r["summary"].get("refit") == "simplest" for r in runs.values())
    lines = [*_header(run, runs, exp, data, scoring), "## Strategies", "", *_table(runs), "",
             "Test metrics are those of the "
             + ("configuration chosen for refit (the best, or the smallest good network where "
                "marked)" if refit_simplest else "best configuration")
             + " refit on all training rows and scored once on the held-out test rows.", "",
             "## Best configurations", ""]
    for name, r in runs.items():
        best = r["summary"].get("best_params")
        lines.append(f"- **{name}** (budget {json.dumps(r['summary'].get('budget', {}))}): "
                     + (_config(best) if best else "no complete trial yet"))
    lines += ["", *_simplest_section(runs, study), *_importance_section(found)]
    if _plots.plot_importance(found, run / "importance.png"):
        lines += ["![hyperparameter importance](importance.png)", ""]
    lines += _plots_section(run, runs, scoring, found, study)
    lines += ["## Files", "",
              "Per strategy: `trials.db` (every trial as it finished), `trials.csv`, "
              "`best_params.json`, `best_model.keras`, `summary.json`, and TensorBoard HParams "
              f"logs in `tensorboard/` (`tensorboard --logdir {run}/<strategy>/tensorboard`). "
              f"For Optuna's dashboard: `nn-tune export {run} --optuna sqlite:///study.db`, then "
              "`optuna-dashboard sqlite:///study.db`.", ""]
    text = "\n".join(lines)
    out = run / "report.md"
    write_atomic(out, text)
    title = f"nn-tune report: {exp.get('name', run.name)}"
    write_atomic(run / "report.html", markdown_to_html(text, run, title))
    logger.info("report written to %s and %s", out, run / "report.html")
    return out
