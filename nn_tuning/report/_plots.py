"""The report's plots, drawn with matplotlib from stored trials only.

Each function writes one PNG and returns False when there is nothing to draw.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..result import partial_budget
from ..tensorboard_logs import param_columns
from ._importance import STUDY

__all__ = ["plot_best", "plot_params", "plot_parallel", "plot_size", "plot_importance",
           "pareto_front"]

_DPI = 110


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _order(data: dict[str, Any]) -> np.ndarray:
    t = data["trials"]
    return np.argsort(t["trial"].to_numpy(), kind="stable") if "trial" in t else np.arange(len(t))


def best_so_far(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Trial numbers, seconds and best score so far; the flag says the seconds are wall time."""
    order = _order(data)
    t = data["trials"].iloc[order]
    score = pd.to_numeric(t["mean_score"], errors="coerce")
    best = score.cummax().ffill().to_numpy(dtype=float)
    elapsed = data.get("elapsed")
    if elapsed is not None and len(elapsed) == len(order):
        return np.arange(1, len(t) + 1), np.asarray(elapsed, dtype=float)[order], best, True
    seconds = pd.to_numeric(t.get("fit_seconds", 0), errors="coerce").fillna(0).cumsum()
    return np.arange(1, len(t) + 1), np.asarray(seconds, dtype=float), best, False


def plot_best(runs: dict[str, dict[str, Any]], scoring: str, path: Path) -> bool:
    """Best CV score so far against trial number and against wall-clock time."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    drawn = summed = False
    for name, data in runs.items():
        if not len(data["trials"]):
            continue
        n, sec, best, wall = best_so_far(data)
        label = name if wall else f"{name} (summed trial time)"
        summed |= not wall
        ax1.step(n, best, where="post", marker="o", ms=3, label=name)
        ax2.step(sec, best, where="post", marker="o", ms=3, label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax1.set(xlabel="trial number", ylabel=f"best CV {scoring} so far",
            title="Best score against trials")
    ax2.set(xlabel="elapsed wall-clock time (s)" + (" *" if summed else ""),
            ylabel=f"best CV {scoring} so far", title="Best score against time")
    ax1.xaxis.get_major_locator().set_params(integer=True)
    ax1.legend()
    ax2.legend(fontsize=8)
    _save(fig, path)
    return True


def _sort_key(text: str) -> tuple[int, Any]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def plot_params(runs: dict[str, dict[str, Any]], scoring: str, path: Path) -> bool:
    """Each trial's CV score against the value of each hyperparameter."""
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
        data = pd.concat(frames).dropna(subset=[param]).reset_index(drop=True)
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
    _save(fig, path)
    return True


def plot_parallel(parts: list[dict[str, Any]], params: list[str], scoring: str,
                  path: Path) -> bool:
    """Optuna's parallel-coordinates plot: one line per trial, coloured by CV score."""
    if len(params) < 1 or sum(len(p["params"]) for p in parts) < 2:
        return False
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    from ._optuna import optuna_study

    study = optuna_study(parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning, matplotlib's limits
        ax = plot_parallel_coordinate(study, params=params, target_name=f"CV {scoring}")
    fig = ax.figure
    fig.set_size_inches(max(7.0, 1.6 * (len(params) + 1) + 2), 4.8)
    ax.set_title(f"Parallel coordinates: {len(study.trials)} complete trials, "
                 "every strategy")
    fig.tight_layout()
    _save(fig, path)
    plt.close("all")
    return True


def pareto_front(size: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both fewer parameters and higher score,
    by increasing size."""
    order = np.lexsort((-score, size))
    front, best = [], -math.inf
    for i in order:
        if score[i] > best:
            front.append(i)
            best = score[i]
    return np.asarray(front, dtype=int)


def plot_size(runs: dict[str, dict[str, Any]], scoring: str, path: Path,
              simplest: dict[str, Any] | None) -> bool:
    """CV score against trainable parameters, the Pareto front and the smallest good network."""
    import matplotlib.pyplot as plt

    frames = []
    for name, data in runs.items():
        t = data["trials"]
        if not len(t) or "n_params" not in t:
            continue
        keep = (t["state"] == "complete") & t["n_params"].notna()
        if data.get("budget_epochs"):
            keep &= ~partial_budget(t, data["budget_epochs"])
        frames.append(pd.DataFrame({"size": pd.to_numeric(t["n_params"][keep]),
                                    "score": pd.to_numeric(t["mean_score"][keep]),
                                    "strategy": name}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not len(table):
        return False
    fig, ax = plt.subplots(figsize=(8, 4.6), constrained_layout=True)
    for name, part in table.groupby("strategy", sort=False):
        ax.scatter(part["size"], part["score"], s=22, alpha=0.75, label=name)
    size, score = table["size"].to_numpy(float), table["score"].to_numpy(float)
    front = pareto_front(size, score)
    ax.step(size[front], score[front], where="post", color="black", lw=1.2, zorder=1,
            label="Pareto front")
    ax.scatter(size[front], score[front], s=70, facecolors="none", edgecolors="black", zorder=3)
    if simplest is not None:
        ax.axhline(simplest["threshold"], color="grey", ls=":", lw=1,
                   label="best − 1 SE")
        ax.scatter([simplest["n_params"]], [simplest["score"]], marker="*", s=260,
                   color="gold", edgecolors="black", zorder=4, label="smallest good network")
    if size.min() > 0 and size.max() / size.min() > 20:
        ax.set_xscale("log")
    ax.set(xlabel="trainable parameters", ylabel=f"CV {scoring}",
           title="Score against network size (full-budget trials)")
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def plot_importance(found: dict[str, dict[str, Any]], path: Path) -> bool:
    """fANOVA importances: one panel per strategy and one for the whole study."""
    import matplotlib.pyplot as plt

    panels = [(k, v) for k, v in found.items() if v["importances"]]
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    height = max(2.6, 0.35 * max(len(v["importances"]) for _, v in panels) + 1.4)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, height * rows), squeeze=False,
                             constrained_layout=True)
    for ax, (name, v) in zip(axes.flat, panels):
        items = sorted(v["importances"].items(), key=lambda kv: kv[1])
        colour = "tab:blue" if v["reliable"] else "tab:orange"
        ax.barh([k for k, _ in items], [x for _, x in items], color=colour,
                hatch=None if v["reliable"] else "//")
        ax.set_xlim(0, 1)
        flag = "" if v["reliable"] else " (unreliable)"
        ax.set_title(f"{name}: {v['n_trials']} trials{flag}",
                     fontsize=10, fontweight="bold" if name == STUDY else "normal")
        ax.set_xlabel("fANOVA importance")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _save(fig, path)
    return True
