"""The trial store: an SQLite database that keeps every finished trial.

Each trial is committed the moment it finishes (a stack's trials together,
in one transaction), so a run killed anywhere loses at most the trials in
flight. A store records the fingerprint of the run
that created it; opening it for a different run is refused.

Every opening for a run (the first one and each resume) is recorded as a
session with its start and, when the store is closed, its end, so that
:meth:`TrialStore.elapsed_seconds` gives each trial's finish time in wall
seconds of running, leaving out the time the run was stopped. Each trial
keeps its trainable-parameter count (``n_params``) and the engine that
trained it; stores written before these were recorded read back with
``None`` (unknown) and ``"keras"``.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .exceptions import StoreError
from .result import Trial, TrialState
from .space import config_key

__all__ = ["TrialStore", "active_seconds"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    config_key TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    fold_scores TEXT NOT NULL,
    fit_seconds REAL NOT NULL,
    reason TEXT,
    worker TEXT NOT NULL,
    device TEXT NOT NULL,
    finished_at REAL NOT NULL,
    budget INTEGER,
    n_params INTEGER,
    engine TEXT,
    intermediate TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL
);
"""

_COLUMNS = ("number", "params", "state", "fold_scores", "fit_seconds", "reason", "worker",
            "device", "finished_at")
# Columns added after the first version: Hyperband's budget, the trainable-parameter
# count, the engine that trained the trial and the scores it reported on its way
# (successive halving's rungs, JSON); an older store reads them as NULL.
_OPTIONAL_COLUMNS = (("budget", "INTEGER"), ("n_params", "INTEGER"), ("engine", "TEXT"),
                     ("intermediate", "TEXT"))


