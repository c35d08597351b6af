"""GPU check: trials per hour stacked on one device, or packed as separate processes.

``--stacked 1,64,1024,8192`` (the stacked engine's own primitives,
:mod:`nn_tuning.stacked`) against Keras' ``model.fit`` one model at a time, on
the Advertising data (5-fold CV, 80 epochs, batch 40, Adam; activations,
widths, depths and learning rates vary). A trial is one configuration on its 5
folds, and on both sides a trial is the same work: build the Keras model(s),
train, predict the held-out fold, score it (R^2). Every side and every R runs
in its own fresh process; imports and the backend's device start-up come
before the clock.

* ``model.fit``: ``--keras-trials`` trials one after another (5 x build, fit,
  predict, score each). *first* = its first trial (compiling included);
  *steady* = the median of the later trials (``model.fit`` compiles each new
  model's step, so that is its steady state).
* stacked, per R: R (configuration, fold) replicas as one stack, built as the
  engine builds them (one Keras model per configuration, shared by its
  folds), trained, each replica's held-out fold predicted and scored. *first*
  = the first stack, compiling included; *steady* = the median of
  ``--steady-runs`` more stacks of the same shape (new models, new seeds),
  which reuse the compiled loop as later chunks of a study do.

Ratios are like for like: steady trials per hour against ``model.fit``'s
steady trials per hour, and the stack's first run against ``model.fit``
doing the same number of trials from a fresh process (its first trial plus
the rest at its steady rate: an estimate, printed as such). On JAX it needs
only Keras, NumPy, pandas and scikit-learn (it never imports TensorFlow)::

    KERAS_BACKEND=jax python experiments/gpu_check.py --stacked 1,64,1024,8192
    KERAS_BACKEND=jax python experiments/gpu_check.py --stacked 5,10 --epochs 2 \\
        --keras-trials 2 --steady-runs 1       # a CPU smoke test

Without ``--stacked``, the packing check: the Advertising study's MLP
configurations (5-fold CV, 80 epochs, batch 40; build, fit, predict, score) in
worker processes, each pinned to one GPU through CUDA_VISIBLE_DEVICES, first
one worker per GPU, then ``--pack`` workers per GPU; trials per hour for each
and their ratio. Workers import and load the data before the clock starts::

    KERAS_BACKEND=jax python experiments/gpu_check.py --trials 24 --pack 4
    python experiments/gpu_check.py --trials 24 --pack 4        # TensorFlow

With no GPU it runs on the CPU (``--gpus 0`` forces that), which only checks
that the script works.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "nn_tuning" / "data" / "advertising.csv"
GRID = list(itertools.product(["softmax", "relu", "linear"], [5, 10, 15, 25, 35, 50],
                              ["sgd", "adam", "adamax"]))


def count_gpus() -> int:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        return sum(line.startswith("GPU ") for line in out.stdout.splitlines())
    except (OSError, subprocess.SubprocessError):
        return 0


def worker(index: int, gpu: int | None, pack: int, jobs, results, epochs: int) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        # Let `pack` processes share one GPU's memory.
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / pack:.3f}"
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    from model_builders import mlp_regressor

    df = pd.read_csv(DATA)
    X = StandardScaler().fit_transform(df[["TV", "Radio", "Newspaper"]]).astype("float32")
    y = df["Sales"].to_numpy("float32")
    folds = list(KFold(5, shuffle=True, random_state=0).split(X))
    keras.ops.convert_to_numpy(keras.ops.add(keras.ops.ones((2,)), 1.0))  # start the device
    results.put(("ready", index))  # imported and loaded: the clock starts once all are
    while True:
        job = jobs.get()
        if job is None:
            break
        activation, neurons, optimizer = job
        start = time.perf_counter()
        scores = []
        for train, test in folds:
            keras.utils.set_random_seed(0)
            model = mlp_regressor(input_dim=3, neurons=neurons, activation=activation,
                                  optimizer=optimizer)
            model.fit(X[train], y[train], epochs=epochs, batch_size=40, verbose=0)
            pred = np.asarray(model(X[test], training=False)).ravel()
            scores.append(float(np.sqrt(np.mean((pred - y[test]) ** 2))))
        results.put((index, job, float(np.mean(scores)), time.perf_counter() - start,
                     keras.backend.backend()))


def run(n_trials: int, gpus: list[int | None], pack: int, epochs: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    jobs, results = ctx.Queue(), ctx.Queue()
    slots = [g for g in gpus for _ in range(pack)]
    procs = [ctx.Process(target=worker, args=(i, g, pack, jobs, results, epochs))
             for i, g in enumerate(slots)]
    for p in procs:
        p.start()
    for _ in procs:
        results.get()  # every worker has imported Keras and loaded the data
    start = time.perf_counter()
    for job in itertools.islice(itertools.cycle(GRID), n_trials):
        jobs.put(job)
    for _ in slots:
        jobs.put(None)
    done = [results.get() for _ in range(n_trials)]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    return {"workers": len(slots), "trials": len(done), "wall_s": wall,
            "trials_per_hour": len(done) / wall * 3600, "backend": done[0][4],
            "best_rmse": min(d[2] for d in done)}


def _advertising():
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(DATA)
    X = StandardScaler().fit_transform(df[["TV", "Radio", "Newspaper"]]).astype("float32")
    y = df["Sales"].to_numpy("float32").reshape(-1, 1)
    return X, y, list(KFold(5, shuffle=True, random_state=0).split(X)), np


STACK_SPACE = list(itertools.product(["relu", "tanh", "elu", "gelu", "softmax", "linear"],
                                     [5, 10, 25, 50], [1, 2, 3], [1e-3, 3e-3, 1e-2]))


def _ready():
    """Imports and the backend's device start-up, before any clock: the same on both sides."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import keras
    from sklearn.metrics import r2_score

    from model_builders import mlp_regressor

    keras.ops.convert_to_numpy(keras.ops.add(keras.ops.ones((2,)), 1.0))  # start the device

    def model(i: int, seed: int):
        act, neurons, layers, lr = STACK_SPACE[i % len(STACK_SPACE)]
        keras.utils.set_random_seed(seed)
        return mlp_regressor(input_dim=3, neurons=neurons, n_layers=layers, activation=act,
                             optimizer="adam", learning_rate=lr)

    return keras, r2_score, model


