"""An MLP as people write it (BatchNormalization, EarlyStopping), stacked against one model at a time.

breast_cancer (standardised), a grid of 24: a Keras ``Sequential`` grown with
``add()`` (Dense -> BatchNormalization -> ReLU blocks, then a sigmoid output)
over 2 depths x 3 widths x 4 learning rates, trained with
``fit={"validation_split": 0.2, "callbacks": [EarlyStopping(patience=3,
restore_best_weights=True)]}``, 3-fold CV, up to 40 epochs, batch 32. Both
engines named and doing the same work (build, train with early stopping,
score every fold, refit the best): ``stacked`` and ``keras`` (one Keras model
per configuration and fold). Each run a fresh process, imports and data
before the clock, the median of ``--repeats`` runs; the best CV accuracy, the
engine each trial reports, and the peak RSS above what the process held
before the clock.

    python experiments/bench_written.py
    python experiments/bench_written.py --repeats 1 --engines stacked   # quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = {"depth": [1, 2], "units": [8, 16, 32], "learning_rate": [3e-4, 1e-3, 3e-3, 1e-2]}
EPOCHS, BATCH, CV = 40, 32, 3


def bn_mlp(depth=1, units=16, learning_rate=1e-3, meta=None):
    """Dense -> BatchNormalization -> ReLU blocks, written with add() as the Keras guides do."""
    import keras

    model = keras.Sequential()
    model.add(keras.Input((meta["n_features_in_"],)))
    for _ in range(depth):
        model.add(keras.layers.Dense(units))
        model.add(keras.layers.BatchNormalization())
        model.add(keras.layers.Activation("relu"))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def run_child(engine: str) -> dict:
    """One run in this (fresh) process: imports and data first, then the clock."""
    import keras
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import engines_ran, peak_rss_mib, rss_mib

    from nn_tuning import tune

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    before = rss_mib()
    start = time.perf_counter()
    stop = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    result = tune(bn_mlp, GRID, X, y, strategy="grid", cv=CV, epochs=EPOCHS, batch_size=BATCH,
                  seed=0, engine=engine, progress=False,
                  fit={"validation_split": 0.2, "callbacks": [stop]})
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    return {"seconds": seconds, "trials": result.n_trials, "cv": float(result.best_score),
            "engine": engines_ran(result.trials), "peak_mib": peak - before,
            "not_stacked": result.extra.get("not_stacked", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["stacked", "keras"])
    args = parser.parse_args()
    from _common import run_fresh, spread

    print(f"breast_cancer, grid of 24 (BatchNormalization MLPs, EarlyStopping(patience=3, "
          f"restore_best_weights=True), validation_split 0.2), {CV}-fold CV, up to {EPOCHS} "
          f"epochs, batch {BATCH}; {os.cpu_count()} CPUs; each run a fresh process, median of "
          f"{args.repeats}")
    rate = {}
    for engine in args.engines:
        runs = [run_fresh("bench_written:run_child", dict(engine=engine))
                for _ in range(args.repeats)]
        r = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        rate[engine] = statistics.median(x["trials"] / x["seconds"] for x in runs)
        print(f"engine={engine}: {spread([x['seconds'] for x in runs])}, {rate[engine]:.3f} "
              f"trials/s; best CV accuracy {r['cv']:.4f}; peak RSS above start "
              f"{spread([x['peak_mib'] for x in runs], 'MiB', '.0f')}; ran: {r['engine']}"
              + (f"; not stacked: {r['not_stacked']}" if r["not_stacked"] else ""), flush=True)
    if {"stacked", "keras"} <= set(rate):
        print(f"stacked / keras trials per second = {rate['stacked'] / rate['keras']:.1f}x")


if __name__ == "__main__":
    main()
