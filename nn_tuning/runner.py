"""Run an experiment: every strategy on the same data, folds and budget, then the report.

Everything that can be wrong with a config or its data is checked before the
run folder is touched, so a bad config never damages an earlier run's results.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .data import DataSplit, load_data
from .devices import configure_devices
from .exceptions import ConfigError, NNTuningError
from .experiment import Experiment
from .result import TuningResult, write_atomic
from .strategies import STRATEGIES
from .tune import tune
from .versions import package_versions

__all__ = ["run_experiment", "test_metrics", "prepare_data", "select_strategies"]

logger = logging.getLogger("nn_tuning")

_RUN_FILES = ("experiment.json", "config.toml", "versions.json", "data.json")


def select_strategies(exp: Experiment, names: list[str] | None) -> list[str]:
    """The strategies to run, in the order given (default: the config's order)."""
    if not names:
        return list(exp.strategies)
    for name in names:
        if name not in STRATEGIES:
            raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
        if name not in exp.strategies:
            raise ConfigError(f"{exp.source}: strategy {name!r} has no [strategies.{name}] table; "
                              f"configured: {', '.join(exp.strategies)}")
    return list(dict.fromkeys(names))


def prepare_data(exp: Experiment) -> DataSplit:
    """Load the experiment's data; errors name the config file."""
    d = exp.data
    try:
        return load_data(
            dataset=d.get("dataset"), csv=exp.csv_path(), target=d.get("target"),
            features=d.get("features"), test_size=d["test_size"], scale=d["scale"],
            scale_target=d["scale_target"], task=exp.task,
            seed=d.get("split_seed", exp.training["seed"]),
        )
    except NNTuningError as exc:
        raise type(exc)(f"{exp.source}: {exc}") from None


def _prepare_folder(out: Path, exp: Experiment, overwrite: bool) -> None:
    marker = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not marker.is_file():
            raise ConfigError(f"--out {str(out)!r} is not empty and holds no nn-tune run; "
                              "choose another folder")
        if overwrite:
            logger.info("--overwrite: removing the earlier run in %s", out)
            shutil.rmtree(out)
        else:
            try:
                before = json.loads(marker.read_text())
            except (OSError, ValueError):
                before = None
            now = json.loads(json.dumps(exp.resolved(), default=str))
            if not isinstance(before, dict) or _comparable(before) != _comparable(now):
                raise ConfigError(f"--out {str(out)!r} holds a different run (another config or "
                                  "overrides); pass --overwrite to replace it or choose another "
                                  "--out")
            logger.info("resuming the run in %s", out)
    out.mkdir(parents=True, exist_ok=True)


def _comparable(resolved: dict[str, Any]) -> dict[str, Any]:
    # Where the config was read from does not change the run.
    return {k: v for k, v in resolved.items() if k not in ("source", "description")}


def test_metrics(result: TuningResult, data: DataSplit, task: str) -> dict[str, float]:
    """Metrics of the refit best model on the held-out test split (original target units)."""
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

    pred = result.best_estimator.predict(data.X_test)
    if task == "classification":
        return {"accuracy": float(accuracy_score(data.y_test, pred)),
                "f1_macro": float(f1_score(data.y_test, pred, average="macro"))}
    y_true = np.asarray(data.y_test, dtype="float64")
    y_pred = data.inverse_target(pred)
    n, p = len(y_true), data.X_test.shape[1]
    r2 = float(r2_score(y_true, y_pred))
    adj = 1 - (1 - r2) * (n - 1) / (n - p - 1) if n - p - 1 > 0 else float("nan")
    return {"rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))), "r2": r2,
            "adjusted_r2": float(adj), "mae": float(mean_absolute_error(y_true, y_pred))}


def _run_strategy(exp: Experiment, name: str, data: DataSplit, out: Path,
                  progress: bool) -> dict[str, Any]:
    opts = exp.strategies[name]
    t = exp.training
    space = exp.grid_space(opts.get("max_trials")) if name == "grid" else exp.space
    if name == "grid" and space is not exp.space:
        logger.warning("grid: --max-trials %s runs a %d-point sub-grid of the %d-point grid",
                       opts["max_trials"], space.grid_size, exp.space.grid_size)
    options = {k: opts[k] for k in ("num_initial_points", "factor", "hyperband_iterations")
               if k in opts}
    if "max_seconds" in opts:
        logger.warning("%s: max_seconds=%s is recorded but not enforced (tune() has no "
                       "wall-clock budget yet)", name, opts["max_seconds"])
    folder = out / name
    result = tune(
        exp.builder, space, data.X_train, data.y_train, strategy=name, cv=t["cv"],
        scoring=t["scoring"], epochs=t["epochs"], batch_size=t["batch_size"],
        max_trials=opts.get("max_trials") if name != "grid" else None, seed=t["seed"],
        configs=opts.get("configs"), task=exp.task, fixed=exp.builder_args, directory=folder,
        workers=t["workers"], progress=progress, options=options, device=t["device"],
    )
    summary = result.summary()
    summary.update(
        budget={k: opts[k] for k in ("max_trials", "max_seconds") if k in opts}
        | ({"configs": len(opts["configs"])} if name == "manual" else {})
        | ({"grid_points": space.grid_size} if name == "grid" else {}),
        test_metrics=test_metrics(result, data, exp.task),
        target_scaled=data.y_scaler is not None,
        builder=exp.builder_name,
    )
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2, default=str))
    from .tensorboard_logs import write_hparams

    write_hparams(result.trials, space, result.scoring, folder / "tensorboard")
    logger.info("%s: %d trials, best CV %s %.4g, test %s", name, result.n_trials,
                result.scoring, result.best_score,
                ", ".join(f"{k} {v:.4g}" for k, v in summary["test_metrics"].items()))
    return summary


def run_experiment(exp: Experiment, out_dir: str | Path, strategies: list[str] | None = None,
                   *, overwrite: bool = False, progress: bool = True) -> Path:
    """Run ``strategies`` of ``exp`` into ``out_dir`` and write the report.

    Each strategy runs through :func:`nn_tuning.tune` in ``out_dir/<strategy>``
    with the same training data, seed (hence CV folds), epochs and batch size.
    The refit best model of each is scored on the held-out test split.

    Returns
    -------
    Path
        The report file.
    """
    names = select_strategies(exp, strategies)
    data = prepare_data(exp)
    # Devices are chosen once, before the run folder is touched; tune() repeats
    # the same (idempotent) choice per strategy and records it with each trial.
    try:
        configure_devices(exp.training["device"])
    except ConfigError as exc:
        raise ConfigError(f"{exp.source}: training.device {exp.training['device']!r}: {exc}") \
            from None
    out = Path(out_dir)
    _prepare_folder(out, exp, overwrite)
    write_atomic(out / "experiment.json", json.dumps(exp.resolved(), indent=2, default=str))
    write_atomic(out / "config.toml", exp.text)
    write_atomic(out / "versions.json", json.dumps(package_versions(), indent=2))
    write_atomic(out / "data.json", json.dumps(data.describe(), indent=2))
    for name in names:
        _run_strategy(exp, name, data, out, progress)
    from .report import build_report

    return build_report(out)
