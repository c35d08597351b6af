"""TensorBoard HParams logs written from trial records, for every strategy alike.

keras-tuner only logs its own trials; here each trial of any strategy becomes
one TensorBoard run (``trial-0000``, ...) holding its hyperparameters and its
CV scores, and the folder root holds the HParams experiment config, so
``tensorboard --logdir <run>/<strategy>/tensorboard`` shows every trial in
the HParams dashboard.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .space import Choice, Fixed, Float, Int, SearchSpace

__all__ = ["write_hparams", "param_columns", "METRICS"]

#: Scalars written for each trial.
METRICS = ("cv_score", "cv_score_std", "fit_seconds")


def param_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of a trials table (between ``trial`` and ``mean_score``)."""
    cols = list(trials.columns)
    if "trial" not in cols or "mean_score" not in cols:
        return []
    return cols[cols.index("trial") + 1: cols.index("mean_score")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


def _domain(entry: Any, hp: Any) -> Any:
    if isinstance(entry, Int):
        return hp.IntInterval(int(entry.low), int(entry.high))
    if isinstance(entry, Float):
        return hp.RealInterval(float(entry.low), float(entry.high))
    if isinstance(entry, (Choice, Fixed)):
        values = entry.values if isinstance(entry, Choice) else (entry.value,)
        types = {type(v) for v in values}
        if len(types) == 1 and types <= {str, int, float, bool}:
            return hp.Discrete(list(values))
        if types <= {int, float}:
            return hp.Discrete([float(v) for v in values])
    return None


def _value_for(entry: Any, value: Any) -> Any:
    value = _plain(value)
    if isinstance(entry, Float) and isinstance(value, int):
        return float(value)
    if isinstance(entry, (Choice, Fixed)):
        values = entry.values if isinstance(entry, Choice) else (entry.value,)
        if any(isinstance(v, float) for v in values) and isinstance(value, int):
            return float(value)
    return value


def write_hparams(trials: pd.DataFrame, space: SearchSpace | None, scoring: str,
                  logdir: str | Path) -> int:
    """Write one TensorBoard run per trial under ``logdir`` and the HParams config.

    An earlier ``logdir`` is replaced. Failed trials are logged with their
    hyperparameters and no scores.

    Parameters
    ----------
    trials : pandas.DataFrame
        ``TuningResult.trials`` (or a ``trials.csv`` read back).
    space : SearchSpace, optional
        Gives the HParams domains; hyperparameters outside it get none.
    scoring : str
        Shown as the name of the ``cv_score`` metric.
    logdir : path

    Returns
    -------
    int
        The number of trials written.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    logdir = Path(logdir)
    if logdir.exists():
        shutil.rmtree(logdir)
    names = param_columns(trials)
    entries = dict(space) if space is not None else {}
    hparams = {n: hp.HParam(n, _domain(entries.get(n), hp)) for n in names}
    metrics = [hp.Metric("cv_score", display_name=f"CV {scoring}"),
               hp.Metric("cv_score_std", display_name="CV score std"),
               hp.Metric("fit_seconds", display_name="fit seconds")]
    with tf.summary.create_file_writer(str(logdir)).as_default():
        hp.hparams_config(hparams=list(hparams.values()), metrics=metrics)
    written = 0
    for _, row in trials.iterrows():
        values = {}
        for n in names:
            v = row[n]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            values[hparams[n]] = _value_for(entries.get(n), v)
        number = int(row["trial"]) if pd.notna(row["trial"]) else written
        writer = tf.summary.create_file_writer(str(logdir / f"trial-{number:04d}"))
        with writer.as_default():
            hp.hparams(values, trial_id=f"trial-{number:04d}")
            if row.get("state") == "complete":
                tf.summary.scalar("cv_score", float(row["mean_score"]), step=1)
                tf.summary.scalar("cv_score_std", float(row["std_score"]), step=1)
            tf.summary.scalar("fit_seconds", float(row.get("fit_seconds", 0.0) or 0.0), step=1)
        writer.close()
        written += 1
    return written
