"""Trials until Bayesian search first reaches the grid's best CV score (seed space).

1. The 54-configuration seed grid is scored once with ``tune(strategy="grid",
   engine=ENGINE)`` (5-fold CV, 80 epochs, batch 40, seed 0, the 160 seed
   rows; ``--engine`` defaults to ``keras``, ``--workers`` to one per core).
2. Bayesian search (keras-tuner's Gaussian-process oracle, through nn-tuning's
   strategy) runs with oracle seeds 0-4 on the same space and protocol, with a
   budget of the whole grid. Its trials are scored from the grid's table: the
   protocol is deterministic (same configuration, folds, seed and engine: same
   score), which the script checks by retraining three configurations with
   ``tune(strategy="manual")`` on the same engine.

Printed: per oracle seed, the trial at which the search first proposes a
configuration scoring the grid's best (and within 0.01 R^2 of it); the median.

    python experiments/bench_bayesian.py                    # engine keras
    python experiments/bench_bayesian.py --engine stacked   # the same on the stacked engine

Not a timing benchmark: the grid's seconds are printed for information only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ANN_Model, BATCH_SIZE, EPOCHS, SEED_GRID, engines_ran, grid_size, seed_data,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--engine", default="keras", choices=["keras", "stacked", "auto"],
                        help="tune(engine=...) for the grid and the determinism check")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="epochs per fit (smoke tests only)")
    args = parser.parse_args()

    from nn_tuning import SearchSpace, tune
    from nn_tuning.evaluation import make_protocol, trial_from_scores
    from nn_tuning.evaluators import Evaluator
    from nn_tuning.strategies import get_strategy
    from nn_tuning.strategies.base import SearchContext
    from nn_tuning.store import TrialStore

    X, y, cv = seed_data()
    start = time.perf_counter()
    common = dict(cv=cv, epochs=args.epochs, batch_size=BATCH_SIZE, seed=0, refit=False,
                  engine=args.engine)
    grid = tune(ANN_Model, SEED_GRID, X, y, strategy="grid", workers=args.workers, **common)
    names = list(SEED_GRID)
    table = {tuple(row[n] for n in names): float(row["mean_score"])
             for _, row in grid.trials.iterrows()}
    best = max(table.values())
    print(f"grid (engine={args.engine}, {args.workers} workers; engine that ran: "
          f"{engines_ran(grid.trials)}): {grid_size(SEED_GRID)} configs in "
          f"{time.perf_counter() - start:.1f} s, best CV R^2 {best:.4f} {grid.best_params}",
          flush=True)
    ranked = sorted(table.values(), reverse=True)
    print(f"configs within 0.01 of the best: {sum(s >= best - 0.01 for s in ranked)}; "
          f"top 5: {[round(s, 4) for s in ranked[:5]]}", flush=True)

    protocol = make_protocol(ANN_Model, X, y, cv=cv, epochs=args.epochs, batch_size=BATCH_SIZE,
                             seed=0)
    checked = [dict(zip(names, cfg)) for cfg in list(table)[:3]]
    again = tune(ANN_Model, None, X, y, strategy="manual", configs=checked, **common)
    for _, row in again.trials.iterrows():
        cfg = tuple(row[n] for n in names)
        print(f"determinism check {dict(zip(names, cfg))}: grid {table[cfg]:.6f}, retrained "
              f"{float(row['mean_score']):.6f} (engine {row['engine']})", flush=True)

    class TableEvaluator(Evaluator):
        """An evaluator that looks each configuration up in the grid's scores."""

        name = "grid-table"

        def evaluate(self, batch, *, epochs=None):
            for params in batch:
                yield trial_from_scores(dict(params), [table[tuple(params[n] for n in names)]],
                                        0.0)

    space = SearchSpace(SEED_GRID)
    hits, near = [], []
    for seed in range(args.seeds):
        strategy = get_strategy("bayesian")
        ctx = SearchContext(protocol=protocol, X=X, y=y, space=space, store=TrialStore(None),
                            evaluator=TableEvaluator(protocol, X, y),
                            options=strategy.parse_options(None),
                            max_trials=grid_size(SEED_GRID), seed=seed)
        strategy.run(ctx)
        scores = [t.mean_score for t in ctx.store.trials()]
        first = next((i + 1 for i, s in enumerate(scores) if s >= best), None)
        close = next((i + 1 for i, s in enumerate(scores) if s >= best - 0.01), None)
        hits.append(first if first is not None else float("inf"))
        near.append(close if close is not None else float("inf"))
        print(f"oracle seed {seed}: {len(scores)} trials run; grid's best reached at trial "
              f"{first}; within 0.01 at trial {close}", flush=True)
    print(f"median trials to the grid's best: {statistics.median(hits)}; "
          f"to within 0.01 R^2: {statistics.median(near)} (grid: {grid_size(SEED_GRID)})",
          flush=True)


if __name__ == "__main__":
    main()
