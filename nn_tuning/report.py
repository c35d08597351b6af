"""The comparison report of a run folder: tables and plots from what was stored.

Reads ``<run>/<strategy>/summary.json`` and ``trials.csv`` (never re-trains)
and writes ``report.md`` with PNG plots beside it:

- ``best_so_far.png``: best CV score so far against trial number and against
  cumulative trial time, every strategy on one chart;
- ``score_by_hyperparameter.png``: each trial's CV score against the value
  of each hyperparameter.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import ConfigError
from .result import write_atomic
from .strategies import STRATEGIES
from .tensorboard_logs import param_columns

__all__ = ["build_report", "load_run"]

logger = logging.getLogger("nn_tuning")

_METRIC_LABELS = {"rmse": "test RMSE", "r2": "test R²", "adjusted_r2": "test adj. R²",
                  "mae": "test MAE", "accuracy": "test accuracy", "f1_macro": "test macro F1"}


def load_run(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per strategy: its ``summary`` (dict) and ``trials`` (DataFrame), in strategy order."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"run folder not found: {str(run)!r}")
    found = {}
    for sub in sorted(p for p in run.iterdir() if (p / "summary.json").is_file()):
        try:
            summary = json.loads((sub / "summary.json").read_text())
            trials = pd.read_csv(sub / "trials.csv")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{sub}: cannot read the strategy's results: {exc}") from None
        found[summary.get("strategy", sub.name)] = {"summary": summary, "trials": trials,
                                                    "folder": sub.name}
    if not found:
        raise ConfigError(f"run folder {str(run)!r} holds no strategy results "
                          "(no <strategy>/summary.json); is it an nn-tune run folder?")
    order = {name: i for i, name in enumerate(STRATEGIES)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(runs: dict[str, dict[str, Any]]) -> list[str]:
    metrics = list(dict.fromkeys(k for r in runs.values()
                                 for k in r["summary"].get("test_metrics", {})))
    head = ["strategy", "trials run", "failed", "best CV score",
            *(_METRIC_LABELS.get(m, m) for m in metrics), "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in runs.items():
        s = r["summary"]
        tm = s.get("test_metrics", {})
        cells = [name, _fmt(s.get("trials_run")), _fmt(s.get("trials_failed")),
                 _fmt(s.get("best_cv_score")), *(_fmt(tm.get(m)) for m in metrics),
                 _fmt(s.get("wall_seconds"), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _best_so_far(trials: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = trials.sort_values("trial") if "trial" in trials else trials
    score = pd.to_numeric(t["mean_score"], errors="coerce")
    best = score.cummax().ffill().to_numpy(dtype=float)
    seconds = pd.to_numeric(t.get("fit_seconds", 0), errors="coerce").fillna(0).cumsum()
    return np.arange(1, len(t) + 1), np.asarray(seconds, dtype=float), best


def _plot_best(runs: dict[str, dict[str, Any]], scoring: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for name, r in runs.items():
        n, sec, best = _best_so_far(r["trials"])
        ax1.step(n, best, where="post", marker="o", ms=3, label=name)
        ax2.step(sec, best, where="post", marker="o", ms=3, label=name)
    ax1.set(xlabel="trial number", ylabel=f"best CV {scoring} so far",
            title="Best score against trials")
    ax2.set(xlabel="cumulative trial time (s)", ylabel=f"best CV {scoring} so far",
            title="Best score against time")
    ax1.xaxis.get_major_locator().set_params(integer=True)
    ax1.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_params(runs: dict[str, dict[str, Any]], scoring: str, path: Path) -> bool:
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(c for r in runs.values() for c in param_columns(r["trials"])))
    if not names:
        return False
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False,
                             constrained_layout=True)
    for ax, param in zip(axes.flat, names):
        frames = [r["trials"][[param, "mean_score"]].assign(strategy=s)
                  for s, r in runs.items() if param in r["trials"]]
        data = pd.concat(frames).dropna(subset=[param])
        numeric = pd.to_numeric(data[param], errors="coerce")
        categorical = numeric.isna().any() or numeric.nunique() <= 8
        if categorical:
            cats = sorted(data[param].astype(str).unique(), key=_sort_key)
            pos = {c: i for i, c in enumerate(cats)}
            x = data[param].astype(str).map(pos).astype(float)
            ax.set_xticks(range(len(cats)), cats, rotation=30 if len(cats) > 4 else 0)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        else:
            x = numeric
            if numeric.min() > 0 and numeric.max() / numeric.min() > 100:
                ax.set_xscale("log")
        rng = np.random.default_rng(0)
        for strategy in data["strategy"].unique():
            sel = (data["strategy"] == strategy).to_numpy()
            jitter = rng.uniform(-0.12, 0.12, sel.sum()) if categorical else 0
            ax.scatter(x[sel] + jitter, data["mean_score"][sel], s=14, alpha=0.7, label=strategy)
        ax.set(xlabel=param, ylabel=f"CV {scoring}")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _sort_key(text: str) -> tuple[int, Any]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` and its plots in ``run_dir`` from the stored results.

    Parameters
    ----------
    run_dir : path
        A folder written by ``nn-tune run`` / ``compare``.

    Returns
    -------
    Path
        ``run_dir / "report.md"``.
    """
    run = Path(run_dir)
    runs = load_run(run)
    exp = _read_json(run / "experiment.json")
    data = _read_json(run / "data.json")
    first = next(iter(runs.values()))["summary"]
    scoring = first.get("scoring", "score")
    lines = [f"# nn-tune report: {exp.get('name', run.name)}", ""]
    if exp.get("description"):
        lines += [exp["description"], ""]
    tr = exp.get("training", {})
    lines += [
        f"- config: `{exp.get('source', '?')}` (as run: `config.toml`, resolved: "
        "`experiment.json`; package versions: `versions.json`)",
        f"- data: {data.get('source', '?')}, target `{data.get('target', '?')}`, "
        f"{data.get('train_rows', '?')} training / {data.get('test_rows', '?')} test rows",
        f"- builder: `{exp.get('builder', {}).get('name', first.get('builder', '?'))}`; "
        f"{first.get('cv_folds', tr.get('cv', '?'))}-fold CV on the training rows, same folds "
        f"for every strategy; epochs {tr.get('epochs', first.get('epochs'))}, batch size "
        f"{tr.get('batch_size', first.get('batch_size'))}, "
        f"seed {tr.get('seed', first.get('seed'))}",
        f"- CV score: `{scoring}` (greater is better)"
        + (" on the **standardised** target; test metrics are in the target's own units"
           if first.get("target_scaled") else ""),
        "", "## Strategies", "", *_table(runs), "",
        "Test metrics are those of the best configuration refit on all training rows and "
        "scored once on the held-out test rows.", "", "## Best configurations", "",
    ]
    for name, r in runs.items():
        lines.append(f"- **{name}** (budget {json.dumps(r['summary'].get('budget', {}))}): "
                     f"`{json.dumps(r['summary'].get('best_params', {}), default=str)}`")
    lines += ["", "## Plots", ""]
    _plot_best(runs, scoring, run / "best_so_far.png")
    lines += ["![best score so far](best_so_far.png)", ""]
    if _plot_params(runs, scoring, run / "score_by_hyperparameter.png"):
        lines += ["![CV score by hyperparameter value](score_by_hyperparameter.png)", ""]
    lines += ["## Files", "",
              "Per strategy: `trials.csv`, `best_params.json`, `best_model.keras`, "
              "`summary.json`, and TensorBoard HParams logs in `tensorboard/` "
              f"(`tensorboard --logdir {run}/<strategy>/tensorboard`).", ""]
    out = run / "report.md"
    write_atomic(out, "\n".join(lines))
    logger.info("report written to %s", out)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
