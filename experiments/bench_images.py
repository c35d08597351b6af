"""A small image study, stacked against one model at a time: trials per second, accuracy, memory.

``experiments/digits_images.toml`` (scikit-learn's digits as 8x8x1 grey images,
``cnn_classifier``, its space, 3-fold CV, 15 epochs, batch 64), random search
of ``--trials`` trials, run by ``tune(strategy="random", engine=...)`` with
each engine named (``stacked``: configurations x folds as one model;
``keras``: one Keras model per configuration and fold, ``model.fit``), and
the same digits resized to 28x28x1 (bilinear, Keras' ``ops.image.resize``:
the MNIST layout) with the same space and protocol. Both engines do the same
work: build every configuration, train 3 folds each, score them, refit the
best. Each run is its own fresh process (imports and images prepared before
the clock); the median of ``--repeats`` runs is reported, with the best CV
accuracy, the held-out test accuracy of the refit, the engine each trial
reports, the peak resident memory of the process (``VmHWM``) above what
it held before the clock, and, for stacked runs, the chunk planner's estimate
of its largest stack (:func:`nn_tuning.stacked.plan.estimated_bytes`). That peak is the
whole study's (every stack, the loops kept, the refit); what the estimate is for is
one stack's, so that stack then trains again alone in a fresh process and its own
peak is printed beside the estimate. ``--stack-replicas`` measures only such
stacks, of the space's largest CNN, at the replica counts given.

    python experiments/bench_images.py                       # 48 trials, 3 runs each
    python experiments/bench_images.py --trials 6 --repeats 1 --sizes 8   # quick
    python experiments/bench_images.py --stack-replicas 6 24 48 --sizes 8 16 --epochs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

CONFIG = Path(__file__).resolve().parent / "digits_images.toml"


def study(size: int) -> tuple:
    """(X_train, y_train, X_test, y_test): the config's digits at ``size`` x ``size`` x 1."""
    import keras

    from nn_tuning.data import load_data
    from nn_tuning.experiment import Experiment
    from nn_tuning.runner import prepare_data

    exp = Experiment.from_file(CONFIG)
    if size == 8:
        d = prepare_data(exp)
        return d.X_train, d.y_train, d.X_test, d.y_test
    big = load_data(dataset="digits", shape=[8, 8, 1], scale=False, task="classification",
                    seed=exp.training.seed)

    def resize(X: np.ndarray) -> np.ndarray:
        return np.asarray(keras.ops.image.resize(X, (size, size), interpolation="bilinear"))

    X_train, X_test = resize(big.X_train), resize(big.X_test)
    mean, std = X_train.mean(), X_train.std()  # "channel": one channel
    return (X_train - mean) / std, big.y_train, (X_test - mean) / std, big.y_test


def _protocol(exp, X, y, epochs: int | None = None):
    from nn_tuning.evaluation import make_protocol

    t = exp.training
    return make_protocol(exp.builder, X, y, task="classification", cv=t.cv,
                         scoring=t.scoring, epochs=epochs or t.epochs, batch_size=t.batch_size,
                         seed=t.seed, fixed=exp.builder_args)


def _largest_stack(result, exp, X, y, epochs: int | None) -> tuple[float, list[dict]]:
    """The planner's estimate (MiB) of the run's largest stack, and its configurations."""
    from nn_tuning.stacked.plan import build, estimated_bytes, plan_chunks

    protocol = _protocol(exp, X, y, epochs)
    names = list(exp.space.to_dict())
    params = [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
              for row in result.trials[names].to_dict("records")]
    built = [build(protocol, X, y, i, p) for i, p in enumerate(params)]
    chunk = max(plan_chunks(built, protocol), key=lambda c: estimated_bytes(c, protocol))
    return estimated_bytes(chunk, protocol) / 2**20, [b.params for b in chunk]


