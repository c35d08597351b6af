"""What a small image study costs: CNNs tuned on image arrays, trials per minute and accuracy.

Two studies, each timed with 1 and 2 worker processes, each run in its own
fresh process (imports, the images and any worker processes prepared before
the clock; each run says whether it reused those workers; no store),
``tune(strategy="random", engine="keras")``: a CNN on N-D images cannot stack,
so ``keras`` is the engine that trains it whatever is asked; each run prints
the engine its trials report. The clock covers the search and the refit; the
test accuracy is computed after it:

* **digits 8x8x1**: ``experiments/digits_images.toml`` as shipped (scikit-learn's
  digits as 8x8 grey images, standardised per channel; its space, CV folds,
  epochs and batch size), random search with ``--trials`` trials;
* **digits 28x28x1**: the same 1,797 digits resized to 28x28 (bilinear, Keras'
  ``ops.image.resize``: the MNIST layout) as generated image arrays, the same
  space and protocol, ``--trials`` trials.

For each it prints the best CV accuracy, the held-out test accuracy of the
refit best model, seconds per trial, trials per minute and the size of the
training images in memory, then the 28x28 / 8x8 cost ratio.

    python experiments/bench_images.py                # 6 trials a study
    python experiments/bench_images.py --trials 3 --workers 1
    python experiments/bench_images.py --trials 1 --workers 1 --epochs 1   # a smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

CONFIG = Path(__file__).resolve().parent / "digits_images.toml"


def studies() -> dict[str, tuple]:
    """name -> (X_train, y_train, X_test, y_test) for the two image sizes."""
    import keras

    from nn_tuning.data import load_data
    from nn_tuning.experiment import Experiment
    from nn_tuning.runner import prepare_data

    exp = Experiment.from_file(CONFIG)
    small = prepare_data(exp)
    big = load_data(dataset="digits", shape=[8, 8, 1], scale=False, task="classification",
                    seed=exp.training.seed)

    def resize(X: np.ndarray) -> np.ndarray:
        return np.asarray(keras.ops.image.resize(X, (28, 28), interpolation="bilinear"))

    X28_train, X28_test = resize(big.X_train), resize(big.X_test)
    mean, std = X28_train.mean(), X28_train.std()  # "channel": one channel
    return {
        "digits 8x8x1": (small.X_train, small.y_train, small.X_test, small.y_test),
        "digits 28x28x1": ((X28_train - mean) / std, big.y_train, (X28_test - mean) / std,
                           big.y_test),
    }


def run_child(study: str, trials: int, workers: int, epochs: int | None) -> dict:
    """One run in this (fresh) process: imports and images first, then the clock."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import engines_ran, prestart_tune_workers

    from nn_tuning import tune
    from nn_tuning.experiment import Experiment

    X, y, X_test, y_test = studies()[study]
    exp = Experiment.from_file(CONFIG)
    t = exp.training
    reused = prestart_tune_workers(workers, t.cv)
    start = time.perf_counter()
    result = tune(exp.builder, exp.space, X, y, strategy="random", max_trials=trials, cv=t.cv,
                  scoring=t.scoring, epochs=epochs or t.epochs, batch_size=t.batch_size,
                  seed=t.seed, fixed=exp.builder_args, workers=workers, progress=False,
                  engine="keras")
    seconds = time.perf_counter() - start
    test_acc = float(np.mean(result.best_estimator.predict(X_test) == y_test))
    return {"cv": float(result.best_score), "test": test_acc, "seconds": seconds,
            "per_trial": seconds / result.n_trials, "per_minute": 60 * result.n_trials / seconds,
            "engine": engines_ran(result.trials), "shape": list(X.shape),
            "workers_reused": reused(),
            "mib": X.nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the config's epochs (smoke tests only)")
    args = parser.parse_args()
    from _common import run_fresh, workers_note

    from nn_tuning.experiment import Experiment

    t = Experiment.from_file(CONFIG).training
    print(f"random search, {args.trials} trials a study, engine=keras; cnn_classifier, "
          f"{t.cv}-fold CV, {args.epochs or t.epochs} epochs, batch {t.batch_size} "
          f"({CONFIG.name}); {os.cpu_count()} CPUs; each run a fresh process")
    per_trial: dict[str, float] = {}
    for name in ("digits 8x8x1", "digits 28x28x1"):
        for workers in args.workers:
            r = run_fresh("bench_images:run_child", dict(study=name, trials=args.trials,
                                                         workers=workers, epochs=args.epochs))
            per_trial.setdefault(name, r["per_trial"])
            print(f"{name:15s} {r['shape'][0]} train images {tuple(r['shape'][1:])} "
                  f"({r['mib']:.1f} MiB float32), {workers} worker(s): best CV accuracy "
                  f"{r['cv']:.4f}, test accuracy {r['test']:.4f}, {r['per_trial']:.1f} s/trial, "
                  f"{r['per_minute']:.1f} trials/min ({r['seconds']:.0f} s); engine that ran: "
                  f"{r['engine']}{workers_note(r['workers_reused'])}", flush=True)
    if len(per_trial) == 2:
        small, big = per_trial.values()
        print(f"28x28 / 8x8 seconds per trial ({args.workers[0]} worker(s)): {big / small:.1f}x")


if __name__ == "__main__":
    main()
