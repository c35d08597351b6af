"""What happens after each trial: the progress bar and a line of ``trials.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from .result import Trial, TrialState, trial_row, trials_frame, write_atomic
from .store import TrialStore

__all__ = ["TrialWatcher"]


def _cell(value: Any) -> Any:
    """A value as pandas' ``to_csv`` writes it: NaN and None as an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


class TrialWatcher:
    """After each commit: the progress bar, rows appended to ``trials.csv`` in the run folder.

    The file is written once from the store when the watcher starts (a resumed
    run's earlier trials) and then grows by the lines of each commit's new trials (a stack's at
    once), so a run of
    n trials writes O(n) rows, not O(n^2). A trial whose columns the header
    lacks (a first failed trial has no fold scores) rewrites the file once
    from the store. :meth:`TuningResult.save` writes the final table.
    """

    def __init__(self, store: TrialStore, workdir: Path | None, total: int | None,
                 label: str, progress: bool) -> None:
        self.store = store
        self.csv = workdir / "trials.csv" if workdir is not None else None
        self.header: list[str] | None = None
        self.written = -1  # the highest trial number in the file
        self.best = -math.inf
        self.bar = None
        if self.csv is not None:
            self._rewrite()
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit="trial", leave=True)

    def _rewrite(self) -> None:
        trials = self.store.trials()
        if not trials:
            return
        frame = trials_frame(trials)
        write_atomic(self.csv, frame.to_csv(index=False))
        self.header = list(frame.columns)
        self.columns = set(self.header)
        self.written = max(t.number for t in trials)

    def _append(self, trials: tuple[Trial, ...]) -> None:
        fresh = [t for t in trials if t.number is not None and t.number > self.written]
        if not fresh:
            return  # already in the file (resumed trials)
        numbers = sorted(t.number for t in fresh)
        if numbers == list(range(self.written + 1, self.written + 1 + len(numbers))):
            new = sorted(fresh, key=lambda t: t.number)
        else:  # trials other processes (keras-tuner workers) committed since the last line
            new = self.store.trials(after=self.written)
        budget = self.header is not None and "budget" in self.header
        rows = [trial_row(t, budget or t.budget is not None) for t in new]
        if self.header is None or any(not row.keys() <= self.columns for row in rows):
            self._rewrite()  # a column the header lacks
            return
        # The csv module, not pandas: a DataFrame per line costs more than the SQLite commit.
        with open(self.csv, "a", newline="") as fh:
            writer = csv.DictWriter(fh, self.header, lineterminator="\n")
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        self.written = max(t.number for t in new)

    def __call__(self, *trials: Trial) -> None:
        """After ``trials`` were committed (together: one stack's): one write, one bar update."""
        if self.bar is not None:
            for trial in trials:
                if trial.state is TrialState.COMPLETE and trial.mean_score > self.best:
                    self.best = trial.mean_score
            self.bar.update(len(trials))
            if math.isfinite(self.best):
                self.bar.set_postfix(best=f"{self.best:.4g}")
        if self.csv is not None:
            self._append(trials)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
