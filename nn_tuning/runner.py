"""Run an experiment: every strategy on the same data, folds and budget, then the report.

Everything that can be wrong with a config or its data is checked before the
run folder is touched, so a bad config never damages an earlier run's results.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .data import DataSplit, load_data
from .devices import configure_devices
from .exceptions import ConfigError, NNTuningError
from .experiment import Experiment
from .fit_settings import fit_from_table
from .locks import RunLock
from .result import TuningResult, write_atomic
from .scaleout import ScaleMode, ScaleOut
from .strategies import STRATEGIES, strategy_class, supporting, unknown_strategy
from .tune import check_call, check_refit, tune
from .versions import package_versions

__all__ = ["run_experiment", "run_worker", "test_metrics", "prepare_data", "select_strategies"]


logger = logging.getLogger("nn_tuning")


def select_strategies(exp: Experiment, names: list[str] | None) -> list[str]:
    """The strategies to run, in the order given (default: the config's order)."""
    if not names:
        return list(exp.strategies)
    for name in names:
        if name not in STRATEGIES:
            raise unknown_strategy(name)
        if name not in exp.strategies:
            raise ConfigError(f"{exp.source}: strategy {name!r} has no [strategies.{name}] table; "
                              f"configured: {', '.join(exp.strategies)}")
    return list(dict.fromkeys(names))


def prepare_data(exp: Experiment) -> DataSplit:
    """Load the experiment's data; errors name the config file."""
    d = exp.data
    try:
        return load_data(
            **d.load_args(exp.base_dir), test_size=d.test_size, scale=d.scale,
            scale_target=d.scale_target, task=exp.task,
            seed=exp.training.seed if d.split_seed is None else d.split_seed,
        )
    except NNTuningError as exc:
        raise type(exc)(f"{exp.source}: {exc}") from None


def _prepare_folder(out: Path, exp: Experiment, overwrite: bool) -> None:
    marker = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir {str(out)!r} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not marker.is_file():
            raise ConfigError(f"out_dir {str(out)!r} is not empty and holds no nn-tune run; "
                              "choose another folder")
        if overwrite:
            logger.info("overwrite: removing the earlier run in %s", out)
            shutil.rmtree(out)
        else:
            try:
                before = json.loads(marker.read_text())
            except (OSError, ValueError):
                before = None
            now = json.loads(json.dumps(exp.resolved(), default=str))
            if not isinstance(before, dict) or _comparable(before) != _comparable(now):
                raise ConfigError(f"out_dir {str(out)!r} holds a different run (another config or "
                                  "overrides); pass overwrite=True to replace it or choose another "
                                  "out_dir")
            logger.info("resuming the run in %s", out)
    out.mkdir(parents=True, exist_ok=True)


def _comparable(resolved: dict[str, Any]) -> dict[str, Any]:
    """The run's identity, as tune()'s store fingerprint sees it: what is computed.

    Where the config was read from, and how it runs (device, workers), do not
    change the run.
    """
    out = {k: v for k, v in resolved.items() if k not in ("source", "description")}
    out["training"] = {k: v for k, v in dict(out.get("training") or {}).items()
                       if k not in ("device", "workers")}
    return out


def test_metrics(result: TuningResult, data: DataSplit, task: str) -> dict[str, float]:
    """Metrics of the refit best model on the held-out test split (original target units)."""
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

    pred = result.best_estimator.predict(data.X_test)
    if task == "classification":
        return {"accuracy": float(accuracy_score(data.y_test, pred)),
                "f1_macro": float(f1_score(data.y_test, pred, average="macro"))}
    y_true = np.asarray(data.y_test, dtype="float64")
    y_pred = data.inverse_target(pred)
    n, p = len(y_true), int(np.prod(data.X_test.shape[1:]))
    r2 = float(r2_score(y_true, y_pred))
    adj = 1 - (1 - r2) * (n - 1) / (n - p - 1) if n - p - 1 > 0 else float("nan")
    return {"rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))), "r2": r2,
            "adjusted_r2": float(adj), "mae": float(mean_absolute_error(y_true, y_pred))}


def _tune_kwargs(exp: Experiment, name: str, scale: ScaleOut | None) -> dict[str, Any]:
    """Arguments of tune() that say how to run, not what to compute.

    The run's scale-out settings (the config's workers unless given), less
    the modes strategy ``name`` does not support (its class's ``scale_out``):
    a Dask scheduler or a chief address given for a whole run applies to the
    strategies that can use it.
    """
    scale = scale or ScaleOut(workers=exp.training.workers)
    modes = strategy_class(name).scale_out
    if ScaleMode.DASK not in modes:
        scale = replace(scale, dask_scheduler=None)
    if ScaleMode.CHIEF not in modes:
        scale = replace(scale, chief=None)
    return dict(dataclasses.asdict(scale), device=exp.training.device)


def _search_args(exp: Experiment, name: str, data: DataSplit) -> tuple[Any, dict[str, Any]]:
    """The space and the tune() arguments that define what strategy ``name`` computes."""
    section = exp.strategies[name]
    t = exp.training
    space, max_trials = exp.search_args(name)
    return space, dict(
        strategy=name, cv=t.cv, scoring=t.scoring, epochs=t.epochs, batch_size=t.batch_size,
        max_trials=max_trials, seed=t.seed,
        configs=list(section.configs) if section.configs else None, task=exp.task,
        fixed=exp.builder_args, options=section.options, engine=t.engine,
        fit=fit_from_table(t.fit),
    )


def _run_strategy(exp: Experiment, name: str, data: DataSplit, out: Path,
                  progress: bool, scale: ScaleOut | None,
                  stability: int | None, refit: bool | str = True) -> dict[str, Any]:
    section = exp.strategies[name]
    space, args = _search_args(exp, name, data)
    if space is not exp.space:  # the strategy searches part of it (grid: a sub-grid)
        logger.warning("%s: max_trials %s runs a %d-point sub-grid of the %d-point grid",
                       name, section.max_trials, space.grid_size, exp.space.grid_size)
    folder = out / name
    result = tune(exp.builder, space, data.X_train, data.y_train, directory=folder,
                  progress=progress, max_seconds=section.max_seconds, refit=refit, **args,
                  **_tune_kwargs(exp, name, scale))
    summary = result.summary()
    budget = {k: v for k, v in (("max_trials", section.max_trials),
                                ("max_seconds", section.max_seconds),
                                ("planned_trials", result.extra.get("planned_trials")))
              if v is not None}
    summary.update(
        budget=budget,
        test_metrics=test_metrics(result, data, exp.task),
        target_scaled=data.y_scaler is not None,
        builder=exp.builder_name,
    )
    if stability:
        summary["stability"] = _stability(exp, result, data, folder, stability)
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2, default=str))
    from .tensorboard_logs import write_hparams

    write_hparams(result.trials, space, result.scoring, folder / "tensorboard")
    logger.info("%s: %d trials, best CV %s %.4g, test %s", name, result.n_trials,
                result.scoring, result.best_score,
                ", ".join(f"{k} {v:.4g}" for k, v in summary["test_metrics"].items()))
    return summary


