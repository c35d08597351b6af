"""The seed recipe against ``nn_tuning.tune(strategy="grid")``, in one run.

Seed recipe: plain ``scikeras.wrappers.KerasRegressor(ANN_Model, epochs=80,
batch_size=40)``, numpy input, ``GridSearchCV(n_jobs=-1)``, one run. nn-tuning:
the same builder, grid, folds, epochs and batch size through
``tune(strategy="grid")`` with the stacked engine (the default; median of
``--repeats`` runs, everything included: building, tracing, training,
scoring, refit) and with ``engine="keras"`` (one model per configuration and
fold, one worker per core). All on the same 160 training rows.

    python experiments/bench_grid.py            # the 54-config grid (~17 min on 2 cores)
    python experiments/bench_grid.py --quick    # an 8-config sub-grid (~3 min)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ANN_Model, BATCH_SIZE, EPOCHS, QUICK_GRID, SEED_GRID, grid_size, seed_data,
)


def run_tune(X, y, cv, grid, workers, engine):
    from nn_tuning import tune

    start = time.perf_counter()
    result = tune(ANN_Model, grid, X, y, strategy="grid", cv=cv, epochs=EPOCHS,
                  batch_size=BATCH_SIZE, seed=0, workers=workers, engine=engine)
    return time.perf_counter() - start, result.best_score, result.best_params


def run_recipe(X, y, splits, grid):
    from scikeras.wrappers import KerasRegressor
    from sklearn.model_selection import GridSearchCV

    est = KerasRegressor(model=ANN_Model, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=0)
    param_grid = {f"model__{k}": v for k, v in grid.items()}
    search = GridSearchCV(est, param_grid, cv=splits, n_jobs=-1, scoring="r2")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    return time.perf_counter() - start, float(search.best_score_), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="an 8-config sub-grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="nn-tuning worker processes (default: one per core)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of the stacked engine (the median is reported)")
    parser.add_argument("--skip-recipe", action="store_true",
                        help="time nn-tuning only (no ratio)")
    parser.add_argument("--skip-keras", action="store_true",
                        help="skip tune(engine='keras')")
    args = parser.parse_args()

    grid = QUICK_GRID if args.quick else SEED_GRID
    X, y, cv = seed_data()
    splits = list(cv.split(X))
    print(f"grid: {grid_size(grid)} configs x 5 folds, {EPOCHS} epochs, batch {BATCH_SIZE}, "
          f"{len(X)} rows, {os.cpu_count()} cores", flush=True)

    runs = [run_tune(X, y, cv, grid, 1, "stacked") for _ in range(args.repeats)]
    for t, best, params in runs:
        print(f"nn-tuning grid, stacked:      {t:8.1f} s   best CV R^2 {best:.4f}  {params}",
              flush=True)
    t_stacked = statistics.median(t for t, _, _ in runs)
    best_stacked = runs[0][1]
    print(f"stacked median of {len(runs)}:        {t_stacked:8.1f} s", flush=True)
    if not args.skip_keras:
        t_keras, best_keras, params_keras = run_tune(X, y, cv, grid, args.workers, "keras")
        print(f"nn-tuning grid, engine=keras ({args.workers} workers): {t_keras:8.1f} s   "
              f"best CV R^2 {best_keras:.4f}  {params_keras}", flush=True)
    if args.skip_recipe:
        return
    t_seed, best_seed, params_seed = run_recipe(X, y, splits, grid)
    print(f"seed recipe (n_jobs=-1):      {t_seed:8.1f} s   best CV R^2 "
          f"{best_seed:.4f}  {params_seed}", flush=True)
    print(f"stacked: {t_seed / t_stacked:.1f}x the recipe, best CV R^2 difference (stacked - "
          f"recipe) {best_stacked - best_seed:+.4f}", flush=True)
    if not args.skip_keras:
        print(f"engine=keras: {t_seed / t_keras:.1f}x the recipe, best CV R^2 difference "
              f"{best_keras - best_seed:+.4f}; stacked is {t_keras / t_stacked:.1f}x "
              f"engine=keras", flush=True)


if __name__ == "__main__":
    main()
