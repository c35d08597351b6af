"""The comparison report of a run folder: tables and plots from what was stored.

Reads each ``<run>/<strategy>/`` folder (``trials.db``, and ``summary.json``
once the strategy has finished; never re-trains, loads no model) and writes
``report.md`` and a self-contained ``report.html`` with PNG plots beside them:

- ``best_so_far.png``: best CV score so far against trial number and against
  elapsed wall-clock time, every strategy on one chart;
- ``score_by_hyperparameter.png``: each trial's CV score against each
  hyperparameter's value;
- ``importance.png``: fANOVA hyperparameter importance per strategy and over
  the whole study (:mod:`nn_tuning.report._importance`);
- ``parallel_coordinates.png``: one line per trial, coloured by CV score;
- ``score_vs_size.png``: CV score against trainable parameters, the Pareto
  front and the smallest good network (the one-standard-error rule).

A run still going or killed is reported from its ``trials.db`` alone, marked
partial.
"""

from __future__ import annotations

from ._build import build_report
from ._load import load_run, run_name

__all__ = ["build_report", "load_run", "run_name"]
