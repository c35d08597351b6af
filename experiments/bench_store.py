"""Trials committed per second to the trial store: one transaction per trial vs per stack.

Both sides write the same trials (a seed-grid-like configuration of 4
hyperparameters, 5 fold scores, engine ``stacked``) to a new SQLite store on
disk through :class:`nn_tuning.store.TrialStore`:

* per trial: one transaction per trial (the path every trial took before
  stacks were committed together);
* per chunk: one transaction per stack of ``--chunk`` trials (512: the
  stacked engine's default cap on replicas).

Both go through the search's commit path (``SearchContext.record_many``);
``--csv`` also appends ``trials.csv`` as a run folder's watcher does.

Each run is its own fresh process (imports and the trials made before the
clock); sides alternate over ``--rounds``; medians and the range are printed.

    python experiments/bench_store.py                      # README figure
    python experiments/bench_store.py --csv                # with trials.csv
    python experiments/bench_store.py --trials 2000 --rounds 1   # a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def child(trials: int, chunk: int, folder: str, with_csv: bool = False) -> dict:
    import math
    import time
    from pathlib import Path

    from nn_tuning.result import Trial, TrialState
    from nn_tuning.store import TrialStore
    from nn_tuning.strategies.base import SearchContext
    from nn_tuning.watcher import TrialWatcher

    made = [Trial({"activation": ["relu", "linear", "softmax"][i % 3], "neurons": i,
                   "optimizer": "Adam", "learning_rate": 0.001 * (1 + i % 7)},
                  TrialState.COMPLETE, [0.9 + 1e-6 * k for k in range(5)], 0.01,
                  n_params=21, engine="stacked") for i in range(trials)]
    path = Path(folder) / f"trials-{chunk}.db"
    store = TrialStore(path, fingerprint="bench")
    # The search's own commit path (SearchContext.record_many): the store, and with
    # with_csv the watcher that appends trials.csv as a run does.
    ctx = SearchContext(protocol=None, X=None, y=None, space=None, store=store, evaluator=None)
    if with_csv:
        ctx.on_trial = TrialWatcher(store, Path(folder), None, "bench", progress=False)
    start = time.perf_counter()
    for i in range(0, trials, chunk):
        ctx.record_many(made[i:i + chunk])
    seconds = time.perf_counter() - start
    stored = len(store)
    store.close()
    assert stored == trials and not math.isnan(seconds)
    return {"seconds": seconds, "trials_per_s": trials / seconds, "stored": stored}


def main() -> None:
    from _common import run_fresh

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--csv", action="store_true", help="also append trials.csv")
    parser.add_argument("--dir", default=None, help="where the stores are written "
                        "(a new folder in the system's temporary folder by default)")
    args = parser.parse_args()
    sides = {"per trial": 1, f"per chunk of {args.chunk}": args.chunk}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name, chunk in sides.items():
            with tempfile.TemporaryDirectory(dir=args.dir) as folder:
                out = run_fresh("bench_store:child",
                                dict(trials=args.trials, chunk=chunk, folder=folder,
                                     with_csv=args.csv))
            rates[name].append(out["trials_per_s"])
            print(f"round {r + 1}: {name}: {out['trials_per_s']:,.0f} trials/s "
                  f"({args.trials} trials in {out['seconds']:.2f} s)", flush=True)
    what = "store + trials.csv" if args.csv else "store"
    where = args.dir or tempfile.gettempdir()
    print(f"\n{args.trials} trials, {what}: SQLite WAL on disk ({where}),"
          f" median of {args.rounds} fresh processes (min-max):")
    medians = {}
    for name, values in rates.items():
        medians[name] = statistics.median(values)
        print(f"  {name:>20}: {medians[name]:>9,.0f} trials/s "
              f"({min(values):,.0f}-{max(values):,.0f})")
    one, many = medians.values()
    print(f"  chunk transactions: {many / one:.1f}x the per-trial commit")


if __name__ == "__main__":
    main()
