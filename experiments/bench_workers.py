"""Throughput of grid search (trials/s) with 1 and 2 worker processes.

Every measurement runs in a fresh Python process: it first warms up (imports,
starts its worker processes, 2 untimed configurations of other widths), then
times ``tune(strategy="grid", engine=ENGINE)`` on the same 12 seed-space
configurations (5-fold CV, 80 epochs, batch 40, the 160 seed rows; no refit).
``--engine`` defaults to ``keras``, the per-configuration path whose worker
processes this measures (the README's figure); each run prints the engine its
trials report. Variants alternate over ``--rounds``
rounds and the median is reported:

* 1 worker: training in the main process, TensorFlow's default thread pools;
* 2 workers, 1 TF thread each: the default (:mod:`nn_tuning.parallel`);
* 2 workers, 2 TF threads each: what happens without the thread cap;
* ceiling: two independent 1-worker runs at once (1 TF thread each), each on
  its own copy of the grid: what this machine gives two busy processes of this
  very workload, with no coordination at all (shared caches, a virtual
  machine's cores, neighbours), so 2 workers can hardly do better.

    python experiments/bench_workers.py                 # engine keras, 3 rounds (README)
    python experiments/bench_workers.py --rounds 1 --epochs 2   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# (name, workers per run, TF threads per worker, runs at once)
VARIANTS = [("1 worker", 1, None, 1), ("2 workers, 1 TF thread each", 2, 1, 1),
            ("2 workers, 2 TF threads each", 2, 2, 1),
            ("ceiling: 2 separate 1-worker runs", 1, 1, 2)]
GRID = {"activation": ["relu", "linear"], "neurons": [5, 10, 15, 25, 35, 50],
        "optimizer": ["Adam"]}
WARMUP = {"activation": ["softmax"], "neurons": [7, 9], "optimizer": ["SGD"]}


def child(workers: int, tf_threads: int | None, engine: str, epochs: int) -> None:
    if tf_threads:
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[var] = str(tf_threads)  # read by the worker processes at start
    from _common import ANN_Model, BATCH_SIZE, engines_ran, grid_size, seed_data

    from nn_tuning import tune

    X, y, cv = seed_data()
    kwargs = dict(strategy="grid", cv=cv, epochs=epochs, batch_size=BATCH_SIZE, seed=0,
                  workers=workers, refit=False, engine=engine)
    tune(ANN_Model, WARMUP, X, y, **kwargs)
    # Runs started side by side begin timing together, once all are warm: each
    # marks itself ready in a shared folder and waits for the others.
    barrier, copies = os.environ.get("BENCH_BARRIER"), int(os.environ.get("BENCH_COPIES", 1))
    if barrier:
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        while len(os.listdir(barrier)) < copies:
            time.sleep(0.05)
    start = time.perf_counter()
    result = tune(ANN_Model, GRID, X, y, **kwargs)
    print(json.dumps({"trials": grid_size(GRID), "seconds": time.perf_counter() - start,
                      "engine": engines_ran(result.trials)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", default="keras", choices=["keras", "stacked", "auto"],
                        help="tune(engine=...) (default keras: the per-configuration path)")
    parser.add_argument("--epochs", type=int, default=80,
                        help="epochs per fit (smoke tests only; the figure uses 80)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workers, threads, engine, epochs = args.child
        child(int(workers), int(threads) or None, engine, int(epochs))
        return

    print(f"{os.cpu_count()} cores; engine={args.engine}; 12 configurations x 5 folds, "
          f"{args.epochs} epochs, batch 40, {args.rounds} rounds", flush=True)
    rates: dict[str, list[float]] = {name: [] for name, *_ in VARIANTS}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(var, None)
    for r in range(args.rounds):
        for name, workers, threads, copies in VARIANTS:
            barrier = tempfile.mkdtemp(prefix="bench_workers_") if copies > 1 else None
            start_at = ({"BENCH_BARRIER": barrier, "BENCH_COPIES": str(copies)} if barrier
                        else {})
            procs = [subprocess.Popen(
                [sys.executable, __file__, "--child", str(workers), str(threads or 0), args.engine,
                 str(args.epochs)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env={**env, **start_at},
            ) for _ in range(copies)]
            runs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            if barrier:
                shutil.rmtree(barrier)
            if any(p.returncode for p in procs):
                raise SystemExit(f"{name}: a benchmark process failed")
            seconds = max(m["seconds"] for m in runs)
            rates[name].append(sum(m["trials"] for m in runs) / seconds)
            print(f"round {r + 1}: {name:34s} {seconds:6.1f} s  "
                  f"{rates[name][-1]:.3f} trials/s  engine: {runs[0]['engine']}", flush=True)
    base = statistics.median(rates[VARIANTS[0][0]])
    for name, *_ in VARIANTS:
        med = statistics.median(rates[name])
        print(f"median {name:34s} {med:.3f} trials/s ({min(rates[name]):.3f}-"
              f"{max(rates[name]):.3f}, n={len(rates[name])})  ({med / base:.2f}x 1 worker)",
              flush=True)


if __name__ == "__main__":
    main()
