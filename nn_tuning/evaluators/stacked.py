"""Train a batch of configurations as stacks: many (configuration, fold) replicas, one model.

The evaluator of ``engine="stacked"`` (and of ``"auto"`` where it applies):
configurations whose model is a chain of Dense, Dropout and Activation
layers (see :mod:`nn_tuning.stacked.structure`) train together, chunked into
stacks (:mod:`nn_tuning.stacked.plan`); the others go to ``fallback``, the
per-configuration evaluator the run would otherwise use, and the reason is
warned of once (``not_stacked`` counts them per reason, for the result).
Chunks train where its executor puts them
(:mod:`nn_tuning.stacked.executors`: here, local worker processes, Dask).
Trials come back as each stack finishes, so the store commits them stack by
stack, one transaction each; a trial's ``fit_seconds`` is its share of its stack's
time, and its ``engine`` is ``"stacked"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..evaluation import Protocol
from ..result import Trial
from ..stacked.executors import ChunkExecutor, InProcessExecutor
from ..stacked.plan import DEFAULT_MAX_BYTES, DEFAULT_MAX_REPLICAS, stacked_groups
from .base import Evaluator

__all__ = ["StackedEvaluator"]


class StackedEvaluator(Evaluator):
    """Stacks of configurations x folds, trained in this process.

    Parameters
    ----------
    protocol, X, y
        As every evaluator.
    fallback : Evaluator
        Trains what cannot stack, one configuration at a time.
    max_replicas : int
        Most replicas (configurations x folds) in one stack.
    max_bytes : int
        Most estimated memory of one stack (weights, optimizer state,
        activations); the chunk plan depends on these settings only.
    executor : ChunkExecutor, optional
        Where the chunks train (:mod:`nn_tuning.stacked.executors`): this
        process by default, or local worker processes, or Dask.
    """

    name = "stacked"
    fuses_batches = True

    def __init__(self, protocol: Protocol, X: np.ndarray, y: np.ndarray, fallback: Evaluator, *,
                 max_replicas: int = DEFAULT_MAX_REPLICAS,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 executor: ChunkExecutor | None = None) -> None:
        super().__init__(protocol, X, y)
        self.executor = executor or InProcessExecutor()
        self.fallback = fallback
        self.max_replicas = max_replicas
        self.max_bytes = max_bytes
        # Configurations not stacked, per reason (a warning says each reason once).
        self.not_stacked: dict[str, int] = {}

    def evaluate(self, batch: Sequence[Mapping[str, Any]], *,
                 epochs: int | None = None) -> Iterator[Trial]:
        for group in self.evaluate_groups(batch, epochs=epochs):
            yield from group

    def evaluate_groups(self, batch: Sequence[Mapping[str, Any]], *,
                        epochs: int | None = None) -> Iterator[list[Trial]]:
        protocol = self.protocol.with_epochs(epochs)
        yield from stacked_groups(
            protocol, self.X, self.y, batch, seed=protocol.seed,
            fallback=lambda configs: self.fallback.evaluate(configs, epochs=epochs),
            max_replicas=self.max_replicas, max_bytes=self.max_bytes, logged=self.not_stacked,
            stopping=lambda: self.stopping, deadline=self.deadline, executor=self.executor)

    def stop(self) -> None:
        super().stop()
        self.fallback.stop()

    def close(self) -> None:
        try:
            self.executor.close()
        finally:
            self.fallback.close()