def stack_child(size: int, configs: list[dict], epochs: int | None = None) -> dict:
    """One stack of ``configs`` (x the config's folds) alone, in this (fresh) process: the
    planner's estimate of it and the peak resident memory its training and scoring add
    above what the process holds once imports, images and the built configurations are in."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import peak_rss_mib, rss_mib

    from nn_tuning.experiment import Experiment
    from nn_tuning.stacked.plan import build, estimated_bytes, run_chunk

    X, y, _, _ = study(size)
    exp = Experiment.from_file(CONFIG)
    protocol = _protocol(exp, X, y, epochs)
    built = [build(protocol, X, y, i, p) for i, p in enumerate(configs)]
    before = rss_mib()
    start = time.perf_counter()
    list(run_chunk(built, protocol, X, y, exp.training.seed))
    peak = peak_rss_mib()
    return {"replicas": len(built) * len(protocol.splits), "seconds": time.perf_counter() - start,
            "estimate_mib": estimated_bytes(built, protocol) / 2**20, "peak_mib": peak - before}


def _print_stack(size: int, r: dict, what: str) -> None:
    print(f"digits {size}x{size}x1, {what}, {r['replicas']} replicas, alone in a fresh process: "
          f"planner's estimate {r['estimate_mib']:.0f} MiB, peak RSS above start "
          f"{r['peak_mib']:.0f} MiB (ratio {r['peak_mib'] / r['estimate_mib']:.2f})", flush=True)


def run_child(size: int, trials: int, engine: str, epochs: int | None) -> dict:
    """One run in this (fresh) process: imports and images first, then the clock."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import engines_ran, peak_rss_mib, rss_mib

    from nn_tuning import tune
    from nn_tuning.experiment import Experiment

    X, y, X_test, y_test = study(size)
    exp = Experiment.from_file(CONFIG)
    t = exp.training
    before = rss_mib()
    start = time.perf_counter()
    result = tune(exp.builder, exp.space, X, y, strategy="random", max_trials=trials, cv=t.cv,
                  scoring=t.scoring, epochs=epochs or t.epochs, batch_size=t.batch_size,
                  seed=t.seed, fixed=exp.builder_args, progress=False, engine=engine)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    test_acc = float(np.mean(result.best_estimator.predict(X_test) == y_test))
    out = {"cv": float(result.best_score), "test": test_acc, "seconds": seconds,
           "per_second": result.n_trials / seconds, "engine": engines_ran(result.trials),
           "shape": list(X.shape), "peak_mib": peak - before,
           "split": result.extra.get("seconds", {})}
    if engine == "stacked":
        out["planned_mib"], out["largest_stack"] = _largest_stack(result, exp, X, y, epochs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 28])
    parser.add_argument("--engines", nargs="+", default=["stacked", "keras"])
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the config's epochs (smoke tests only)")
    parser.add_argument("--stack-replicas", type=int, nargs="+", default=[],
                        help="instead of the search: one stack of this many replicas (of the "
                             "space's largest CNN, filters 32, 2 blocks) alone, per size")
    args = parser.parse_args()
    from _common import run_fresh, spread

    from nn_tuning.experiment import Experiment

    t = Experiment.from_file(CONFIG).training
    print(f"random search, {args.trials} trials; cnn_classifier, {t.cv}-fold CV, "
          f"{args.epochs or t.epochs} epochs, batch {t.batch_size} ({CONFIG.name}); "
          f"{os.cpu_count()} CPUs; each run a fresh process, median of {args.repeats}")
    if args.stack_replicas:
        for size in args.sizes:
            for n in args.stack_replicas:
                configs = [{"filters": 32, "n_blocks": 2, "dense_units": 64, "dropout": 0.25,
                            "learning_rate": 1e-3 * (1 + i)} for i in range(-(-n // t.cv))]
                r = run_fresh("bench_images:stack_child",
                              dict(size=size, configs=configs, epochs=args.epochs))
                _print_stack(size, r, "filters 32, 2 blocks")
        return
    for size in args.sizes:
        rate = {}
        for engine in args.engines:
            runs = [run_fresh("bench_images:run_child", dict(size=size, trials=args.trials,
                                                            engine=engine, epochs=args.epochs))
                    for _ in range(args.repeats)]
            r = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            rate[engine] = statistics.median(x["per_second"] for x in runs)
            planned = f", planner's largest stack {r['planned_mib']:.0f} MiB" \
                if "planned_mib" in r else ""
            print(f"digits {size}x{size}x1, engine={engine}: "
                  f"{spread([x['seconds'] for x in runs])}, {rate[engine]:.3f} trials/s; best "
                  f"CV accuracy {r['cv']:.4f}, test {r['test']:.4f}; peak RSS above start "
                  f"{spread([x['peak_mib'] for x in runs], 'MiB', '.0f')}{planned}; "
                  f"ran: {r['engine']}; split {r['split']}", flush=True)
            if "largest_stack" in r:  # the peak above is the whole study's; this, one stack's
                _print_stack(size, run_fresh("bench_images:stack_child", dict(
                    size=size, configs=r["largest_stack"], epochs=args.epochs)),
                    "the run's largest stack")
        if {"stacked", "keras"} <= set(rate):
            print(f"digits {size}x{size}x1: stacked / keras trials per second = "
                  f"{rate['stacked'] / rate['keras']:.1f}x", flush=True)


if __name__ == "__main__":
    main()
