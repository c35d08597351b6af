"""Beyond one process: scikit-learn's joblib on a Dask cluster.

Grid and random search run through ``GridSearchCV``/``RandomizedSearchCV``,
which parallelise with joblib; :func:`dask_backend` points joblib at a Dask
cluster, an existing scheduler (``tcp://host:8786``) or one started here
(``"local"``, listening on 127.0.0.1). Results come back to this process and
are committed to its trial store as usual.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from .exceptions import ConfigError

__all__ = ["dask_backend"]

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
