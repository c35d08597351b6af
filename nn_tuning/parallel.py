"""Parallel CV: each worker process trains every fold of the configurations it gets.

scikit-learn's search classes hand joblib one task per (configuration, fold)
pair, configuration-major, and joblib's automatic batching sends tasks this
long one at a time. The folds of a configuration then land on different
worker processes, and each of them traces that configuration's training
engine again (:mod:`nn_tuning.fast_fit`); tracing costs about as much as two
or three folds of training, so a second worker buys little.

:class:`FoldBatchBackend` is joblib's process backend (loky) with two changes:

* every batch is exactly the ``n_splits`` folds of one configuration, so one
  process traces it once and reuses the engine for the other folds; this
  needs ``pre_dispatch="all"`` on the search (see :func:`fold_batches`);
* the worker processes start with TensorFlow's thread pools sized to their
  share of the cores (``TF_NUM_INTRAOP_THREADS`` and ``TF_NUM_INTEROP_THREADS``,
  read when TensorFlow initialises), like joblib already does for OpenMP and
  BLAS, so ``workers`` processes do not oversubscribe the machine.

>>> with fold_batches(workers=2, n_splits=5):  # doctest: +SKIP
...     search.fit(X, y)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from joblib import cpu_count, parallel_config
from joblib._parallel_backends import LokyBackend

__all__ = ["FoldBatchBackend", "fold_batches", "worker_threads"]

TF_THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def worker_threads(workers: int) -> int:
    """TensorFlow threads per worker process: its share of the cores, at least one."""
    return max(1, cpu_count() // max(1, workers))


class FoldBatchBackend(LokyBackend):
    """joblib's loky backend, batching the folds of one configuration together.

    Parameters
    ----------
    n_splits : int
        Folds per configuration: the batch size.
    tf_threads : int, optional
        Intra-op and inter-op threads of TensorFlow in each worker; by default
        the worker's share of the cores. An explicit ``TF_NUM_INTRAOP_THREADS``
        or ``TF_NUM_INTEROP_THREADS`` in the environment wins.
    """

    def __init__(self, n_splits: int, tf_threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_splits = int(n_splits)
        self.tf_threads = tf_threads

    def compute_batch_size(self) -> int:
        return self.n_splits

    def _prepare_worker_env(self, n_jobs: int) -> dict[str, str]:
        env = super()._prepare_worker_env(n_jobs)
        threads = self.tf_threads or worker_threads(n_jobs)
        for var in TF_THREAD_VARS:
            env[var] = os.environ.get(var, str(threads))
        return env


@contextlib.contextmanager
def fold_batches(workers: int, n_splits: int, tf_threads: int | None = None) -> Iterator[None]:
    """Run scikit-learn's parallel CV inside with :class:`FoldBatchBackend`.

    The search must use ``n_jobs=workers`` and ``pre_dispatch="all"``: joblib
    then slices ``n_splits * workers`` tasks at a time into ``workers``
    batches, one configuration each, when a call evaluates a multiple of
    ``workers`` configurations.
    """
    backend = FoldBatchBackend(n_splits=n_splits, tf_threads=tf_threads)
    with parallel_config(backend=backend, n_jobs=workers):
        yield
