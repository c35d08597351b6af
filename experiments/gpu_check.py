"""GPU check: trials per hour with one trial per GPU and with several packed per GPU.

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="trials per setting")
    parser.add_argument("--pack", type=int, default=4, help="trials packed onto each GPU")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all)")
    args = parser.parse_args(argv)
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