def fit_child(trials: int, epochs: int) -> dict:
    """Child process: ``trials`` configurations one at a time, each on 5 folds: build a model,
    ``model.fit``, predict the held-out fold, score it (R^2). Seconds per trial."""
    keras, r2_score, model = _ready()
    X, y, folds, np = _advertising()
    seconds, scores = [], []
    for i in range(trials):
        start = time.perf_counter()
        fold_scores = []
        for k, (train, valid) in enumerate(folds):
            m = model(i, seed=i)
            m.fit(X[train], y[train], epochs=epochs, batch_size=40, verbose=0)
            pred = m.predict(X[valid], batch_size=40, verbose=0)
            fold_scores.append(r2_score(y[valid], pred))
        seconds.append(time.perf_counter() - start)
        scores.append(float(np.mean(fold_scores)))
    return {"backend": keras.backend.backend(), "seconds": seconds, "scores": scores}


def stack_child(replicas: int, epochs: int, steady_runs: int) -> dict:
    """Child process: ``replicas`` (configuration, fold) replicas as one stack, as the stacked
    engine trains them: build each configuration's Keras model (one per configuration, its
    weights shared by its folds, as ``nn_tuning.stacked.plan`` does), train the stack,
    predict every replica's held-out fold, score each (R^2). The first run includes
    compiling the loop; then ``steady_runs`` more runs of the same shape (new models, new
    seeds) reuse it, as later chunks of a study do."""
    keras, r2_score, model = _ready()
    from nn_tuning.stacked import Replica, read_structure, train_stack
    from nn_tuning.stacked.read_model import layer_weights

    X, y, folds, np = _advertising()

    def run(offset: int) -> tuple[float, float, bool]:
        start = time.perf_counter()
        reps, built = [], {}
        for r in range(replicas):
            i = r // len(folds)
            if i not in built:
                m = model(i, seed=offset + i)
                built[i] = (read_structure(m), layer_weights(m))
            structure, weights = built[i]
            reps.append(Replica(structure, weights, folds[r % len(folds)][0], seed=offset + r))
        result = train_stack(reps, X, y, epochs=epochs, batch_size=40,
                             predict_rows=[folds[r % len(folds)][1] for r in range(replicas)])
        scores = [r2_score(y[folds[r % len(folds)][1]], pred)
                  for r, pred in enumerate(result.predictions)]
        return time.perf_counter() - start, float(np.mean(scores)), all(result.finite)

    first, score, finite = run(0)
    steady = [run(10_000 * (k + 1))[0] for k in range(steady_runs)]
    return {"backend": keras.backend.backend(), "replicas": replicas, "first": first,
            "steady": steady, "mean_score": score, "finite": finite}


