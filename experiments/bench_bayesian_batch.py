"""How Bayesian search's batch of proposals trades proposal quality for throughput.

keras-tuner's Gaussian-process oracle can keep several trials in flight
(``parallel_trials``, as in its distributed mode); the stacked engine trains
such a batch as one stack. Larger batches mean fewer stacks (fewer traces,
more replicas per step) but proposals chosen knowing fewer results. For each
batch size this runs ``tune(strategy="bayesian")`` on ``advertising_wide.toml``'s
space and data (5-fold CV, 80 epochs), ``--trials`` trials, over ``--seeds``
seeds, and prints the median wall time, trials per second and best CV score.

    python experiments/bench_bayesian_batch.py                  # batches 1, 2, 4, 8, 16
    python experiments/bench_bayesian_batch.py --batches 1 8 --seeds 2
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "advertising_wide.toml"))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--engine", default="stacked")
    args = parser.parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    from nn_tuning import tune
    from nn_tuning.experiment import Experiment
    from nn_tuning.runner import prepare_data

    exp = Experiment.from_file(args.config)
    data = prepare_data(exp)
    t = exp.training
    print(f"{exp.name}: bayesian, {args.trials} trials, engine {args.engine}, "
          f"{len(data.X_train)} rows, cv {t.cv}, {t.epochs} epochs, seeds 0..{args.seeds - 1}",
          flush=True)
    print(f"{'batch':>5} {'median s':>9} {'trials/s':>9} {'best CV (median)':>17}  per seed")
    for batch in args.batches:
        times, bests = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            result = tune(exp.builder, exp.space, data.X_train, data.y_train,
                          strategy="bayesian", cv=t.cv, scoring=t.scoring, epochs=t.epochs,
                          batch_size=t.batch_size, seed=seed, max_trials=args.trials,
                          fixed=exp.builder_args, engine=args.engine, refit=False,
                          options={"parallel_trials": batch})
            times.append(time.perf_counter() - start)
            bests.append(result.best_score)
        med = statistics.median(times)
        print(f"{batch:>5} {med:>9.1f} {args.trials / med:>9.2f} {statistics.median(bests):>17.4f}"
              f"  {[round(b, 4) for b in bests]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
