"""How Bayesian search's batch of proposals trades proposal quality for throughput.

keras-tuner's Gaussian-process oracle can keep several trials in flight
(``parallel_trials``, as in its distributed mode); the stacked engine trains
such a batch as one stack. Larger batches mean fewer stacks (fewer traces,
more replicas per step) but proposals chosen knowing fewer results. For each
batch size and each of ``--seeds`` seeds this runs ``tune(strategy="bayesian",
engine=ENGINE)`` on ``advertising_wide.toml``'s space and data (5-fold CV, 80
epochs, no refit), ``--trials`` trials, each run in its own fresh process
(imports and data first, then the clock), and prints the median wall time and
its range, trials per second, the best CV score and the engine the trials
report. ``--engine`` defaults to ``stacked`` (what the README's figure names).

    python experiments/bench_bayesian_batch.py                  # batches 1, 2, 4, 8, 16
    python experiments/bench_bayesian_batch.py --batches 1 4 8 16 --seeds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import run_fresh, spread  # noqa: E402

HERE = Path(__file__).resolve().parent


def child(config: str, batch: int, seed: int, trials: int, engine: str,
          epochs: int | None) -> dict:
    """One run in this (fresh) process: imports and data first, then the clock."""
    import logging

    from _common import engines_ran

    from nn_tuning import tune
    from nn_tuning.experiment import Experiment
    from nn_tuning.runner import prepare_data

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    exp = Experiment.from_file(config)
    data = prepare_data(exp)
    t = exp.training
    start = time.perf_counter()
    result = tune(exp.builder, exp.space, data.X_train, data.y_train,
                  strategy="bayesian", cv=t.cv, scoring=t.scoring, epochs=epochs or t.epochs,
                  batch_size=t.batch_size, seed=seed, max_trials=trials,
                  fixed=exp.builder_args, engine=engine, refit=False,
                  options={"parallel_trials": batch})
    return {"seconds": time.perf_counter() - start, "best": float(result.best_score),
            "engine": engines_ran(result.trials), "rows": len(data.X_train)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "advertising_wide.toml"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--engine", default="stacked", choices=["stacked", "keras", "auto"])
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the config's epochs (smoke tests only)")
    args = parser.parse_args(argv)

    print(f"{Path(args.config).name}: bayesian, {args.trials} trials, engine={args.engine}, "
          f"seeds 0..{args.seeds - 1}, each run a fresh process (clock after imports and data)",
          flush=True)
    print(f"{'batch':>5} {'seconds':>26} {'trials/s':>9} {'best CV (median)':>17}  per seed; "
          "engine that ran")
    for batch in args.batches:
        runs = [run_fresh("bench_bayesian_batch:child", dict(
            config=args.config, batch=batch, seed=seed, trials=args.trials, engine=args.engine,
            epochs=args.epochs)) for seed in range(args.seeds)]
        times = [r["seconds"] for r in runs]
        bests = [r["best"] for r in runs]
        med = statistics.median(times)
        print(f"{batch:>5} {spread(times):>26} {args.trials / med:>9.2f} "
              f"{statistics.median(bests):>17.4f}  {[round(b, 4) for b in bests]}; "
              f"{runs[0]['engine']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
