"""The run folder of ``tune()``: checked before, created on entry, released on exit.

A run folder holds one strategy's run: the trial store ``trials.db`` and the
saved results. :func:`check_run_folder` refuses, before anything is written,
a path that is a file, a folder that holds something other than an
nn-tuning run when ``overwrite`` would delete it, and a store of a different
run when resuming. :class:`RunFolder` then creates (or replaces) the folder,
or a scratch folder when the run needs a file but the caller gave none, and
removes the scratch folder in every outcome.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path
from types import TracebackType

from .exceptions import ConfigError, StoreError

__all__ = ["RunFolder", "check_run_folder", "STORE_FILE"]

STORE_FILE = "trials.db"
logger = logging.getLogger("nn_tuning")


def _stored_fingerprint(db: Path) -> str | None:
    """The fingerprint in the store ``db``, read from a copy: the run folder is not touched.

    (SQLite creates or rewrites the ``-wal``/``-shm`` files of any connection it
    opens, even a read-only one; a run killed mid-way keeps its rows there.)
    """
    with tempfile.TemporaryDirectory(prefix="nn_tuning_check_") as tmp:
        for suffix in ("", "-wal"):
            source = db.with_name(db.name + suffix)
            if source.is_file():
                shutil.copyfile(source, Path(tmp) / (STORE_FILE + suffix))
        try:
            con = sqlite3.connect(Path(tmp) / STORE_FILE)
            try:
                row = con.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the trial store {db} is damaged ({exc}); move it away or pass "
                             "overwrite=True") from None
    return row[0] if row else None


def check_run_folder(directory: str | Path | None, *, overwrite: bool,
                     fingerprint: str) -> None:
    """Refuse a run folder ``tune()`` must not use, naming the argument; write nothing."""
    if directory is None:
        return
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"directory {str(path)!r} is a file, not a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    db = path / STORE_FILE
    if overwrite:
        if not db.is_file():
            raise ConfigError(f"directory {str(path)!r} holds no nn-tuning run (no {STORE_FILE}); "
                              "overwrite=True deletes only a run folder: choose another directory")
        return
    if db.is_file():
        stored = _stored_fingerprint(db)
        if stored is not None and stored != fingerprint:
            raise StoreError(
                f"directory {str(path)!r} holds a different run (another strategy, space, data "
                "or protocol); pass overwrite=True to replace it or choose another directory")


class RunFolder:
    """The folder a run writes to, as a context manager.

    Parameters
    ----------
    directory : path, optional
        The caller's run folder; created on entry (replaced with ``overwrite``).
    overwrite : bool
        Delete the run already in ``directory`` first (checked by :func:`check_run_folder`).
    scratch : bool
        Without ``directory``, use a temporary folder (removed on exit).

    Attributes
    ----------
    path : Path or None
        Where the run writes; ``None`` for an in-memory run.
    """

    def __init__(self, directory: str | Path | None, *, overwrite: bool = False,
                 scratch: bool = False) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.overwrite = overwrite
        self.scratch = scratch
        self.path: Path | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def store_path(self) -> Path | None:
        return self.path / STORE_FILE if self.path is not None else None

    def __enter__(self) -> RunFolder:
        if self.directory is not None:
            if self.overwrite and self.directory.exists():
                logger.info("overwrite: removing the earlier run in %s", self.directory)
                shutil.rmtree(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            self.path = self.directory
        elif self.scratch:
            self._tmp = tempfile.TemporaryDirectory(prefix="nn_tuning_")
            self.path = Path(self._tmp.name)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
