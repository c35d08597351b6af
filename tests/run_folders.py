"""Run folders as nn-tune leaves them, the tiny configs that make them, and their stores.

:func:`make_run` writes trial records only (no models) through the real
trial store: the report and the export read records, never models. Scores
depend on the learning rate alone (best near 10**-2.5), so the importance a
report finds can be checked. :func:`tiny_config` writes a tiny Advertising
study for ``nn-tune``; :func:`stored_rows` reads a store the way another
process sees it (while it is being written).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np

from nn_tuning.result import Trial, TrialState, trials_frame, write_atomic
from nn_tuning.space import SearchSpace
from nn_tuning.store import TrialStore

SPACE = SearchSpace.from_dict({
    "neurons": [4, 8, 16, 32],
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "activation": ["relu", "tanh"],
    "hidden_layers": [[4, 4], [16]],
})
EPOCHS = 6
FOLDS = 3


def size(params: dict) -> int:
    """Trainable parameters of a 3-input MLP (what mlp_regressor builds)."""
    layers = [3, *params.get("hidden_layers", [params["neurons"]]), 1]
    return sum(a * b + b for a, b in zip(layers, layers[1:]))


def _trials(strategy: str, n: int, rng: np.random.Generator, known_sizes: bool) -> list[Trial]:
    out = []
    for i in range(n):
        params = {"neurons": int(rng.choice([4, 8, 16, 32])),
                  "learning_rate": float(10 ** rng.uniform(-4, -1)),
                  "activation": str(rng.choice(["relu", "tanh"])),
                  "hidden_layers": (4, 4) if rng.uniform() < 0.5 else (16,)}
        if strategy == "manual" and i == 0:
            params["neurons"] = 5  # a config outside the space
        if strategy == "hyperband":
            params["epochs"] = int(rng.choice([2, EPOCHS]))
        if i == 2:
            out.append(Trial(params, TrialState.FAILED, fit_seconds=0.2,
                             reason="TrialFailedError: training diverged"))
            continue
        quality = -abs(math.log10(params["learning_rate"]) + 2.5)
        if params.get("epochs", EPOCHS) < EPOCHS:
            quality -= 0.5
        folds = [float(quality + rng.normal(0, 0.05)) for _ in range(FOLDS)]
        out.append(Trial(params, TrialState.COMPLETE, folds, 0.5 + 0.1 * i,
                         n_params=size(params) if known_sizes else None))
    return out


def make_run(root: Path, strategies: dict[str, int], *, unfinished: tuple[str, ...] = (),
             known_sizes: bool = True, seed: int = 0) -> Path:
    """Write a run folder with ``n`` trials per strategy; ``unfinished`` ones have
    only their ``trials.db`` (a run still going or killed)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_atomic(root / "experiment.json", json.dumps({
        "name": "demo", "source": "demo.toml", "builder": {"name": "mlp_regressor"},
        "space": SPACE.to_dict(),
        "training": {"epochs": EPOCHS, "batch_size": 40, "seed": 0, "cv": FOLDS,
                     "scoring": "neg_root_mean_squared_error"},
        "strategies": {name: {"max_trials": n} for name, n in strategies.items()},
    }))
    write_atomic(root / "data.json", json.dumps(
        {"source": "advertising", "target": "Sales", "train_rows": 160, "test_rows": 40}))
    for name, n in strategies.items():
        folder = root / name
        folder.mkdir()
        store = TrialStore(folder / "trials.db", fingerprint=f"demo-{name}")
        for trial in _trials(name, n, rng, known_sizes):
            store.add(trial)
        trials = store.trials()
        if name in unfinished:
            continue  # never closed: as a killed run leaves it
        store.close()
        frame = trials_frame(trials)
        if not known_sizes:
            frame = frame.drop(columns="n_params")
        write_atomic(folder / "trials.csv", frame.to_csv(index=False))
        best = max((t for t in trials if t.state is TrialState.COMPLETE),
                   key=lambda t: t.mean_score)
        write_atomic(folder / "space.json", json.dumps(SPACE.to_dict()))
        write_atomic(folder / "summary.json", json.dumps({
            "strategy": name, "scoring": "neg_root_mean_squared_error", "trials_run": n,
            "trials_failed": sum(t.state is TrialState.FAILED for t in trials),
            "best_cv_score": best.mean_score, "best_params": best.params,
            "wall_seconds": 12.5, "cv_folds": FOLDS, "epochs": EPOCHS, "batch_size": 40,
            "seed": 0, "budget": {"max_trials": n}, "target_scaled": True,
            "test_metrics": {"rmse": 0.55, "r2": 0.98, "adjusted_r2": 0.979, "mae": 0.4},
        }, default=list))
    return root


def tiny_config(folder: Path, *, space: str = "neurons = [2, 8]",
                strategies: str = "[strategies.grid]", epochs: int = 2,
                name: str = "tiny") -> Path:
    """Write ``folder/<name>.toml``: Advertising, an MLP, 2 folds, ``epochs``, batches of 40.

    ``space`` and ``strategies`` are TOML lines of the [space] table and the
    [strategies.*] tables.
    """
    path = Path(folder) / f"{name}.toml"
    path.write_text(f"""
name = "{name}"
[data]
dataset = "advertising"
target = "Sales"
[builder]
name = "mlp_regressor"
[space]
{space}
[training]
cv = 2
epochs = {epochs}
batch_size = 40
{strategies}
""")
    return path


def stored_rows(db: Path, columns: str = "params, state") -> list[tuple]:
    """``columns`` of every trial in the store ``db``, in trial order, read as another
    process would (empty while the file is missing or locked)."""
    if not Path(db).exists():
        return []
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute(f"SELECT {columns} FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return []
