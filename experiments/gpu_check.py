"""GPU check: trials per hour stacked on one GPU, or packed as separate processes.

``--stacked 1,64,1024,8192`` (the stacked engine, :mod:`nn_tuning.stacked`):
R replicas of the Advertising study's MLPs (each a configuration's fold: 5-fold
CV, 80 epochs, batch 40, Adam; activations, widths, depths and learning rates
vary) trained as one stack on one device, against Keras' own ``model.fit``
one model at a time. A trial is one configuration on its 5 folds, so a stack
of R replicas is R/5 trials. Each R is timed twice: the first run includes
compiling the training loop, the second reuses it (as every later chunk of a
study does). On JAX it needs only Keras, NumPy, pandas and scikit-learn::

    KERAS_BACKEND=jax python experiments/gpu_check.py --stacked 1,64,1024,8192

Without ``--stacked``, the older check below:

Runs the Advertising study's MLP configurations (5-fold CV, 80 epochs, batch
40) in worker processes, each pinned to one GPU through CUDA_VISIBLE_DEVICES,
first one worker per GPU, then ``--pack`` workers per GPU, and prints trials
per hour for each and their ratio (packing small trials is expected to give
up to ~4x on a large GPU).

It needs only Keras 3, NumPy, pandas and scikit-learn, so it also runs where
TensorFlow is not installed::

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
    for job in itertools.islice(itertools.cycle(GRID), n_trials):
        jobs.put(job)
    for _ in slots:
        jobs.put(None)
    procs = [ctx.Process(target=worker, args=(i, g, pack, jobs, results, epochs))
             for i, g in enumerate(slots)]
    start = time.perf_counter()
    for p in procs:
        p.start()
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
    return X, y, [train for train, _ in KFold(5, shuffle=True, random_state=0).split(X)], np


STACK_SPACE = list(itertools.product(["relu", "tanh", "elu", "gelu", "softmax", "linear"],
                                     [5, 10, 25, 50], [1, 2, 3], [1e-3, 3e-3, 1e-2]))


def stacked(sizes: list[int], epochs: int, keras_trials: int) -> None:
    """Trials per hour of the stacked engine at each R, and of model.fit one at a time."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import keras

    from model_builders import mlp_regressor
    from nn_tuning.stacked import Replica, read_structure, train_stack
    from nn_tuning.stacked.structure import dense_layers

    X, y, folds, np = _advertising()
    models = {}

    def model(i: int):
        act, neurons, layers, lr = STACK_SPACE[i % len(STACK_SPACE)]
        keras.utils.set_random_seed(i)
        return mlp_regressor(input_dim=3, neurons=neurons, n_layers=layers, activation=act,
                             optimizer="adam", learning_rate=lr)

    start = time.perf_counter()
    for i in range(keras_trials):
        for train in folds:
            model(i).fit(X[train], y[train], epochs=epochs, batch_size=40, verbose=0)
    wall = time.perf_counter() - start
    base = keras_trials / wall * 3600
    print(f"backend {keras.backend.backend()}: "
          f"model.fit one at a time: {keras_trials} trials in {wall:.1f} s -> "
          f"{base:,.0f} trials/h", flush=True)
    print(f"{'R':>6} {'trials':>7} {'first s':>8} {'again s':>8} {'trials/h':>12} {'vs fit':>8}")
    for R in sizes:
        reps = []
        for r in range(R):
            i = r // len(folds) % len(STACK_SPACE)
            if i not in models:
                m = model(i)
                models[i] = (read_structure(m), [(d.kernel.numpy(), d.bias.numpy())
                                                 for d in dense_layers(m)])
            structure, weights = models[i]
            reps.append(Replica(structure, weights, folds[r % len(folds)], seed=r))
        t0 = time.perf_counter()
        result = train_stack(reps, X, y, epochs=epochs, batch_size=40)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_stack(reps, X, y, epochs=epochs, batch_size=40)
        again = time.perf_counter() - t0
        assert all(result.finite), "a replica diverged"
        rate = R / len(folds) / again * 3600
        print(f"{R:>6} {R / len(folds):>7.1f} {first:>8.2f} {again:>8.2f} {rate:>12,.0f} "
              f"{rate / base:>7.0f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacked", default=None,
                        help="comma-separated stack sizes R: run the stacked check")
    parser.add_argument("--keras-trials", type=int, default=2,
                        help="trials model.fit trains one at a time (stacked check)")
    parser.add_argument("--trials", type=int, default=24, help="trials per setting")
    parser.add_argument("--pack", type=int, default=4, help="trials packed onto each GPU")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all)")
    args = parser.parse_args(argv)
    if args.stacked:
        print(f"devices: {count_gpus()} GPU(s); "
              f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}", flush=True)
        stacked([int(r) for r in args.stacked.split(",")], args.epochs, args.keras_trials)
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
