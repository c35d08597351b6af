"""Beyond one process, on existing engines: Dask and keras-tuner's chief/worker mode.

Stacks go to Dask as one task each
(:class:`nn_tuning.stacked.executors.DaskExecutor`, on the client made here);
batches trained one configuration at a time go through scikit-learn's ``evaluate_candidates``
(:class:`~nn_tuning.evaluators.DaskEvaluator`) parallelise with joblib;
:func:`dask_backend` points joblib at a Dask
cluster, an existing scheduler (``tcp://host:8786``) or one started here
(``"local"``, listening on 127.0.0.1). Results come back to this process and
are committed to its trial store as usual.

Bayesian optimisation and Hyperband: keras-tuner's own chief/worker mode
(gRPC, configured by the ``KERASTUNER_*`` variables): :func:`kerastuner_role`
sets them for a block, :func:`worker_environment` gives a local worker its GPU
and thread share. The roles themselves run in
:mod:`nn_tuning.strategies.keras_tuner_workers`. This module imports nothing
from the strategies.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from .exceptions import ConfigError
from .scaleout import parse_address

__all__ = ["dask_backend", "free_port", "kerastuner_role", "parse_address", "worker_environment"]

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