def _stability(exp: Experiment, result: TuningResult, data: DataSplit, folder: Path,
               top_k: int) -> dict[str, Any]:
    """Re-score the top ``top_k`` configs with 3 other seeds; write stability.csv."""
    from .evaluation import make_protocol
    from .stability import check_stability

    t = exp.training
    protocol = make_protocol(exp.builder, data.X_train, data.y_train, task=exp.task, cv=t.cv,
                             scoring=t.scoring, epochs=t.epochs, batch_size=t.batch_size,
                             seed=t.seed, fixed=exp.builder_args, fit=fit_from_table(t.fit))
    seeds = [t.seed + k for k in (1, 2, 3)]
    table = check_stability(protocol, data.X_train, data.y_train, result.trials,
                            result.trial_params, top_k=top_k, seeds=seeds)
    write_atomic(folder / "stability.csv", table.to_csv(index=False))
    stable = bool(table["stable"].iloc[0])
    if not stable:
        logger.warning("%s: the winner is not stable across seeds %s (see stability.csv)",
                       result.strategy, seeds)
    return {"top_k": top_k, "seeds": seeds, "winner_stable": stable,
            "winner_seed_mean": float(table["seed_mean"].iloc[0]),
            "winner_seed_std": float(table["seed_std"].iloc[0])}


