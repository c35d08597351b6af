"""``nn-tune export``: a run's trials written as Optuna studies, for ``optuna-dashboard``.

Each strategy's trials become one study named ``<run>-<strategy>`` in an
Optuna storage; the translation (distributions, tuples, failed trials) is
:mod:`nn_tuning.report._optuna`'s, shared with the report's importance plots.

>>> from nn_tuning.export import export_optuna
>>> export_optuna("runs/advertising", "sqlite:///study.db")  # doctest: +SKIP
['advertising-grid', 'advertising-random']
"""

from __future__ import annotations

import logging
from pathlib import Path

from .exceptions import ConfigError
from .report import load_run, run_name
from .report._optuna import frozen_trials, optuna_distributions, optuna_study, quiet_optuna, study_name

__all__ = ["export_optuna"]

logger = logging.getLogger("nn_tuning")


def export_optuna(run_dir: str | Path, storage: str, *, overwrite: bool = False) -> list[str]:
    """Write each strategy of ``run_dir`` as an Optuna study in ``storage``.

    Works on a finished run folder and on one still going or killed (from
    each strategy's ``trials.db``).

    Parameters
    ----------
    run_dir : path
        An ``nn-tune`` run folder.
    storage : str
        An Optuna (SQLAlchemy) storage URL such as ``sqlite:///study.db``.
    overwrite : bool, default=False
        Replace studies of the same names; otherwise an existing one is an
        error and nothing is written.

    Returns
    -------
    list of str
        The study names, ``<run>-<strategy>``.
    """
    import optuna

    if not isinstance(storage, str) or "://" not in storage:
        raise ConfigError(f"--optuna must be a database URL such as sqlite:///study.db, "
                          f"got {storage!r}")
    runs = load_run(run_dir)
    name = run_name(run_dir)
    prepared = []
    for strategy, data in runs.items():
        dists = optuna_distributions(data["params"], data.get("space"))
        frozen_trials(data, dists)  # every trial valid before anything is written
        prepared.append((study_name(name, strategy), data, dists))
    db_file = _sqlite_file(storage)
    fresh = db_file is not None and not db_file.exists()
    try:
        rdb = optuna.storages.RDBStorage(storage)
    except Exception as exc:  # SQLAlchemy's many errors: a bad URL or an unreachable database
        if fresh and db_file.exists():
            db_file.unlink()
        raise ConfigError(f"--optuna {storage!r}: cannot open the storage "
                          f"({str(exc).splitlines()[0]})") from None
    existing = {s.study_name for s in rdb.get_all_studies()}
    clash = [n for n, _, _ in prepared if n in existing]
    if clash and not overwrite:
        raise ConfigError(f"--optuna {storage!r} already holds study {clash[0]!r}; pass "
                          "--overwrite to replace it or export to another storage")
    with quiet_optuna():
        for n in clash:
            optuna.delete_study(study_name=n, storage=rdb)
        for n, data, dists in prepared:
            optuna_study([data], storage=rdb, study_name=n, distributions=dists)
            logger.info("exported %d trials to Optuna study %s", len(data["params"]), n)
    return [n for n, _, _ in prepared]


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and len(url) > len(prefix) and ":memory:" not in url:
        return Path(url[len(prefix):])
    return None
