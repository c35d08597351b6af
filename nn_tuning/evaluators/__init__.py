"""Evaluators train batches of configurations; strategies only choose them.

=============================  =============================================
:class:`InProcessEvaluator`    one configuration after another, here
:class:`WorkerProcessEvaluator` ``workers`` processes (scikit-learn/joblib)
:class:`DaskEvaluator`         scikit-learn's joblib work on a Dask cluster
:class:`RecycledProcessEvaluator` keras-tuner workers: a recycled child process
:class:`StackedEvaluator`      many configurations x folds as one model
                               (:mod:`nn_tuning.stacked`), the rest through
                               one of the above
=============================  =============================================

:func:`select_evaluator` is the one place that picks one from the run's
settings (:func:`choose_evaluator` also makes it); a new evaluator (a new
training engine) plugs in there.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..evaluation import Protocol
from ..scaleout import Role, ScaleOut, check_engine
from ..stacked.executors import (
    ChunkExecutor,
    DaskExecutor,
    DeviceExecutor,
    InProcessExecutor,
    ProcessExecutor,
    accelerators,
)
from .base import Evaluator
from .in_process import InProcessEvaluator
from .recycled import RecycledProcessEvaluator
from .search_cv import DaskEvaluator, WorkerProcessEvaluator
from .stacked import StackedEvaluator

__all__ = ["DaskEvaluator", "Evaluator", "InProcessEvaluator", "RecycledProcessEvaluator",
           "StackedEvaluator", "WorkerProcessEvaluator", "choose_evaluator", "select_evaluator"]


def select_evaluator(engine: str, scale: ScaleOut) -> Callable[[Protocol, np.ndarray, np.ndarray],
                                                              Evaluator]:
    """Which evaluator a run gets, from its engine and scale-out settings; starts nothing.

    Parameters
    ----------
    engine : {"auto", "keras", "stacked"}
        ``stacked`` trains stackable configurations (MLPs of Dense, Dropout
        and Activation layers) as stacks and the rest one at a time;
        ``keras`` trains each configuration as its own model; ``auto`` is
        ``stacked`` wherever the run trains: in this process, in worker
        processes, on Dask and in a keras-tuner worker (which stacks the
        proposals it asks its chief for at once, ``parallel_trials``), so one
        run's engine never depends on where it trains.
    scale : ScaleOut
        ``worker_of`` -> a recycled child process (a long-lived keras-tuner
        worker); ``dask_scheduler`` -> Dask; ``workers > 1`` -> worker
        processes; otherwise this process. Under the stacked engine whole
        stacks go there (one Dask task or one worker process per chunk,
        :mod:`nn_tuning.stacked.executors`), and so do the configurations
        that cannot stack, one at a time.

    Returns
    -------
    callable
        ``make(protocol, X, y) -> Evaluator``. An engine that cannot serve
        these settings is refused here, before a run writes anything.
    """
    engine = check_engine(engine)
    per_configuration = _per_configuration(scale)
    if engine == "keras":
        return per_configuration
    return partial(_stacked, fallback=per_configuration, executor=_chunk_executor(scale))


def _chunk_executor(scale: ScaleOut) -> Callable[[Evaluator], ChunkExecutor]:
    """Where the stacks train, given the per-configuration evaluator of the same settings.

    Module-level functions, not lambdas: a plan (holding this) travels to
    keras-tuner worker processes.
    """
    if scale.dask_scheduler is not None:  # one task per chunk, on the fallback's cluster
        return _on_dask
    if scale.workers > 1:
        return partial(_in_processes, workers=scale.workers)
    return _here


def _on_dask(fallback: Evaluator) -> ChunkExecutor:
    return DaskExecutor(fallback.client)


def _in_processes(fallback: Evaluator, *, workers: int) -> ChunkExecutor:
    return ProcessExecutor(workers)


def _here(fallback: Evaluator) -> ChunkExecutor:
    devices = accelerators()  # several GPUs under JAX: a stack on each at once
    return DeviceExecutor(devices) if len(devices) > 1 else InProcessExecutor()


def _per_configuration(scale: ScaleOut) -> Callable[[Protocol, np.ndarray, np.ndarray],
                                                   Evaluator]:
    if scale.role is Role.WORKER:
        return RecycledProcessEvaluator
    if scale.dask_scheduler is not None:
        return partial(DaskEvaluator, scheduler=scale.dask_scheduler, workers=scale.workers)
    if scale.workers > 1:
        return partial(WorkerProcessEvaluator, workers=scale.workers)
    return InProcessEvaluator


def _stacked(protocol: Protocol, X: np.ndarray, y: np.ndarray, *,
             fallback: Callable[[Protocol, np.ndarray, np.ndarray], Evaluator],
             executor: Callable[[Evaluator], ChunkExecutor]) -> Evaluator:
    per_configuration = fallback(protocol, X, y)
    try:
        return StackedEvaluator(protocol, X, y, fallback=per_configuration,
                                executor=executor(per_configuration))
    except BaseException:
        per_configuration.close()
        raise


def choose_evaluator(engine: str, scale: ScaleOut, protocol: Protocol, X: np.ndarray,
                     y: np.ndarray) -> Evaluator:
    """The evaluator of a run (:func:`select_evaluator`), made for ``protocol, X, y``."""
    return select_evaluator(engine, scale)(protocol, X, y)
