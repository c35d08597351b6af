"""What sending stacks elsewhere costs: Dask round trip, bytes per chunk, the seed grid end to end.

Two parts, every timed run in a fresh process (imports and data before the clock):

1. **Per chunk** (``--part chunk``): the seed grid's stacks (the seed's
   ``ANN_Model``, 54 configurations, 5 folds, 80 epochs, batch 40, the 160
   seed rows; 3 chunks of 90 replicas, one per optimizer), built and planned as
   ``tune`` does. On a local Dask cluster of 2 single-threaded worker processes
   (started and warmed before the clock), it measures

   * bytes shipped: once per run (protocol, X, y, scattered) and per chunk
     (the chunk's configurations and initial weights out, fold scores back);
   * the round trip of a chunk: a task that receives the chunk and answers a
     result of the same size without training (median of ``--trips``): Dask's
     scheduling, serialisation and transfer, the cost a stack pays for being
     sent;
   * one chunk trained here on 1 thread (``run_chunk``; what a worker's
     single thread does) and the build time per configuration in the
     submitting process (serial in every executor).

   From these it prints a table of expected speed-ups for 8, 64 and 512
   workers at the seed's data size and at 100x (the 100x column assumes a
   chunk's training time grows with the rows, measured at 10x when
   ``--measure-10x``, and that the data is scattered once): **extrapolated**,
   not measured.

2. **End to end** (``--part grid``): ``tune(strategy="grid")`` of the seed
   grid, stacked, refit of the best included: in process vs on a local Dask
   cluster of 2 single-threaded workers (started before the clock, as the
   per-configuration benches start their workers) vs ``workers=2`` local
   processes (``ProcessExecutor``, its processes start inside the clock).
   Median of ``--repeats`` fresh processes per side.

    python experiments/bench_dask_chunks.py                 # both parts (README)
    python experiments/bench_dask_chunks.py --part chunk --trips 5   # a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The chunk part trains as one single-threaded worker does.
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
SIDES = {"in process": {}, "Dask, 2 workers x 1 thread": {"dask": True},
         "workers=2 (local processes)": {"workers": 2}}


def _warm() -> int:
    import keras  # noqa: F401

    return os.getpid()


def _echo(chunk, protocol, X, y, n_folds):
    """A task shaped like ``train_chunk``: takes a chunk, answers scores, trains nothing."""
    return "echo", [(b.index, [0.5] * n_folds, 0.1, None, b.epochs) for b in chunk]


def _cluster():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    client.run(_warm)  # Keras (and TensorFlow) imported on each worker before any clock
    return cluster, client


def chunk_child(trips: int, rows_factor: int, epochs: int) -> dict:
    import pickle

    import cloudpickle
    import numpy as np
    from _common import ANN_Model, BATCH_SIZE, SEED_GRID, seed_data
    from sklearn.model_selection import ParameterGrid

    from nn_tuning.evaluation import make_protocol
    from nn_tuning.stacked.plan import build, plan_chunks, run_chunk

    X, y, cv = seed_data()
    if rows_factor > 1:  # the same rows repeated, jittered: rows_factor x the data
        rng = np.random.default_rng(0)
        X = np.concatenate([X + rng.normal(0, 0.01, X.shape).astype("float32")
                            for _ in range(rows_factor)])
        y = np.tile(y, rows_factor)
        from sklearn.model_selection import KFold
        cv = KFold(5, shuffle=True, random_state=0)
    protocol = make_protocol(ANN_Model, X, y, cv=cv, epochs=epochs, batch_size=BATCH_SIZE,
                             seed=0)
    configs = list(ParameterGrid(SEED_GRID))
    start = time.perf_counter()
    built = [build(protocol, X, y, i, c) for i, c in enumerate(configs)]
    build_s = (time.perf_counter() - start) / len(built)
    chunks = plan_chunks(built, protocol)
    chunk = max(chunks, key=len)
    n_folds = len(protocol.splits)
    out = {"configs": len(configs), "chunks": len(chunks), "chunk_configs": len(chunk),
           "chunk_replicas": len(chunk) * n_folds, "build_s_per_config": build_s,
           "rows": len(X), "epochs": epochs}
    out["bytes_once"] = len(cloudpickle.dumps((protocol, X, y)))
    out["bytes_chunk_out"] = len(cloudpickle.dumps(chunk))
    out["bytes_chunk_back"] = len(pickle.dumps(_echo(chunk, None, None, None, n_folds)))
    # One chunk trained here on one thread, as a single-threaded worker trains it.
    start = time.perf_counter()
    list(run_chunk(chunk, protocol, X, y, 0))  # compiles the loop
    out["train_first_s"] = time.perf_counter() - start
    start = time.perf_counter()
    list(run_chunk(chunk, protocol, X, y, 0))
    out["train_s"] = time.perf_counter() - start
    if trips:
        cluster, client = _cluster()
        try:
            shared = client.scatter([protocol, X, y], broadcast=True, hash=False)
            times = []
            for _ in range(trips + 1):  # the first trip is a warm-up
                start = time.perf_counter()
                client.submit(_echo, chunk, *shared, n_folds, pure=False).result()
                times.append(time.perf_counter() - start)
            out["trip_s"] = statistics.median(times[1:])
            out["trip_range"] = [min(times[1:]), max(times[1:])]
        finally:
            client.close()
            cluster.close()
    return out


def grid_child(dask: bool = False, workers: int = 1) -> dict:
    import tensorflow  # noqa: F401 - before the clock on every side
    from _common import ANN_Model, BATCH_SIZE, EPOCHS, SEED_GRID, engines_ran, seed_data

    from nn_tuning import tune

    X, y, cv = seed_data()
    extra: dict = {"workers": workers}
    cluster = client = None
    if dask:
        start = time.perf_counter()
        cluster, client = _cluster()
        cluster_s = time.perf_counter() - start
        extra["dask_scheduler"] = cluster.scheduler_address
    try:
        start = time.perf_counter()
        result = tune(ANN_Model, SEED_GRID, X, y, strategy="grid", cv=cv, epochs=EPOCHS,
                      batch_size=BATCH_SIZE, seed=0, engine="stacked", refit=True, **extra)
        seconds = time.perf_counter() - start
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return {"seconds": seconds, "best": float(result.best_score),
            "engine": engines_ran(result.trials),
            "workers": sorted(set(result.trials["worker"])),
            # The stacks' own time where they trained (a trial's share, summed).
            "stack_seconds": float(result.trials["fit_seconds"].sum()),
            "cluster_start_s": cluster_s if dask else None}


def _speedups(c: dict, train_s: float, label: str) -> None:
    """Expected throughput with W single-threaded workers, from measured per-chunk costs.

    A worker spends train + round trip per chunk of K configurations, so W
    workers give W * K / (train + trip) configurations/s; the submitting process
    builds every configuration one at a time (build s each), so it feeds at most
    1 / build configurations/s; commits are negligible (bench_store.py). The
    reference is this process training the chunks itself on one thread.
    """
    k, build, trip = c["chunk_configs"], c["build_s_per_config"], c["trip_s"]
    one = k / (k * build + train_s)  # configurations/s, in process, one thread, no Dask
    print(f"\n{label}: chunk of {k} configurations ({k * 5} replicas) trains in "
          f"{train_s:.2f} s on one thread; Dask round trip {trip * 1e3:.1f} ms; "
          f"build {build * 1e3:.1f} ms per configuration in the submitting process")
    print(f"  {'workers':>8} {'configs/s':>10} {'speed-up vs in process':>24} {'limited by':>14}")
    for w in (1, 8, 64, 512):
        workers_rate = w * k / (train_s + trip)
        feed_rate = 1 / build  # the submitter builds configurations one at a time
        rate = min(workers_rate, feed_rate)
        print(f"  {w:>8} {rate:>10.1f} {rate / one:>23.1f}x "
              f"{'workers' if workers_rate <= feed_rate else 'building':>14}")


def main() -> None:
    from _common import run_fresh

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("chunk", "grid", "both"), default="both")
    parser.add_argument("--trips", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure-10x", action="store_true",
                        help="also train a chunk at 10x the rows (8 epochs, scaled to 80)")
    args = parser.parse_args()
    if args.part in ("chunk", "both"):
        c = run_fresh("bench_dask_chunks:chunk_child",
                      dict(trips=args.trips, rows_factor=1, epochs=80), env=ONE_THREAD)
        print(f"seed grid: {c['configs']} configurations in {c['chunks']} chunks of up to "
              f"{c['chunk_replicas']} replicas; {c['rows']} rows")
        print(f"bytes shipped: once per run {c['bytes_once']:,} (protocol, X, y); per chunk "
              f"{c['bytes_chunk_out']:,} out ({c['bytes_chunk_out'] / c['chunk_configs']:,.0f}"
              f" per configuration) and {c['bytes_chunk_back']:,} back")
        print(f"Dask round trip of a chunk (no training; median of {args.trips}): "
              f"{c['trip_s'] * 1e3:.1f} ms ({c['trip_range'][0] * 1e3:.1f}-"
              f"{c['trip_range'][1] * 1e3:.1f}); one chunk trained on 1 thread: "
              f"{c['train_s']:.2f} s ({c['train_first_s']:.2f} s with its compilation)")
        print(f"round trip / training: {c['trip_s'] / c['train_s']:.2%}")
        _speedups(c, c["train_s"], "EXTRAPOLATED, seed's data (160 rows)")
        if args.measure_10x:
            ten = run_fresh("bench_dask_chunks:chunk_child",
                            dict(trips=0, rows_factor=10, epochs=8), env=ONE_THREAD)
            train10 = ten["train_s"] * 10  # 8 epochs measured, 80 extrapolated
            print(f"\n10x rows: one chunk, 8 epochs on 1 thread: {ten['train_s']:.2f} s "
                  f"-> {train10:.1f} s for 80 epochs; X, y once: {ten['bytes_once']:,} bytes")
            per_row = train10 / c["train_s"] / 10
            train100 = c["train_s"] * 100 * per_row
        else:
            train100 = c["train_s"] * 100
        _speedups(c, train100, "EXTRAPOLATED, 100x the seed's data (16,000 rows; chunk time "
                  "scaled with rows)")
    if args.part in ("grid", "both"):
        runs: dict[str, list[dict]] = {name: [] for name in SIDES}
        for r in range(args.repeats):
            for name, kwargs in SIDES.items():
                out = run_fresh("bench_dask_chunks:grid_child", kwargs)
                runs[name].append(out)
                extra = (f", cluster started in {out['cluster_start_s']:.1f} s before the clock"
                         if out["cluster_start_s"] is not None else "")
                print(f"round {r + 1}: {name}: {out['seconds']:.1f} s (stacks trained for "
                      f"{out['stack_seconds']:.1f} s), best {out['best']:.4f}, "
                      f"engine {out['engine']}, workers {out['workers']}{extra}", flush=True)
        print(f"\nseed grid, stacked, cold, median of {args.repeats} fresh processes (min-max):")
        base = statistics.median(o["seconds"] for o in runs["in process"])
        for name, outs in runs.items():
            s = [o["seconds"] for o in outs]
            m = statistics.median(s)
            print(f"  {name:>28}: {m:6.1f} s ({min(s):.1f}-{max(s):.1f}), "
                  f"{m / base:.2f}x the in-process time")


if __name__ == "__main__":
    main()
