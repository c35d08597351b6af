"""One process per run folder: an advisory ``flock`` on a lock file beside the folder.

Two ``nn-tune run`` processes on one folder would both train every
configuration and store it twice. :class:`RunLock` takes an exclusive,
non-blocking ``fcntl.flock`` on ``.<folder>.lock`` next to the folder (beside
it, not inside, so that ``--overwrite`` can delete the folder and a refused
call writes nothing in it); the file holds the holder's pid and host. A second
process is refused with one line naming them. The kernel drops the lock of a
process that dies (even by SIGKILL), so a lock left by a killed run is simply
taken over. keras-tuner workers join their chief's run and take no lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from .exceptions import StoreError

__all__ = ["RunLock", "lock_path"]

logger = logging.getLogger("nn_tuning")


def lock_path(folder: str | Path) -> Path:
    """The lock file of run folder ``folder``: ``.<name>.lock`` in its parent."""
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


class RunLock:
    """Hold run folder ``folder`` for this process, as a context manager.

    Raises :class:`~nn_tuning.exceptions.StoreError` (one line: the folder, the
    holder's pid and host) when another live process holds it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise StoreError(
                    f"run folder {str(self.folder)!r} is in use by process "
                    f"{holder.get('pid', '?')} on {holder.get('host', '?')}; wait for it to end "
                    "or choose another folder") from None
            # The holder we waited on may have removed the file as it released it: a lock on
            # a file no longer at self.path guards nothing, so try again.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        earlier = _read(fd)
        if earlier:
            logger.info("taking over the lock of %s left by process %s on %s (no longer running)",
                        self.folder, earlier.get("pid"), earlier.get("host"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.time()}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: nobody locks a removed file
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
