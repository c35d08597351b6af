"""The seed recipe against ``nn_tuning.tune(strategy="grid")``, each timed run in a fresh process.

Same work on every side: the seed's ``ANN_Model``, grid, 5 folds, 80 epochs,
batch 40 and the 160 seed training rows; every configuration built, trained
and scored on each fold, then the best refit on all rows. Each timed run is
its own Python process: it imports TensorFlow, Keras, scikeras/nn-tuning and
loads the data, *then* starts its clock, and stops it after the refit.

* seed recipe: ``GridSearchCV(scikeras KerasRegressor(ANN_Model, epochs=80,
  batch_size=40), n_jobs=-1, scoring="r2")`` (refit=True, its default), run
  ``--recipe-repeats`` times (default once: ~12 min on 2 cores);
* ``tune(strategy="grid", engine="stacked")``, 1 process (it starts no
  workers), ``--repeats`` fresh processes (default 3). Each child also runs
  the same ``tune`` call a second time, printed as *warm* (compiled loops
  reused): not the headline;
* with ``--jax``, the same stacked side under ``KERAS_BACKEND=jax``: its
  first fresh process starts with an empty persistent compilation cache (a
  new folder), the later ones find what the first compiled (a user's second
  run of the study); each run is printed, so both are seen;
* ``tune(strategy="grid", engine="keras")`` with ``--workers`` processes
  (default one per core, its documented best setting here), ``--repeats``
  fresh processes.

The worker processes of both per-configuration sides (the recipe's joblib
workers, ``engine="keras"``'s) are started and have imported Keras before the
clock too; each run prints whether the timed call reused them (the same
worker PIDs before and after). Printed: each run, with the stacked runs' time split (building the Keras
models, tracing or compiling the training loop, training, scoring, the refit,
the rest) and the loops traced; the median and range per side, the engine
and backend each run reports (the trials' ``engine`` column) and the
speed-ups from cold medians.

    python experiments/bench_grid.py            # the 54-config grid (~17 min on 2 cores)
    python experiments/bench_grid.py --quick    # an 8-config sub-grid (~3 min)
    python experiments/bench_grid.py --skip-recipe --skip-stacked --workers 1
        # the per-configuration path alone, 1 worker (median of 3 fresh processes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ANN_Model, BATCH_SIZE, EPOCHS, QUICK_GRID, SEED_GRID, engines_ran, grid_size, run_fresh,
    prestart_tune_workers, seed_data, spread, start_workers, workers_note,
)


def tune_child(quick: bool, engine: str, workers: int, warm: bool, epochs: int = EPOCHS) -> dict:
    """Child process: one cold ``tune`` (and optionally a warm second one); imports first."""
    import tensorflow  # noqa: F401 - imported before the clock, like the recipe's
    import keras

    from nn_tuning import tune

    grid = QUICK_GRID if quick else SEED_GRID
    X, y, cv = seed_data()
    reused = prestart_tune_workers(workers, cv.get_n_splits())

    def once() -> dict:
        start = time.perf_counter()
        result = tune(ANN_Model, grid, X, y, strategy="grid", cv=cv, epochs=epochs,
                      batch_size=BATCH_SIZE, seed=0, workers=workers, engine=engine, refit=True)
        seconds = time.perf_counter() - start
        assert result.best_model is not None
        return {"seconds": seconds, "best": float(result.best_score),
                "params": result.best_params,
                "engine": f"{engines_ran(result.trials)} on {keras.backend.backend()}",
                "fit_seconds": float(result.trials["fit_seconds"].sum()),
                "split": result.extra.get("seconds"), "traces": result.extra.get("traces")}

    out = once()
    out["workers_reused"] = reused()
    if warm:
        out["warm"] = once()
    return out


def recipe_child(quick: bool, epochs: int = EPOCHS) -> dict:
    """Child process: the seed recipe, timed once; imports first."""
    import tensorflow  # noqa: F401
    from scikeras.wrappers import KerasRegressor
    from sklearn.model_selection import GridSearchCV

    grid = QUICK_GRID if quick else SEED_GRID
    X, y, cv = seed_data()
    splits = list(cv.split(X))
    est = KerasRegressor(model=ANN_Model, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    param_grid = {f"model__{k}": v for k, v in grid.items()}
    search = GridSearchCV(est, param_grid, cv=splits, n_jobs=-1, scoring="r2")
    pids = start_workers(-1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    seconds = time.perf_counter() - start
    params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    return {"seconds": seconds, "best": float(search.best_score_), "params": params,
            "engine": "scikeras KerasRegressor (model.fit per configuration and fold)",
            "workers_reused": start_workers(-1) == pids}


_PARTS = ("build", "trace", "train", "score", "refit")


def _split(r: dict) -> str:
    """The run's time split (stacked runs): building, tracing, training, scoring, refit."""
    split = r.get("split")
    if not split:
        return ""
    parts = " ".join(f"{k} {split[k]:.2f}" for k in _PARTS)
    other = split["total"] - sum(split[k] for k in _PARTS)
    return f"\n    split (s): {parts}; other {other:.2f}; loops traced: {r['traces']}"


