"""The trial store: an SQLite database that keeps every finished trial.

Each trial is committed the moment it finishes, so a run killed anywhere
loses at most the trials in flight. A store records the fingerprint of the run
that created it; opening it for a different run is refused.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from .exceptions import StoreError
from .result import Trial, TrialState
from .space import config_key

__all__ = ["TrialStore"]

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
    budget INTEGER
);
CREATE INDEX IF NOT EXISTS trials_key ON trials (config_key);
"""


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
        with another fingerprint raises :class:`StoreError`.
    """

    def __init__(self, path: str | Path | None = None, fingerprint: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        target = str(self.path) if self.path is not None else ":memory:"
        try:
            self._db = sqlite3.connect(target, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            stored = self._get_meta("fingerprint")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the trial store {target} is damaged ({exc}); move it away or pass overwrite=True"
            ) from None
        if fingerprint is not None:
            if stored is None:
                self._set_meta("fingerprint", fingerprint)
            elif stored != fingerprint:
                raise StoreError(
                    f"the trial store {target} belongs to a different run "
                    "(another config, space, data or protocol); use a new folder or pass overwrite=True"
                )
        self.fingerprint = fingerprint or stored

    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    def add(self, trial: Trial) -> Trial:
        """Commit ``trial`` now and give it the next number."""
        cur = self._db.execute(
            "INSERT INTO trials (config_key, params, state, fold_scores, fit_seconds, reason,"
            " worker, device, finished_at, budget) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _key(trial.params, trial.budget), json.dumps(trial.params, default=str),
                trial.state.value, json.dumps(trial.fold_scores), trial.fit_seconds,
                trial.reason, trial.worker, trial.device, time.time(), trial.budget,
            ),
        )
        trial.number = cur.lastrowid - 1
        return trial

    def get(self, params: dict[str, Any], budget: int | None = None) -> Trial | None:
        """The finished trial of this configuration (at this budget), if any."""
        row = self._db.execute(
            "SELECT * FROM trials WHERE config_key = ? ORDER BY number LIMIT 1",
            (_key(params, budget),),
        ).fetchone()
        return self._row_to_trial(row) if row else None

    def trials(self) -> list[Trial]:
        rows = self._db.execute("SELECT * FROM trials ORDER BY number").fetchall()
        return [self._row_to_trial(r) for r in rows]

    def _row_to_trial(self, row: tuple) -> Trial:
        number, _k, params, state, folds, fit_seconds, reason, worker, device, _t, budget = row
        try:
            return Trial(
                params=json.loads(params), state=TrialState(state),
                fold_scores=[float("nan") if s is None else s for s in json.loads(folds)],
                fit_seconds=fit_seconds, reason=reason, number=number - 1,
                worker=worker, device=device, budget=budget,
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"trial {number - 1} in the store {self.path or ':memory:'} is damaged ({exc}); "
                "pass overwrite=True"
            ) from None
