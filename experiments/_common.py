"""Shared by the benchmark scripts: the seed-style builder, the seed data split, fresh processes.

:func:`run_fresh` runs one function of a benchmark script in a new Python
process and returns the dict it returns; every timed run goes through it, so
no timing reuses what an earlier run in the same process compiled or cached.
The function imports what it needs, then starts its clock.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import KFold, train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "nn_tuning" / "data" / "advertising.csv"
_MARK = "@@bench-result "

SEED_GRID = {
    "activation": ["softmax", "relu", "linear"],
    "neurons": [5, 10, 15, 25, 35, 50],
    "optimizer": ["SGD", "Adam", "Adamax"],
}
QUICK_GRID = {
    "activation": ["relu", "linear"],
    "neurons": [10, 50],
    "optimizer": ["SGD", "Adam"],
}
EPOCHS = 80
BATCH_SIZE = 40


def ANN_Model(activation="relu", neurons=10, optimizer="Adam"):  # noqa: N802 - the seed's name
    """The seed recipe's builder: Dense(neurons, activation) -> Dense(1), loss mse."""
    import keras

    model = keras.Sequential([
        keras.Input(shape=(3,)),
        keras.layers.Dense(neurons, activation=activation),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=optimizer)
    return model


def seed_data(seed: int = 0):
    """The 160 standardised training rows (80/20 split) and a seeded 5-fold KFold."""
    df = pd.read_csv(DATA)
    X = df[["TV", "Radio", "Newspaper"]].to_numpy(dtype="float32")
    y = df["Sales"].to_numpy(dtype="float32")
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=seed)
    X_train = StandardScaler().fit_transform(X_train).astype("float32")
    cv = KFold(5, shuffle=True, random_state=seed)  # deterministic: same splits every call
    return X_train, y_train, cv


def grid_size(grid: dict) -> int:
    return int(np.prod([len(v) for v in grid.values()]))


def run_fresh(target: str, kwargs: Mapping | None = None, *, env: Mapping[str, str] | None = None,
              prefix: Sequence[str] = (), timeout: float | None = None) -> dict:
    """Call ``target`` (``"module:function"``, a module in experiments/) in a fresh process.

    The child imports the module, calls ``function(**kwargs)`` and prints the
    dict it returns as JSON; that dict is returned here. ``prefix`` wraps the
    command (e.g. ``["/usr/bin/time", "-v"]``); the child's stderr is then
    returned too, under ``"stderr"``. A failed child raises SystemExit with
    its stderr's tail.
    """
    cmd = [*prefix, sys.executable, str(HERE / "_common.py"), "--call", target,
           json.dumps(dict(kwargs or {}))]
    path = os.pathsep.join(p for p in (str(HERE), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {}), "PYTHONPATH": path}
    done = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{target} {kwargs}: the child process failed (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    out = json.loads(lines[-1][len(_MARK):])
    if prefix:
        out["stderr"] = done.stderr
    return out


def _worker_ready() -> int:
    import keras  # noqa: F401 - imports the backend (TensorFlow) too

    return os.getpid()


def start_workers(n_jobs: int) -> list[int]:
    """Start joblib's reusable worker processes and import Keras in each; their PIDs.

    Call it before a clock, inside the same joblib backend context as the timed
    code (e.g. ``nn_tuning.parallel.fold_batches``), so the timed code reuses
    these workers instead of starting its own. Calling it again after the timed
    code tells whether it did: the same PIDs.
    """
    from joblib import Parallel, cpu_count, delayed

    n = cpu_count() if n_jobs == -1 else n_jobs
    return sorted(set(Parallel(n_jobs=n_jobs)(delayed(_worker_ready)() for _ in range(8 * n))))


def prestart_tune_workers(workers: int, n_splits: int) -> Callable[[], bool | None]:
    """Start the worker processes ``tune(workers=N, engine="keras")`` uses, before a clock.

    They run ``nn_tuning.parallel.fold_batches``'s backend with Keras imported.
    Returns a function to call after the timed ``tune``: whether it reused them
    (None with one worker: no worker processes).
    """
    if workers <= 1:
        return lambda: None
    from nn_tuning.parallel import fold_batches

    with fold_batches(workers, n_splits):
        pids = start_workers(workers)

    def reused() -> bool:
        with fold_batches(workers, n_splits):
            return start_workers(workers) == pids

    return reused


def workers_note(reused: bool | None) -> str:
    """``; pre-started workers reused: True`` for a run's line, or nothing without workers."""
    return "" if reused is None else f"; pre-started workers reused: {reused}"


def _status_mib(field: str) -> float:
    """A ``/proc/self/status`` memory field of this process (Linux), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(f"{field}:")) / 1024


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux's ``VmRSS``)."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: Linux's ``VmHWM``.

    Not ``ru_maxrss``: Linux carries it across fork and exec, so a process
    started by a bigger one reports its parent's peak (measured: a child of a
    400 MiB process read 413 MiB, its own peak 13 MiB).
    """
    try:
        return _status_mib("VmHWM")
    except (OSError, StopIteration):  # not Linux: the best there is
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (
            1024 if sys.platform == "darwin" else 1)


def spread(values: Sequence[float], unit: str = "s", fmt: str = ".1f") -> str:
    """``median 2.7 s (2.6-2.9, n=3)``: the median and the range of repeated measurements."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:{fmt}} {unit} (n=1)"
    return f"median {med:{fmt}} {unit} ({min(values):{fmt}}-{max(values):{fmt}}, n={len(values)})"


def engines_ran(trials) -> str:
    """Which engine trained the trials, from their ``engine`` column: ``stacked (54 trials)``."""
    counts = trials["engine"].fillna("?").value_counts()
    return ", ".join(f"{name} ({n} trials)" for name, n in counts.items())


def _child_main(argv: list[str]) -> None:
    import importlib

    target, kwargs = argv[1], json.loads(argv[2])
    module, func = target.split(":")
    sys.path.insert(0, str(HERE))
    result = getattr(importlib.import_module(module), func)(**kwargs)
    print(_MARK + json.dumps(result, default=str), flush=True)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--call":
    _child_main(sys.argv[1:])