def _side(label: str, target: str, kwargs: dict, repeats: int,
          env: dict | None = None) -> list[dict]:
    runs = []
    for i in range(repeats):
        r = run_fresh(target, kwargs, env=env)
        runs.append(r)
        line = (f"{label} run {i + 1}: {r['seconds']:7.1f} s cold  best CV R^2 {r['best']:.4f}  "
                f"{r['params']}  engine: {r['engine']}")
        line += workers_note(r.get("workers_reused"))
        if "fit_seconds" in r:
            line += f"; trials' fit_seconds {r['fit_seconds']:.1f} s"
        if "warm" in r:
            line += f"; warm (2nd call, same process) {r['warm']['seconds']:.1f} s"
        print(line + _split(r), flush=True)
    times = [r["seconds"] for r in runs]
    print(f"{label}: cold {spread(times)}"
          + (f"; warm {spread([r['warm']['seconds'] for r in runs])}" if "warm" in runs[0]
             else ""), flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="an 8-config sub-grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="engine='keras' worker processes (default: one per core)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per nn-tuning side (the median is reported)")
    parser.add_argument("--recipe-repeats", type=int, default=1,
                        help="fresh processes for the recipe (default 1: ~12 min each)")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="epochs per fit (smoke tests only; the figures use 80)")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the warm second stacked call in each child")
    parser.add_argument("--skip-recipe", action="store_true", help="skip the seed recipe")
    parser.add_argument("--skip-stacked", action="store_true",
                        help="skip tune(engine='stacked')")
    parser.add_argument("--skip-keras", action="store_true",
                        help="skip tune(engine='keras')")
    parser.add_argument("--jax", action="store_true",
                        help="also the stacked side under KERAS_BACKEND=jax (its first run with "
                             "an empty compilation cache, the others with the cache it left)")
    args = parser.parse_args()

    grid = QUICK_GRID if args.quick else SEED_GRID
    X, _, _ = seed_data()
    print(f"grid: {grid_size(grid)} configs x 5 folds, {args.epochs} epochs, batch {BATCH_SIZE}, "
          f"{len(X)} rows, {os.cpu_count()} cores; each run a fresh process, imports before "
          f"the clock, refit included", flush=True)
    medians: dict[str, float] = {}
    bests: dict[str, float] = {}
    sides = []
    if not args.skip_stacked:
        sides.append(("stacked", "stacked (1 process)", "bench_grid:tune_child",
                      dict(quick=args.quick, epochs=args.epochs, engine="stacked", workers=1,
                           warm=not args.no_warm), args.repeats))
    if not args.skip_keras:
        sides.append(("keras", f"engine=keras ({args.workers} workers)", "bench_grid:tune_child",
                      dict(quick=args.quick, epochs=args.epochs, engine="keras",
                           workers=args.workers, warm=False), args.repeats))
    if not args.skip_recipe:
        sides.append(("recipe", "seed recipe (n_jobs=-1)", "bench_grid:recipe_child",
                      dict(quick=args.quick, epochs=args.epochs), args.recipe_repeats))
    if args.jax:
        sides.insert(1, ("stacked-jax", "stacked on JAX (1 process)", "bench_grid:tune_child",
                         dict(quick=args.quick, epochs=args.epochs, engine="stacked", workers=1,
                              warm=not args.no_warm), args.repeats))
    cache = tempfile.mkdtemp(prefix="nn-tuning-jax-cache-")
    for key, label, target, kwargs, repeats in sides:
        env = {"KERAS_BACKEND": "jax", "NN_TUNING_JAX_CACHE": cache} if key == "stacked-jax" \
            else None
        runs = _side(label, target, kwargs, repeats, env)
        medians[key] = statistics.median(r["seconds"] for r in runs)
        bests[key] = runs[0]["best"]

    pairs = [(fast, slow) for fast, slow in
             [("stacked", "recipe"), ("stacked-jax", "recipe"), ("keras", "recipe"),
              ("stacked", "keras")]
             if fast in medians and slow in medians]
    if pairs:
        print("speed-ups (cold medians):", flush=True)
    for fast, slow in pairs:
        print(f"  {fast} vs {slow}: {medians[slow] / medians[fast]:.1f}x  "
              f"({medians[slow]:.1f} s / {medians[fast]:.1f} s); best CV R^2 difference "
              f"({fast} - {slow}) {bests[fast] - bests[slow]:+.4f}", flush=True)


if __name__ == "__main__":
    main()
