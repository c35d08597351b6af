"""Where a stacked run's time goes: building, tracing, training, scoring (process totals).

:func:`timed` adds a block's wall time to one part; :func:`spent` reads the
totals, so a caller takes the difference around a run
(:func:`nn_tuning.tune` puts it in ``result.extra["seconds"]``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PARTS", "spent", "timed"]

PARTS = ("build", "trace", "train", "score")
_SPENT = dict.fromkeys(PARTS, 0.0)


@contextmanager
def timed(part: str) -> Iterator[None]:
    """Count the block's wall time as ``part`` (one of :data:`PARTS`)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _SPENT[part] += time.perf_counter() - start


def spent() -> dict[str, float]:
    """Seconds spent so far in this process, per part."""
    return dict(_SPENT)