_INSERT = ("INSERT INTO trials (config_key, params, state, fold_scores, fit_seconds, reason,"
           " worker, device, finished_at, budget, n_params, engine, intermediate)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


# json.dumps(default=str) makes an encoder per call; this one is made once.
_PARAMS_JSON = json.JSONEncoder(default=str).encode


def _key(params: dict[str, Any], budget: int | None) -> str:
    # A Hyperband configuration trained for another budget is another trial.
    return config_key(params) if budget is None else f"{config_key(params)}@{int(budget)}"


class TrialStore:
    """Trials of one strategy's run, in ``path`` (an SQLite file) or in memory.

    Parameters
    ----------
    path : path-like, optional
        The database file; in memory when omitted.
    fingerprint : str, optional
        Identifies the run (strategy, space, data, protocol). An existing store
        with another fingerprint raises :class:`StoreError`. Opening with a
        fingerprint starts a session (see :meth:`sessions`).
    readonly : bool, default=False
        Only read an existing store (a report of a run that may still be
        going): nothing is written, an old store is not upgraded.
    """

    def __init__(self, path: str | Path | None = None, fingerprint: str | None = None,
                 *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        target = str(self.path) if self.path is not None else ":memory:"
        self._session: int | None = None
        self.readonly = readonly
        try:
            if readonly:
                if self.path is None or not self.path.is_file():
                    raise StoreError(f"no trial store at {target}")
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                           timeout=30, isolation_level=None)
            else:
                self._db = sqlite3.connect(target, timeout=30, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                # A killed process loses no committed trial in WAL mode without an fsync per
                # commit (only a power cut may lose the last ones); thousands of trials stay cheap.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._upgrade()
            self._tables = {r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._columns = {r[1] for r in self._db.execute("PRAGMA table_info(trials)")}
            stored = self._get_meta("fingerprint")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the trial store {target} is damaged ({exc}); move it away or pass overwrite=True"
            ) from None
        if readonly:
            self.fingerprint = stored
            return
        if fingerprint is not None:
            if stored is None:
                self._set_meta("fingerprint", fingerprint)
            elif stored != fingerprint:
                raise StoreError(
                    f"the trial store {target} belongs to a different run "
                    "(another config, space, data or protocol); use a new folder or pass overwrite=True"
                )
        self.fingerprint = fingerprint or stored
        if fingerprint is not None:
            self._session = self._db.execute(
                "INSERT INTO sessions (started_at) VALUES (?)", (time.time(),)).lastrowid

    def _upgrade(self) -> None:
        """Add the columns stores written by earlier versions lack (their trials keep NULL)."""
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(trials)")}
        for name, kind in _OPTIONAL_COLUMNS:
            if name not in columns:
                self._db.execute(f"ALTER TABLE trials ADD COLUMN {name} {kind}")
        # One row per (configuration, budget): the key stores written before it lacked.
        # A store that already holds a configuration twice (two processes ran on the
        # folder) still loads; add() keeps it from growing more.
        try:
            self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS trials_unique_key "
                             "ON trials (config_key)")
            # It finds trials as fast as the plain index stores written before it kept,
            # which then only slowed every insert.
            self._db.execute("DROP INDEX IF EXISTS trials_key")
        except sqlite3.IntegrityError:
            self._db.execute("CREATE INDEX IF NOT EXISTS trials_key ON trials (config_key)")
            logger.warning("the trial store %s holds some configurations more than once "
                           "(written by an earlier version); no more are added", self.path)

    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        """End this session (if the store was opened for a run) and close the database."""
        if self._session is not None:
            try:
                self._db.execute("UPDATE sessions SET ended_at = ? WHERE id = ?",
                                 (time.time(), self._session))
            except sqlite3.Error:  # closing must not hide the error that got us here
                logger.warning("could not record the end of the session in %s", self.path)
            self._session = None
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    def add(self, trial: Trial) -> Trial:
        """Commit ``trial`` now and give it the next number.

        A configuration (at a budget) is stored once: when another process
        (a keras-tuner worker) committed it first, nothing is written and the
        stored trial is returned instead.
        """
        return self.add_many([trial])[0]

    def add_many(self, trials: Sequence[Trial]) -> list[Trial]:
        """Commit ``trials`` in one transaction (a stack's trials) and number them in order.

        One commit instead of one per trial: what keeps the store ahead of
        stacks that finish thousands of trials a second (``experiments/bench_store.py``).
        Either every trial of the call is kept or, when it fails, none. As
        :meth:`add`, a configuration another process committed first is not
        written again; its stored trial takes its place in the returned list.
        """
        if not trials:
            return []
        now = time.time()
        keys = [_key(t.params, t.budget) for t in trials]
        self._db.execute("BEGIN IMMEDIATE")  # the checks and the inserts as one, across processes
        try:
            stored = self._stored(keys)
            new: dict[str, Trial] = {}
            for key, trial in zip(keys, trials):
                if key not in stored:
                    new.setdefault(key, trial)  # the same configuration twice: kept once
            last = self._db.execute("SELECT COALESCE(MAX(number), 0) FROM trials").fetchone()[0]
            # One statement for all: under the write lock the rows take the next numbers in order.
            self._db.executemany(_INSERT, [self._row(k, t, now) for k, t in new.items()])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        for i, trial in enumerate(new.values()):
            trial.number = last + i
        out = [stored.get(key) or new[key] for key in keys]
        for trial, given in zip(out, trials):
            if trial is not given:
                logger.debug("trial %s %s was already stored (by another process): keeping "
                             "that one", trial.number, trial.params)
        return out

    def _stored(self, keys: Sequence[str]) -> dict[str, Trial]:
        """The stored trials of ``keys`` (the first of each key), by key."""
        found: dict[str, Trial] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):  # SQLite's host-parameter limit
            part = unique[i:i + 500]
            rows = self._db.execute(
                f"SELECT config_key, {self._select} FROM trials WHERE config_key IN "
                f"({', '.join('?' * len(part))}) ORDER BY number", part).fetchall()
            for row in rows:
                found.setdefault(row[0], self._row_to_trial(row[1:]))
        return found

    @staticmethod
    def _row(key: str, trial: Trial, now: float) -> tuple:
        return (key, _PARAMS_JSON(trial.params), trial.state.value,
                json.dumps(trial.fold_scores), trial.fit_seconds, trial.reason, trial.worker,
                trial.device, now, trial.budget,
                None if trial.n_params is None else int(trial.n_params), trial.engine,
                None if trial.intermediate is None else json.dumps(
                    {str(k): v for k, v in trial.intermediate.items()}))

    def get(self, params: dict[str, Any], budget: int | None = None) -> Trial | None:
        """The finished trial of this configuration (at this budget), if any."""
        row = self._db.execute(
            f"SELECT {self._select} FROM trials WHERE config_key = ? ORDER BY number LIMIT 1",
            (_key(params, budget),),
        ).fetchone()
        return self._row_to_trial(row) if row else None

    @property
    def _select(self) -> str:
        return ", ".join(_COLUMNS + tuple(name if name in self._columns else "NULL"
                                          for name, _ in _OPTIONAL_COLUMNS))

    def trials(self, after: int | None = None) -> list[Trial]:
        """Every stored trial (numbered above ``after``, if given), in the order they finished."""
        rows = self._db.execute(
            f"SELECT {self._select} FROM trials WHERE number > ? ORDER BY number",
            (-1 if after is None else after + 1,)).fetchall()
        return [self._row_to_trial(r) for r in rows]

    def finished_at(self) -> list[float]:
        """The Unix time each trial of :meth:`trials` was committed."""
        return [r[0] for r in self._db.execute("SELECT finished_at FROM trials ORDER BY number")]

    def sessions(self) -> list[tuple[float, float | None]]:
        """``(started_at, ended_at)`` of each run on this store; ``ended_at`` is None for a
        run still going or killed. Empty for stores written before sessions were recorded."""
        if "sessions" not in self._tables:
            return []
        return [(a, b) for a, b in self._db.execute(
            "SELECT started_at, ended_at FROM sessions ORDER BY started_at")]

    def elapsed_seconds(self) -> list[float] | None:
        """Wall seconds of running from the first start to each trial's finish.

        Time between sessions (the run stopped, then resumed) is not counted.
        None when the store has no session records (written by an earlier version).
        """
        return active_seconds(self.sessions(), self.finished_at())

    def _row_to_trial(self, row: tuple) -> Trial:
        (number, params, state, folds, fit_seconds, reason, worker, device, _t, budget,
         n_params, engine, intermediate) = row
        try:
            return Trial(
                params=json.loads(params), state=TrialState(state),
                fold_scores=[float("nan") if s is None else s for s in json.loads(folds)],
                fit_seconds=fit_seconds, reason=reason, number=number - 1,
                worker=worker, device=device, budget=budget,
                n_params=None if n_params is None else int(n_params), engine=engine or "keras",
                intermediate=None if intermediate is None else {
                    int(k): v for k, v in json.loads(intermediate).items()},
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"trial {number - 1} in the store {self.path or ':memory:'} is damaged ({exc}); "
                "pass overwrite=True"
            ) from None


def active_seconds(sessions: list[tuple[float, float | None]],
                   finished: list[float]) -> list[float] | None:
    """Seconds of running up to each time in ``finished``, over the union of sessions.

    A session without an end (a run killed, or still going) is taken to last
    until the last trial that finished before the next session started (or
    until now for the last session). Sessions that overlap (keras-tuner
    workers opening the store beside their chief) count once.
    """
    starts = sorted(sessions)
    if not starts or (finished and min(finished) < starts[0][0]):
        return None  # trials from before sessions were recorded: their time is unknown
    spans = []
    for i, (start, end) in enumerate(starts):
        if end is None:
            following = starts[i + 1][0] if i + 1 < len(starts) else math.inf
            inside = [f for f in finished if start <= f <= following]
            end = max(inside, default=start)
        spans.append((start, max(start, end)))
    merged: list[list[float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out = []
    for f in finished:
        out.append(sum(max(0.0, min(f, end) - start) for start, end in merged if start <= f))
    return out
