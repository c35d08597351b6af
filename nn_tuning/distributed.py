"""Beyond one process, on existing engines: Dask and keras-tuner's chief/worker mode.

Grid and random search: scikit-learn's joblib on a Dask cluster.

Grid and random search run through ``GridSearchCV``/``RandomizedSearchCV``,
which parallelise with joblib; :func:`dask_backend` points joblib at a Dask
cluster, an existing scheduler (``tcp://host:8786``) or one started here
(``"local"``, listening on 127.0.0.1). Results come back to this process and
are committed to its trial store as usual.

Bayesian optimisation and Hyperband: keras-tuner's own chief/worker mode
(gRPC, configured by the ``KERASTUNER_*`` variables). The chief serves the
oracle; each worker asks it for trials, scores them with the run's protocol
and commits them to the run's trial store (an SQLite file in the run folder,
which workers on other machines must reach through a shared filesystem).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from .exceptions import ConfigError

__all__ = ["dask_backend", "free_port", "kerastuner_role", "parse_address", "start_local_workers"]

logger = logging.getLogger("nn_tuning")


@contextlib.contextmanager
def dask_backend(scheduler: str, n_workers: int = 2) -> Iterator[object]:
    """Run joblib work (scikit-learn's searches) on Dask while the block runs.

    Parameters
    ----------
    scheduler : str
        ``"local"`` starts a local cluster of ``n_workers`` single-threaded
        worker processes on 127.0.0.1; otherwise the address of a running
        scheduler such as ``tcp://10.0.0.5:8786``.
    n_workers : int
        Workers of a local cluster.

    Yields
    ------
    distributed.Client
    """
    try:
        import joblib
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("a Dask scheduler needs dask[distributed]: pip install 'nn-tuning[dask]'") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    elif isinstance(scheduler, str) and "://" in scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from None
    else:
        raise ConfigError(f"dask scheduler must be 'local' or an address like tcp://host:8786, "
                          f"got {scheduler!r}")
    logger.info("running on Dask: %s", client)
    try:
        with joblib.parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --- keras-tuner's chief/worker mode -----------------------------------------

_KT_VARS = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def parse_address(address: str, what: str = "chief address") -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port), or a one-line ConfigError."""
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT such as 127.0.0.1:8000, got {address!r}")
    return host, int(port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def kerastuner_role(tuner_id: str, address: str) -> Iterator[None]:
    """Set keras-tuner's ``KERASTUNER_*`` variables for the block, then restore them.

    keras-tuner reads its role from the environment; a ``tuner_id`` containing
    ``chief`` serves the oracle at ``address``, any other id is a worker.
    """
    host, port = parse_address(address)
    saved = {k: os.environ.get(k) for k in _KT_VARS}
    os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host,
                      KERASTUNER_ORACLE_PORT=str(port))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def worker_environment(index: int, n_workers: int, trials_per_gpu: int | None,
                       n_gpus: int) -> dict[str, str]:
    """Environment of local worker ``index``: its GPU, or its share of CPU threads."""
    from joblib import cpu_count

    env = {}
    if n_gpus and trials_per_gpu:
        env["CUDA_VISIBLE_DEVICES"] = str((index // trials_per_gpu) % n_gpus)
    elif n_gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)
    threads = str(max(1, cpu_count() // max(1, n_workers)))
    env.setdefault("TF_NUM_INTRAOP_THREADS", threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", threads)
    return env


def _kt_worker_main(payload: dict, tuner_id: str, address: str, env: dict[str, str]) -> None:
    """Entry point of a spawned keras-tuner worker process."""
    os.environ.update(env)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .store import TrialStore
    from .strategies import SearchContext, get_strategy

    store = TrialStore(payload.pop("store_path"), fingerprint=payload.pop("fingerprint"))
    strategy = get_strategy(payload.pop("strategy"))
    ctx = SearchContext(store=store, **payload)
    ctx.options["worker_of"] = address
    ctx.options["tuner_id"] = tuner_id
    try:
        strategy.run(ctx)
    finally:
        ctx.close()
        store.close()


def start_local_workers(ctx: object, strategy: str, address: str, n_workers: int,
                        trials_per_gpu: int | None = None) -> list:
    """Spawn ``n_workers`` keras-tuner worker processes for the chief at ``address``."""
    import multiprocessing

    from .devices import default_device_label

    store = ctx.store  # type: ignore[attr-defined]
    if store.path is None:
        raise ConfigError("keras-tuner workers need a run folder for the shared trial store")
    import tensorflow as tf

    n_gpus = len(tf.config.list_physical_devices("GPU"))
    payload = dict(
        protocol=ctx.protocol, X=ctx.X, y=ctx.y, space=ctx.space,  # type: ignore[attr-defined]
        max_trials=ctx.max_trials, seed=ctx.seed, workdir=ctx.workdir,  # type: ignore[attr-defined]
        options={k: v for k, v in ctx.options.items() if k != "chief"},  # type: ignore[attr-defined]
        device=default_device_label() if not n_gpus else "gpu", workers=1,
        store_path=str(store.path), fingerprint=store.fingerprint, strategy=strategy,
    )
    spawn = multiprocessing.get_context("spawn")
    procs = []
    for i in range(n_workers):
        env = worker_environment(i, n_workers, trials_per_gpu, n_gpus)
        proc = spawn.Process(target=_kt_worker_main, args=(dict(payload), f"tuner{i}", address, env),
                             name=f"nn-tuning-worker-{i}", daemon=True)
        proc.start()
        procs.append(proc)
    logger.info("started %d keras-tuner workers for the chief at %s", n_workers, address)
    return procs
