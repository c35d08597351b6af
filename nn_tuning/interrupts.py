"""Ctrl-C that always stops a search, even when TensorFlow swallows the first one.

A SIGINT that arrives while TensorFlow traces a graph (a new model's training
step) can be lost: Python raises KeyboardInterrupt inside TensorFlow's
tracing, which clears it, and the search goes on to its end (seen in about
1 run in 6 when Ctrl-C came just as a trial was being built). While a search
runs, :func:`remembered` replaces Python's default SIGINT handler with one
that also *remembers* the signal, and the search context calls
:func:`raise_if_interrupted` as each trial is recorded, so a lost Ctrl-C
still stops the search at the next trial (or stack) boundary. The previous
handler is put back afterwards; a handler the caller installed is left
alone, as is every thread but the main one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["raise_if_interrupted", "remembered"]

_pending = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def remembered() -> Iterator[None]:
    """Remember SIGINTs for the block, if Python's default handler is the one installed."""
    global _pending
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a SIGINT came during :func:`remembered` (once)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
