"""How cost grows: trials per second of both engines as the data and the stack grow.

A synthetic regression (``make_regression``, 20 features), a 2x64 ReLU MLP with
Adam, 20 epochs of batch 256. Each cell trains in a fresh process (so its
peak RSS is its own), imports (TensorFlow, Keras, nn-tuning) and data before
the clock: the stacked engine (``nn_tuning.stacked.train_stack``) trains R
replicas (R = 1, 8, 64, 512) as one stack; the per-configuration engine
(``engine="keras"``'s ``nn_tuning.fast_fit``, one model at a time, one trace
shared by its fits as a configuration's folds share one) trains
``--keras-fits`` models, which sets its rate whatever R is. On both sides a
trial is the same work: one Keras model built and trained once (one
replica); neither side scores. Each cell runs ``--repeats`` times (fresh
processes); the median and range are printed. Cells whose estimated work
exceeds ``--budget`` seconds are skipped and marked so.

    python experiments/bench_stacked_scaling.py --budget 60     # table + plot (README)
    python experiments/bench_stacked_scaling.py --rows 1000 10000 --replicas 1 8 64

Writes ``stacked_scaling.png`` (log-log) beside the printed table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEATURES, WIDTH, EPOCHS, BATCH = 20, 64, 20, 256


def _data(rows: int):
    import numpy as np
    from sklearn.datasets import make_regression

    X, y = make_regression(rows, FEATURES, noise=5.0, random_state=0)
    X = ((X - X.mean(0)) / X.std(0)).astype("float32")
    y = ((y - y.mean()) / y.std()).astype("float32").reshape(-1, 1)
    return X, y, np.arange(rows)


def _model(seed: int):
    import keras

    from model_builders import mlp_regressor

    keras.utils.set_random_seed(seed)
    return mlp_regressor(input_dim=FEATURES, hidden_layers=(WIDTH, WIDTH), optimizer="adam")


def cell(engine: str, rows: int, replicas: int) -> dict:
    """Train one cell in this process; returns its figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import keras  # noqa: F401 - every import before the clock
    import tensorflow  # noqa: F401

    import model_builders  # noqa: F401
    from nn_tuning.fast_fit import fit_all_epochs
    from nn_tuning.stacked import Replica, read_structure, train_stack
    from nn_tuning.stacked.read_model import layer_weights

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import peak_rss_mib

    X, y, idx = _data(rows)
    if engine == "stacked":
        reps, start = [], time.perf_counter()
        for r in range(replicas):
            m = _model(r)
            reps.append(Replica(read_structure(m), layer_weights(m), idx, seed=r))
        train_stack(reps, X, y, epochs=EPOCHS, batch_size=BATCH)
        seconds, trained = time.perf_counter() - start, replicas
    else:
        trained, start = 0, time.perf_counter()
        for r in range(replicas):
            m = _model(r)
            fit_all_epochs(m, X, y, epochs=EPOCHS, batch_size=BATCH, seed=r, key="bench",
                           build=lambda: _model(0))
            trained += 1
        seconds = time.perf_counter() - start
    peak_mb = peak_rss_mib()
    return {"engine": engine, "rows": rows, "replicas": replicas, "seconds": seconds,
            "trials_per_s": trained / seconds, "peak_rss_mb": peak_mb}


def _run_cell(engine: str, rows: int, replicas: int, repeats: int) -> dict:
    """The cell's median over ``repeats`` fresh processes, with its range."""
    from _common import run_fresh

    runs = [run_fresh("bench_stacked_scaling:cell", dict(engine=engine, rows=rows,
                                                          replicas=replicas))
            for _ in range(repeats)]
    secs = sorted(r["seconds"] for r in runs)
    med = statistics.median(secs)
    return {**runs[0], "seconds": med, "trials_per_s": runs[0]["replicas"] / med,
            "range": f"{secs[0]:.2f}-{secs[-1]:.2f}",
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 8, 64, 512])
    parser.add_argument("--keras-fits", type=int, default=3,
                        help="models the per-configuration engine trains per data size")
    parser.add_argument("--budget", type=float, default=240.0,
                        help="skip stacked cells estimated to take longer (seconds)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per cell (the median is reported)")
    parser.add_argument("--plot", default=str(Path.cwd() / "stacked_scaling.png"))
    args = parser.parse_args(argv)
    print(f"{FEATURES} features, 2x{WIDTH} MLP, {EPOCHS} epochs, batch {BATCH}, "
          f"{os.cpu_count()} cores; each cell the median of {args.repeats} fresh processes "
          "(clock after imports and data)", flush=True)
    print(f"{'engine':>8} {'rows':>7} {'R':>5} {'seconds':>9} {'range':>12} {'trials/s':>10} "
          f"{'peak RSS MB':>12}")
    results = []
    for rows in args.rows:
        base = _run_cell("keras", rows, args.keras_fits, args.repeats)
        results.append(base)
        print(f"{'keras':>8} {rows:>7} {'1':>5} {base['seconds']:>9.2f} {base['range']:>12} "
              f"{base['trials_per_s']:>10.3f} {base['peak_rss_mb']:>12.0f}", flush=True)
        per_replica = None
        for R in sorted(args.replicas):
            if per_replica is not None and per_replica * R > args.budget:
                print(f"{'stacked':>8} {rows:>7} {R:>5} {'skipped':>9} (estimated "
                      f"{per_replica * R:.0f} s > --budget)", flush=True)
                continue
            res = _run_cell("stacked", rows, R, args.repeats)
            results.append(res)
            per_replica = res["seconds"] / R
            print(f"{'stacked':>8} {rows:>7} {R:>5} {res['seconds']:>9.2f} {res['range']:>12} "
                  f"{res['trials_per_s']:>10.3f} {res['peak_rss_mb']:>12.0f}   "
                  f"{res['trials_per_s'] / base['trials_per_s']:.1f}x keras", flush=True)
    _plot(results, args.plot)
    print(f"plot: {args.plot}")
    return 0


def _plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for rows in sorted({r["rows"] for r in results}):
        stacked = [r for r in results if r["rows"] == rows and r["engine"] == "stacked"]
        keras_rate = next(r["trials_per_s"] for r in results
                          if r["rows"] == rows and r["engine"] == "keras")
        line, = ax.plot([r["replicas"] for r in stacked], [r["trials_per_s"] for r in stacked],
                        "o-", label=f"stacked, {rows} rows")
        ax.axhline(keras_rate, color=line.get_color(), ls="--", lw=1,
                   label=f"one at a time, {rows} rows")
    ax.set(xscale="log", yscale="log", xlabel="replicas per stack (R)",
           ylabel="trials per second", title="Stacked vs one model at a time (CPU)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
