"""Throughput of grid search (trials/s) with 1 and 2 worker processes.

Every measurement runs in a fresh Python process: it first warms up (imports,
starts its worker processes, 2 untimed configurations), then times
``tune(strategy="grid")`` on the same 12 seed-space configurations (5-fold CV,
80 epochs, batch 40, the 160 seed rows). Variants alternate over ``--rounds``
rounds and the median is reported:

* 1 worker: training in the main process, TensorFlow's default thread pools;
* 2 workers, 1 TF thread each: the default (:mod:`nn_tuning.parallel`);
* 2 workers, 2 TF threads each: what happens without the thread cap;
* ceiling: two independent 1-worker runs at once (1 TF thread each), each on
  its own copy of the grid: what this machine gives two busy processes of this
  very workload, with no coordination at all (shared caches, a virtual
  machine's cores, neighbours), so 2 workers can hardly do better.

    python experiments/bench_workers.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# (name, workers per run, TF threads per worker, runs at once)
VARIANTS = [("1 worker", 1, None, 1), ("2 workers, 1 TF thread each", 2, 1, 1),
            ("2 workers, 2 TF threads each", 2, 2, 1),
            ("ceiling: 2 separate 1-worker runs", 1, 1, 2)]
GRID = {"activation": ["relu", "linear"], "neurons": [5, 10, 15, 25, 35, 50],
        "optimizer": ["Adam"]}
WARMUP = {"activation": ["softmax"], "neurons": [7, 9], "optimizer": ["SGD"]}


def child(workers: int, tf_threads: int | None) -> None:
    if tf_threads:
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[var] = str(tf_threads)  # read by the worker processes at start
    from _common import ANN_Model, BATCH_SIZE, EPOCHS, grid_size, seed_data

    from nn_tuning import tune

    X, y, cv = seed_data()
    kwargs = dict(strategy="grid", cv=cv, epochs=EPOCHS, batch_size=BATCH_SIZE, seed=0,
                  workers=workers, refit=False)
    tune(ANN_Model, WARMUP, X, y, **kwargs)
    # Runs started side by side begin timing together, once both are warm.
    time.sleep(max(0.0, float(os.environ.get("BENCH_START_AT", 0)) - time.time()))
    start = time.perf_counter()
    tune(ANN_Model, GRID, X, y, **kwargs)
    print(json.dumps({"trials": grid_size(GRID), "seconds": time.perf_counter() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("WORKERS", "TF_THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workers, threads = args.child
        child(int(workers), int(threads) or None)
        return

    print(f"{os.cpu_count()} cores; 12 configurations x 5 folds, 80 epochs, batch 40, "
          f"{args.rounds} rounds", flush=True)
    rates: dict[str, list[float]] = {name: [] for name, *_ in VARIANTS}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(var, None)
    for r in range(args.rounds):
        for name, workers, threads, copies in VARIANTS:
            start_at = {"BENCH_START_AT": str(time.time() + 30)} if copies > 1 else {}
            procs = [subprocess.Popen(
                [sys.executable, __file__, "--child", str(workers), str(threads or 0)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env={**env, **start_at},
            ) for _ in range(copies)]
            runs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            if any(p.returncode for p in procs):
                raise SystemExit(f"{name}: a benchmark process failed")
            seconds = max(m["seconds"] for m in runs)
            rates[name].append(sum(m["trials"] for m in runs) / seconds)
            print(f"round {r + 1}: {name:34s} {seconds:6.1f} s  "
                  f"{rates[name][-1]:.3f} trials/s", flush=True)
    base = statistics.median(rates[VARIANTS[0][0]])
    for name, *_ in VARIANTS:
        med = statistics.median(rates[name])
        print(f"median {name:34s} {med:.3f} trials/s  ({med / base:.2f}x 1 worker)", flush=True)


if __name__ == "__main__":
    main()
