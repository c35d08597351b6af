"""Where a chunk trains: this process, local worker processes, or a Dask cluster.

:func:`~nn_tuning.stacked.plan.stacked_groups` plans chunks (deterministically,
in the submitting process, which builds every configuration) and hands each
complete chunk to an executor; :func:`~nn_tuning.stacked.plan.run_chunk` is the
unit of work everywhere. An executor returns a chunk's trials as one group as
soon as the chunk finishes, so the store commits a stack in one transaction,
whichever process or machine trained it.

=========================  ================================================
:class:`InProcessExecutor`  one chunk after another, here (the default)
:class:`DeviceExecutor`     one chunk per JAX device at a time, here (threads
                            under ``jax.default_device``)
:class:`ProcessExecutor`    ``workers`` local processes (loky, as joblib's);
                            each gets its share of the CPU threads
:class:`DaskExecutor`       one Dask task per chunk; the protocol and data
                            are scattered once, results stream back
=========================  ================================================

A chunk that fails where it trained (a worker killed, an error) comes back as
FAILED trials with the reason; Dask retries it once first. Nothing is lost
silently and nothing is committed twice: trials are committed only here, by
the submitting process. The ``worker`` of a trial names what trained it:
``main`` (this process), ``pid-N`` (a local worker process), the Dask
worker's address, or the JAX device (``gpu:1``). A remote chunk's deadline
travels as wall-clock time.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .plan import Built, chunk_trials, run_chunk

__all__ = ["ChunkExecutor", "DaskExecutor", "DeviceExecutor", "InProcessExecutor",
           "ProcessExecutor", "accelerators"]

logger = logging.getLogger("nn_tuning")

# (configuration index, fold scores, seconds, failure reason, epochs trained)
_Result = tuple[int, list[float], float, "str | None", int]


def train_chunk(chunk: Sequence[Built], protocol: Any, X: np.ndarray, y: np.ndarray, seed: int,
                wall_deadline: float | None) -> tuple[str, list[_Result]]:
    """The task a worker runs: :func:`run_chunk`, answered with scores only (not the Builts)."""
    deadline = None if wall_deadline is None else (
        time.perf_counter() + wall_deadline - time.time())
    results = [(b.index, scores, seconds, reason, epochs)
               for b, scores, seconds, reason, epochs
               in run_chunk(chunk, protocol, X, y, seed, deadline)]
    return _worker_name(), results


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not in a Dask worker
        return f"pid-{os.getpid()}"


class ChunkExecutor:
    """Trains chunks and gives back their trials, one group per finished chunk.

    :meth:`submit` hands a chunk over and yields the groups of the chunks
    finished by then (waiting for one when :attr:`capacity` are in flight);
    :meth:`drain` waits for every chunk in flight. This base class trains
    remote ``futures``; subclasses say how a chunk is submitted.
    """

    name = "executor"
    capacity = 1

    def __init__(self) -> None:
        # future -> (chunk, the arguments it was sent with, tries so far)
        self._flight: dict[Any, tuple[list[Built], tuple, int]] = {}
        self._folds = 1

    def submit(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
               seed: int, deadline: float | None) -> Iterator[list[Any]]:
        self._folds = len(protocol.splits)
        wall = None if deadline is None else time.time() + deadline - time.perf_counter()
        args = (protocol, X, y, seed, wall)
        self._flight[self._submit(chunk, *args)] = (chunk, args, 1)
        yield from self._collect(block=len(self._flight) >= self.capacity)

    def drain(self) -> Iterator[list[Any]]:
        while self._flight:
            yield from self._collect(block=True)

    def _collect(self, block: bool) -> Iterator[list[Any]]:
        if block and self._flight and not any(f.done() for f in self._flight):
            try:
                self._wait(list(self._flight))
            except Exception:  # noqa: BLE001 - a cancelled future is done: handled below
                pass
        for future in [f for f in self._flight if f.done()]:
            chunk, args, tries = self._flight.pop(future)
            try:
                worker, results = future.result()
            except Exception as exc:  # the worker died or the chunk raised: never lost
                if tries < self.tries and self._retry(exc):
                    logger.warning("a stack of %d configurations is sent again after %s: %s",
                                   len(chunk), type(exc).__name__, exc)
                    self._flight[self._submit(chunk, *args)] = (chunk, args, tries + 1)
                    continue
                yield self._failed(chunk, exc)
                continue
            yield self._trials(chunk, worker, results)

    #: Times a chunk is sent before its configurations are recorded as failed.
    tries = 1

    def _retry(self, exc: BaseException) -> bool:
        """Whether a chunk that raised ``exc`` is worth sending again."""
        return False

    def _trials(self, chunk: list[Built], worker: str, results: list[_Result]) -> list[Any]:
        by_index = {b.index: b for b in chunk}
        return chunk_trials(((by_index[i], *rest) for i, *rest in results), worker)

    def _failed(self, chunk: list[Built], exc: BaseException) -> list[Any]:
        from ..evaluation import trial_from_scores

        reason = f"its stack failed on the {self.name} executor: {type(exc).__name__}: {exc}"
        logger.warning("a stack of %d configurations failed: %s", len(chunk), reason)
        trials = []
        for b in chunk:
            trial = trial_from_scores(dict(b.params), [math.nan] * self._folds, 0.0,
                                      reason.splitlines()[0])
            trial.engine = "stacked"
            trials.append(trial)
        return trials

    def _submit(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
                seed: int, wall_deadline: float | None) -> Any:
        raise NotImplementedError

    def _wait(self, futures: list[Any]) -> None:
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)

    def close(self) -> None:
        """Give back processes; chunks still in flight are abandoned (their trials were not
        committed)."""
        self._flight.clear()


class InProcessExecutor(ChunkExecutor):
    """Each chunk trains here, at once, when it is submitted (the engine's plain path)."""

    name = "in-process"

    def submit(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
               seed: int, deadline: float | None) -> Iterator[list[Any]]:
        yield chunk_trials(run_chunk(chunk, protocol, X, y, seed, deadline))


class ProcessExecutor(ChunkExecutor):
    """``workers`` local processes (loky, joblib's process pool), one chunk each at a time.

    Each process gets its share of the cores as TensorFlow's thread pools
    (:func:`nn_tuning.parallel.worker_threads`; an explicit
    ``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` wins). Up to two
    chunks per process are in flight, so the next one is shipped while one trains.
    """

    name = "worker-processes"

    def __init__(self, workers: int) -> None:
        super().__init__()
        self.workers = int(workers)
        self.capacity = 2 * self.workers
        self._pool: Any = None

    def _executor(self) -> Any:
        if self._pool is None:
            from joblib.externals.loky import ProcessPoolExecutor

            from ..parallel import TF_THREAD_VARS, worker_threads

            threads = str(worker_threads(self.workers))
            env = {var: os.environ.get(var, threads) for var in TF_THREAD_VARS}
            self._pool = ProcessPoolExecutor(max_workers=self.workers, env=env)
        return self._pool

    def _submit(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
                seed: int, wall_deadline: float | None) -> Any:
        return self._executor().submit(train_chunk, chunk, protocol, X, y, seed, wall_deadline)

    def _failed(self, chunk: list[Built], exc: BaseException) -> list[Any]:
        self._retry(exc)
        return super()._failed(chunk, exc)

    def _retry(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(exc, BrokenProcessPool) and self._pool is not None:
            self._pool.shutdown(wait=False)  # a worker died: the next chunk gets a fresh pool
            self._pool = None
            return True
        return False

    def close(self) -> None:
        super().close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=True)
            self._pool = None


class DaskExecutor(ChunkExecutor):
    """One Dask task per chunk on ``client``'s cluster; protocol and data scattered once.

    A chunk whose worker dies is rescheduled by Dask on another; if the
    worker took the scattered protocol and data with it (Dask then cancels
    the task), they are scattered again and the chunk is sent once more; a
    chunk that raises is retried once (Dask's ``retries``). Then its
    configurations are recorded as failed. At most two chunks per worker
    thread are in flight.
    """

    name = "dask"

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client
        self.capacity = max(2, 2 * sum(client.nthreads().values()))
        self._shared: Any = None  # (ids, the objects, their futures)
        self.tries = 2

    def _scattered(self, protocol: Any, X: np.ndarray, y: np.ndarray) -> Any:
        key = (id(protocol), id(X), id(y))
        if self._shared is None or self._shared[0] != key:
            # The objects are held beside their ids, so the ids cannot be reused meanwhile.
            futures = self.client.scatter([protocol, X, y], broadcast=True, hash=False)
            self._shared = (key, (protocol, X, y), futures)
        return self._shared[2]

    def _submit(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
                seed: int, wall_deadline: float | None) -> Any:
        p, X_, y_ = self._scattered(protocol, X, y)
        return self.client.submit(train_chunk, chunk, p, X_, y_, seed, wall_deadline,
                                  pure=False, retries=1)

    def _wait(self, futures: list[Any]) -> None:
        from distributed import wait

        wait(futures, return_when="FIRST_COMPLETED")

    def _retry(self, exc: BaseException) -> bool:
        from distributed.client import FutureCancelledError

        if isinstance(exc, FutureCancelledError):  # its inputs were lost with a worker
            self._shared = None
            return True
        return False

    def close(self) -> None:
        for future in self._flight:
            future.cancel()
        super().close()
        self._shared = None


class DeviceExecutor(ChunkExecutor):
    """Under ``KERAS_BACKEND=jax``: one stack per device at a time, all in this process.

    Each chunk trains in a thread of this process under
    ``jax.default_device(device)`` on a free device of ``devices`` (JAX
    releases the interpreter while a compiled loop runs; Keras keeps its
    global state per thread), so a machine with several GPUs trains as many
    stacks at once. A chunk's computation is the one it has on a single
    device: the same scores (tested on the CPU with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``).
    """

    name = "devices"

    def __init__(self, devices: Sequence[Any]) -> None:
        import queue

        super().__init__()
        self.devices = list(devices)
        self.capacity = len(self.devices)
        self._free: queue.Queue = queue.Queue()
        for device in self.devices:
            self._free.put(device)
        self._pool = concurrent.futures.ThreadPoolExecutor(len(self.devices),
                                                           thread_name_prefix="nn-tuning-device")

    def _submit(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
                seed: int, wall_deadline: float | None) -> Any:
        return self._pool.submit(self._on_device, chunk, protocol, X, y, seed, wall_deadline)

    def _on_device(self, chunk: list[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
                   seed: int, wall_deadline: float | None) -> tuple[str, list[_Result]]:
        import jax

        device = self._free.get()
        try:
            with jax.default_device(device):
                _, results = train_chunk(chunk, protocol, X, y, seed, wall_deadline)
        finally:
            self._free.put(device)
        return f"{device.platform}:{device.id}", results

    def close(self) -> None:
        super().close()
        self._pool.shutdown(wait=True, cancel_futures=True)


def accelerators() -> list[Any]:
    """The JAX GPUs/TPUs this process sees under ``KERAS_BACKEND=jax``; else none.

    Never imports JAX or Keras itself: a run that has not loaded them has none.
    """
    import sys

    keras = sys.modules.get("keras")
    if keras is None or "jax" not in sys.modules or keras.backend.backend() != "jax":
        return []
    import jax

    return [d for d in jax.devices() if d.platform != "cpu"]
