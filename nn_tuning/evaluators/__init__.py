"""Evaluators train batches of configurations; strategies only choose them.

=============================  =============================================
:class:`InProcessEvaluator`    one configuration after another, here
:class:`WorkerProcessEvaluator` ``workers`` processes (scikit-learn/joblib)
:class:`DaskEvaluator`         scikit-learn's joblib work on a Dask cluster
:class:`RecycledProcessEvaluator` keras-tuner workers: a recycled child process
=============================  =============================================

:func:`choose_evaluator` is the one place that picks one from the run's
settings; a new evaluator (a new training engine) plugs in there.
"""

from __future__ import annotations

import numpy as np

from ..evaluation import Protocol
from ..exceptions import ConfigError
from ..scaleout import Role, ScaleOut, check_engine
from .base import Evaluator
from .in_process import InProcessEvaluator
from .recycled import RecycledProcessEvaluator
from .search_cv import DaskEvaluator, WorkerProcessEvaluator

__all__ = ["DaskEvaluator", "Evaluator", "InProcessEvaluator", "RecycledProcessEvaluator",
           "WorkerProcessEvaluator", "choose_evaluator"]


def choose_evaluator(engine: str, scale: ScaleOut, protocol: Protocol, X: np.ndarray,
                     y: np.ndarray) -> Evaluator:
    """The evaluator of a run, from its engine and scale-out settings.

    Parameters
    ----------
    engine : {"auto", "keras", "stacked"}
        ``auto`` and ``keras`` train each configuration as its own model.
    scale : ScaleOut
        ``worker_of`` -> a recycled child process (a long-lived keras-tuner
        worker); ``dask_scheduler`` -> Dask; ``workers > 1`` -> worker
        processes; otherwise this process.
    protocol, X, y
        What every configuration is trained and scored with.

    Returns
    -------
    Evaluator
        Not yet started: processes and clusters start on first use or here
        (Dask), and are released by ``close()``.
    """
    engine = check_engine(engine)
    if engine == "stacked":
        raise ConfigError("engine 'stacked' is not available in this version; "
                          "use engine 'auto' or 'keras'")
    if scale.role is Role.WORKER:
        return RecycledProcessEvaluator(protocol, X, y)
    if scale.dask_scheduler is not None:
        return DaskEvaluator(protocol, X, y, scale.dask_scheduler, workers=scale.workers)
    if scale.workers > 1:
        return WorkerProcessEvaluator(protocol, X, y, workers=scale.workers)
    return InProcessEvaluator(protocol, X, y)
