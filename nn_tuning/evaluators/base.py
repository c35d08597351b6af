"""The evaluator interface: train a batch of configurations, yield their trials.

Strategies *choose* configurations; evaluators *train* them. A strategy hands
a batch to :meth:`nn_tuning.strategies.SearchContext.evaluate`, which skips the
stored ones (resume), sends the rest to the run's evaluator and commits each
trial it yields to the store as it arrives. An evaluator gets everything it
needs when it is made: the :class:`~nn_tuning.evaluation.Protocol` (builder
and fixed arguments, estimator, CV splits, scorer, task, epochs, batch size,
seed) and the data ``X, y``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..evaluation import Protocol
from ..result import Trial

__all__ = ["Evaluator"]


class Evaluator(abc.ABC):
    """Trains configurations on the protocol's CV folds.

    Parameters
    ----------
    protocol : Protocol
        Builder, estimator, splits, scorer, task, epochs, batch size and seed.
    X, y : ndarray
        The data the splits index.

    Notes
    -----
    Subclasses implement :meth:`evaluate`; they may override :meth:`close`
    (release processes or clusters) and set :attr:`batch_limit`, the most
    configurations one :meth:`evaluate` call should get (``None``: any
    number; the search context cuts larger batches), and
    :attr:`fuses_batches`.
    """

    #: Name shown in logs.
    name: ClassVar[str] = "evaluator"
    #: Most configurations per :meth:`evaluate` call; ``None`` for no limit.
    batch_limit: int | None = None
    #: ``time.perf_counter()`` of the run's ``max_seconds``: evaluators that can
    #: stop training part-way (the stacked engine) stop there; the others finish
    #: what is in flight.
    deadline: float | None = None
    #: Whether a batch trains as one model (a stack), so that a larger batch costs little
    #: more time than one configuration; strategies that can propose several
    #: configurations at once then do (``fused_parallel_trials``).
    fuses_batches: ClassVar[bool] = False

    def __init__(self, protocol: Protocol, X: np.ndarray, y: np.ndarray) -> None:
        self.protocol = protocol
        self.X = X
        self.y = y
        self._stopping = False

    @abc.abstractmethod
    def evaluate(self, batch: Sequence[Mapping[str, Any]], *,
                 epochs: int | None = None) -> Iterator[Trial]:
        """Train every configuration of ``batch`` on every fold; yield each trial as it ends.

        Parameters
        ----------
        batch : sequence of dict
            Distinct configurations (builder arguments, and ``epochs`` or
            ``batch_size`` where the space searches them).
        epochs : int, optional
            Train this many epochs instead of the protocol's (Hyperband's budget).

        Yields
        ------
        Trial
            One per configuration, in the order they finish; ``trial.params``
            equals the configuration given. A configuration that fails is a
            FAILED trial with a one-line reason, never an exception.
        """

    def evaluate_groups(self, batch: Sequence[Mapping[str, Any]], *,
                        epochs: int | None = None) -> Iterator[list[Trial]]:
        """:meth:`evaluate`'s trials in the groups that finish together (one stack's).

        The search context commits each group in one transaction. By default
        every trial is its own group.
        """
        for trial in self.evaluate(batch, epochs=epochs):
            yield [trial]

    def stop(self) -> None:
        """Start no new configuration; those in flight finish and are yielded."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def close(self) -> None:
        """Release what the evaluator holds (processes, clusters)."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