def run_worker(exp: Experiment, out_dir: str | Path, strategy: str, chief: str,
               scale: ScaleOut | None = None) -> int:
    """Serve as a keras-tuner worker of the chief at ``chief`` for ``strategy``.

    Trials go to the run folder's store (``out_dir/<strategy>/trials.db``), the
    folder the chief runs in; on other machines it must be a shared filesystem.
    Returns the number of trials in the store when the chief stops the search.
    """
    if ScaleMode.CHIEF not in strategy_class(strategy).scale_out:
        raise ConfigError(f"nn-tune worker runs keras-tuner strategies "
                          f"({', '.join(supporting('scale_out', ScaleMode.CHIEF))}), "
                          f"got {strategy!r}")
    select_strategies(exp, [strategy])
    data = prepare_data(exp)
    scale = replace(scale or ScaleOut(), chief=None, worker_of=chief, workers=1,
                    dask_scheduler=None)
    space, args = _search_args(exp, strategy, data)
    result = tune(exp.builder, space, data.X_train, data.y_train,
                  directory=Path(out_dir) / strategy, refit=False,
                  **args, **_tune_kwargs(exp, strategy, scale))
    return len(result.trials)


def run_experiment(exp: Experiment, out_dir: str | Path, strategies: list[str] | None = None,
                   *, overwrite: bool = False, progress: bool = True,
                   scale: ScaleOut | None = None, stability: int | None = None,
                   refit: bool | str = True) -> Path:
    """Run ``strategies`` of ``exp`` into ``out_dir`` and write the report.

    Each strategy runs through :func:`nn_tuning.tune` in ``out_dir/<strategy>``
    with the same training data, seed (hence CV folds), epochs and batch size.
    The refit best model of each is scored on the held-out test split.
    ``scale`` says how trials run (default: the config's ``workers``);
    ``stability`` re-scores each strategy's top configurations with more seeds.
    ``refit`` says which configuration becomes each strategy's best model
    (``"simplest"``: the smallest within one standard error of the best).
    Every strategy's call is checked before ``out_dir`` is touched.

    Returns
    -------
    Path
        The report file.
    """
    check_refit(refit)
    names = select_strategies(exp, strategies)
    data = prepare_data(exp)
    # Devices are chosen once, before the run folder is touched; tune() repeats
    # the same (idempotent) choice per strategy and records it with each trial.
    try:
        configure_devices(exp.training.device, scale.gpus if scale else None,
                          mixed_precision=bool(scale and scale.mixed_precision))
    except ConfigError as exc:
        raise ConfigError(f"{exp.source}: training.device {exp.training.device!r}: {exc}") \
            from None
    out = Path(out_dir)
    # Every strategy's call is checked before the run folder is touched.
    for name in names:
        space, args = _search_args(exp, name, data)
        check_call(exp.builder, space, data.X_train, data.y_train,
                   max_seconds=exp.strategies[name].max_seconds, **args,
                   **_tune_kwargs(exp, name, scale))
    with RunLock(out):  # a second process on this folder is refused here, before any write
        _prepare_folder(out, exp, overwrite)
        write_atomic(out / "experiment.json", json.dumps(exp.resolved(), indent=2, default=str))
        write_atomic(out / "config.toml", exp.text)
        write_atomic(out / "versions.json", json.dumps(package_versions(), indent=2))
        write_atomic(out / "data.json", json.dumps(data.describe(), indent=2))
        for name in names:
            _run_strategy(exp, name, data, out, progress, scale, stability, refit)
        from .report import build_report

        return build_report(out)