def stacked(sizes: list[int], epochs: int, keras_trials: int, steady_runs: int) -> None:
    """Trials per hour of the stacked engine at each R against model.fit one at a time.

    Both sides build, train and score every trial (5 folds each); each side and
    each R runs in its own fresh process, imports and device start-up before
    the clock. "first" includes compiling; "steady" is later work of the same
    shape in the same process (model.fit still compiles each new model).
    """
    from _common import run_fresh

    fit = run_fresh("gpu_check:fit_child", {"trials": keras_trials, "epochs": epochs})
    f_first, f_rest = fit["seconds"][0], fit["seconds"][1:] or fit["seconds"]

    f_steady = statistics.median(f_rest)
    print(f"backend {fit['backend']}; model.fit one at a time ({keras_trials} trials, each "
          f"5 x build + fit + predict + score): first trial {f_first:.2f} s (compiles), steady "
          f"{f_steady:.2f} s/trial (median of trials 2-{keras_trials}: "
          f"{min(f_rest):.2f}-{max(f_rest):.2f}) -> {3600 / f_steady:,.0f} trials/h steady",
          flush=True)
    print("stacked, each R a fresh process; a trial = one configuration on 5 folds "
          "(build, train, predict, score):")
    print(f"{'R':>6} {'trials':>7} {'first s':>8} {'steady s':>9} {'steady trials/h':>16} "
          f"{'first: fit est. s':>18} {'first vs fit':>13} {'steady vs fit':>14}")
    for R in sizes:
        res = run_fresh("gpu_check:stack_child",
                        {"replicas": R, "epochs": epochs, "steady_runs": steady_runs})
        assert res["finite"], "a replica diverged"
        n = R / 5
        steady = statistics.median(res["steady"]) if res["steady"] else float("nan")
        rate = n / steady * 3600
        # model.fit doing the same n trials from a fresh process: its first trial, then steady.
        fit_first = f_first + max(n - 1, 0) * f_steady if n >= 1 else n * f_first
        print(f"{R:>6} {n:>7.1f} {res['first']:>8.2f} {steady:>9.3f} {rate:>16,.0f} "
              f"{fit_first:>18.1f} {fit_first / res['first']:>12.1f}x "
              f"{rate / (3600 / f_steady):>13.1f}x", flush=True)
    print("first vs fit: the same trials from a fresh process, compiling included (model.fit's "
          "time for them estimated as its first trial + the rest at its steady rate); "
          "steady vs fit: steady trials per hour against model.fit's steady trials per hour",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacked", default=None,
                        help="comma-separated stack sizes R: run the stacked check")
    parser.add_argument("--keras-trials", type=int, default=4,
                        help="trials model.fit trains one at a time (stacked check): the "
                             "first, then the steady rate from the rest")
    parser.add_argument("--steady-runs", type=int, default=3,
                        help="runs of each stack after the first (stacked check; median)")
    parser.add_argument("--trials", type=int, default=24, help="trials per setting")
    parser.add_argument("--pack", type=int, default=4, help="trials packed onto each GPU")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all)")
    args = parser.parse_args(argv)
    if args.stacked:
        print(f"devices: {count_gpus()} GPU(s); "
              f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}", flush=True)
        stacked([int(r) for r in args.stacked.split(",")], args.epochs, args.keras_trials,
                args.steady_runs)
        return 0
    n_gpus = count_gpus() if args.gpus is None else args.gpus
    gpus: list[int | None] = list(range(n_gpus)) or [None]
    print(f"devices: {n_gpus} GPU(s){'' if n_gpus else ' -> running on the CPU'}; "
          f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}", flush=True)
    one = run(args.trials, gpus, 1, args.epochs)
    print(f"one trial per {'GPU' if n_gpus else 'device'}: {one}", flush=True)
    packed = run(args.trials, gpus, args.pack, args.epochs)
    print(f"{args.pack} trials per {'GPU' if n_gpus else 'device'}: {packed}", flush=True)
    ratio = packed["trials_per_hour"] / one["trials_per_hour"]
    print(f"packing speed-up: {ratio:.2f}x (target >= 4x on a GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
