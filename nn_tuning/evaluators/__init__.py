"""Evaluators train batches of configurations; strategies only choose them.

=============================  =============================================
:class:`InProcessEvaluator`    one configuration after another, here
:class:`WorkerProcessEvaluator` ``workers`` processes (scikit-learn/joblib)
:class:`DaskEvaluator`         scikit-learn's joblib work on a Dask cluster
:class:`RecycledProcessEvaluator` keras-tuner workers: a recycled child process
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
from ..exceptions import ConfigError
from ..scaleout import Role, ScaleOut, check_engine
from .base import Evaluator
from .in_process import InProcessEvaluator
from .recycled import RecycledProcessEvaluator
from .search_cv import DaskEvaluator, WorkerProcessEvaluator

__all__ = ["DaskEvaluator", "Evaluator", "InProcessEvaluator", "RecycledProcessEvaluator",
           "WorkerProcessEvaluator", "choose_evaluator", "select_evaluator"]


def select_evaluator(engine: str, scale: ScaleOut) -> Callable[[Protocol, np.ndarray, np.ndarray],
                                                              Evaluator]:
    """Which evaluator a run gets, from its engine and scale-out settings; starts nothing.

    Parameters
    ----------
    engine : {"auto", "keras", "stacked"}
        ``auto`` and ``keras`` train each configuration as its own model.
    scale : ScaleOut
        ``worker_of`` -> a recycled child process (a long-lived keras-tuner
        worker); ``dask_scheduler`` -> Dask; ``workers > 1`` -> worker
        processes; otherwise this process.

    Returns
    -------
    callable
        ``make(protocol, X, y) -> Evaluator``. An engine that cannot serve
        these settings is refused here, before a run writes anything.
    """
    engine = check_engine(engine)
    if engine == "stacked":
        raise ConfigError("engine 'stacked' is not available in this version; "
                          "use engine 'auto' or 'keras'")
    if scale.role is Role.WORKER:
        return RecycledProcessEvaluator
    if scale.dask_scheduler is not None:
        return partial(DaskEvaluator, scheduler=scale.dask_scheduler, workers=scale.workers)
    if scale.workers > 1:
        return partial(WorkerProcessEvaluator, workers=scale.workers)
    return InProcessEvaluator


def choose_evaluator(engine: str, scale: ScaleOut, protocol: Protocol, X: np.ndarray,
                     y: np.ndarray) -> Evaluator:
    """The evaluator of a run (see :func:`select_evaluator`), made for ``protocol, X, y``.

    Processes start on first use; a Dask cluster starts here. ``close()`` (or
    a ``with`` block) releases them.
    """
    return select_evaluator(engine, scale)(protocol, X, y)
