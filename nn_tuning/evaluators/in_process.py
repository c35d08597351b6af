"""Train configurations one after another in this process."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..evaluation import evaluate
from ..result import Trial
from .base import Evaluator

__all__ = ["InProcessEvaluator"]


class InProcessEvaluator(Evaluator):
    """Each configuration in turn, every fold, in the calling process.

    Lazy: the next configuration trains only when its trial is asked for, so
    :meth:`stop` takes effect between configurations.
    """

    name = "in-process"

    def evaluate(self, batch: Sequence[Mapping[str, Any]], *,
                 epochs: int | None = None) -> Iterator[Trial]:
        protocol = self.protocol.with_epochs(epochs)
        for params in batch:
            if self.stopping:
                return
            yield self._one(protocol, dict(params))

    def _one(self, protocol: Any, params: dict[str, Any]) -> Trial:
        """Train and score one configuration (subclasses choose where)."""
        return evaluate(protocol, self.X, self.y, params)
