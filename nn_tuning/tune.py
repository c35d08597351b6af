"""``tune()``: pick a strategy, run it under the shared protocol, refit the best."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .devices import configure_devices, default_device_label
from .distributed import dask_backend, parse_address
from .evaluation import check_data, check_int, make_protocol
from .exceptions import AllTrialsFailedError, ConfigError
from .result import TrialState, TuningResult, trials_frame, write_atomic
from .space import SearchSpace
from .store import TrialStore
from .strategies import KERAS_TUNER_STRATEGIES, SearchContext, get_strategy
from .strategies.manual import check_configs

__all__ = ["tune"]


class _BudgetSpent(BaseException):
    """Stops a strategy from the trial callback once ``max_seconds`` are spent.

    A BaseException so that keras-tuner's ``except Exception`` lets it through.
    """


logger = logging.getLogger("nn_tuning")


def _fingerprint(strategy: str, space: SearchSpace | None, configs: Any, X: np.ndarray,
                 y: np.ndarray, protocol_args: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([strategy, space.to_dict() if space else None, configs, protocol_args],
                        sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(y).astype("U").tobytes() if y.dtype.kind in "OUS"
             else np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _progress_bar(total: int | None, strategy: str) -> Callable | None:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=strategy, unit="trial", leave=True)
    best = [-math.inf]

    def update(trial: Any) -> None:
        if trial.state is TrialState.COMPLETE and trial.mean_score > best[0]:
            best[0] = trial.mean_score
        bar.update(1)
        if math.isfinite(best[0]):
            bar.set_postfix(best=f"{best[0]:.4g}")

    update.close = bar.close  # type: ignore[attr-defined]
    return update


def tune(
    builder: Callable[..., Any],
    space: SearchSpace | Mapping[str, Any] | None,
    X: Any,
    y: Any,
    *,
    strategy: str,
    cv: int | Any = 5,
    scoring: str | None = None,
    epochs: int = 50,
    batch_size: int = 32,
    max_trials: int | None = None,
    seed: int = 0,
    configs: Sequence[Mapping[str, Any]] | None = None,
    task: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    directory: str | Path | None = None,
    overwrite: bool = False,
    workers: int = 1,
    refit: bool | str = True,
    progress: bool = False,
    fast: bool = True,
    options: Mapping[str, Any] | None = None,
    device: str | None = None,
    gpus: Sequence[int] | None = None,
    mixed_precision: bool = False,
    dask_scheduler: str | None = None,
    chief: str | None = None,
    worker_of: str | None = None,
    trials_per_gpu: int | None = None,
    max_seconds: float | None = None,
) -> TuningResult:
    """Tune ``builder``'s hyperparameters over ``space`` with one strategy.

    Every strategy scores configurations the same way: the same CV folds
    (shuffled with ``seed``, stratified for classification) and the same
    scikit-learn scorer, so results are comparable across strategies.

    Parameters
    ----------
    builder : callable
        Returns a compiled ``keras.Model``; its keyword arguments are tuned.
        It may take scikeras' ``meta`` (input and class counts).
    space : SearchSpace or mapping
        What is searched. Optional for ``strategy="manual"``.
    X, y : array-like
        Features and target.
    strategy : {"manual", "grid", "random", "bayesian", "hyperband"}
    cv : int or splitter, default=5
    scoring : str, optional
        A scikit-learn scorer name; ``"r2"`` for regression and ``"accuracy"``
        for classification by default. Greater is better.
    epochs, batch_size : int
        Training of every fit (Hyperband's maximum epochs).
    max_trials : int, optional
        Budget of random, Bayesian and Hyperband search.
    seed : int, default=0
        Seeds the folds, the samplers, weight initialisation and shuffling.
    configs : list of dict, optional
        The configurations of ``strategy="manual"``.
    task : {"regression", "classification"}, optional
        Inferred from ``y`` when omitted: strings, integers and floats with
        at most 20 distinct whole values are class labels; other floats are
        a regression target.
    fixed : mapping, optional
        Builder arguments that are not searched.
    directory : path, optional
        Run folder: the trial store ``trials.db`` and the saved results. A
        rerun on the same folder resumes; a different run there is refused
        unless ``overwrite=True``.
    workers : int, default=1
        Parallel processes (grid and random search).
    refit : bool or {"best", "simplest"}, default=True
        Refit the best configuration on all of ``X, y`` (True or ``"best"``),
        or the smallest good one (``"simplest"``: ``TuningResult.simplest``,
        the one-standard-error rule over trainable parameters).
    progress : bool, default=False
        Show a progress bar.
    fast : bool, default=True
        Use the fast trial path (:mod:`nn_tuning.fast_fit`).
    options : mapping, optional
        Strategy options (``factor`` and ``hyperband_iterations`` for Hyperband,
        ``num_initial_points`` for Bayesian search).
    device : {"auto", "cpu", "gpu"}, optional
        Choose TensorFlow's devices first (:func:`nn_tuning.devices.configure_devices`,
        GPU memory growth on); by default TensorFlow's own choice. The device
        is recorded with every trial.
    gpus : list of int, optional
        GPUs to use with ``device``.
    mixed_precision : bool, default=False
        Train with Keras' ``mixed_float16`` policy.
    dask_scheduler : str, optional
        Grid and random search: run scikit-learn's joblib work on Dask,
        ``"local"`` (a local cluster of ``max(workers, 2)`` processes on
        127.0.0.1) or a scheduler address such as ``tcp://host:8786``.
    chief : str, optional
        Bayesian and Hyperband: serve keras-tuner's oracle at ``HOST:PORT`` for
        workers started elsewhere (``nn-tune worker``); with ``workers > 1``
        a chief on a free 127.0.0.1 port and that many local workers start.
    worker_of : str, optional
        Bayesian and Hyperband: act as a keras-tuner worker of the chief at
        ``HOST:PORT``, committing trials to the same run folder's store.
    trials_per_gpu : int, optional
        Pack this many local workers onto each GPU (each pinned through
        ``CUDA_VISIBLE_DEVICES``).
    max_seconds : float, optional
        Wall-clock budget: no new trial starts once it is spent (trials in
        flight finish and are kept).

    Returns
    -------
    TuningResult

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from model_builders import mlp_regressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> result = tune(mlp_regressor, {"neurons": [4, 8]}, X[:60], y[:60],
    ...               strategy="grid", cv=2, epochs=2)  # doctest: +SKIP
    >>> sorted(result.best_params)  # doctest: +SKIP
    ['neurons']
    """
    start = time.perf_counter()
    strat = get_strategy(strategy)
    if space is not None and not isinstance(space, SearchSpace):
        space = SearchSpace(space)
    if space is None and strat.needs_space:
        raise ConfigError(f"strategy {strategy!r} needs a search space, got None")
    if strategy == "manual":
        configs = check_configs(configs)
    if max_trials is not None:
        check_int("max_trials", max_trials)
    if not (isinstance(refit, bool) or refit in ("best", "simplest")):
        raise ConfigError(f"refit must be True, False, 'best' or 'simplest', got {refit!r}")
    check_int("workers", workers)
    if max_seconds is not None and (isinstance(max_seconds, bool) or
                                    not isinstance(max_seconds, (int, float)) or max_seconds <= 0):
        raise ConfigError(f"max_seconds must be a number > 0, got {max_seconds!r}")
    if trials_per_gpu is not None:
        check_int("trials_per_gpu", trials_per_gpu)
    distributed = chief is not None or worker_of is not None or (
        workers > 1 and strategy in KERAS_TUNER_STRATEGIES)
    if (chief or worker_of) and strategy not in KERAS_TUNER_STRATEGIES:
        raise ConfigError(f"chief/worker mode is keras-tuner's: use strategy bayesian or "
                          f"hyperband, got {strategy!r} (grid and random scale out with Dask)")
    for name, address in (("chief", chief), ("worker_of", worker_of)):
        if address is not None:
            parse_address(address, name)
    if device is not None or mixed_precision:
        device_label = configure_devices(device or "auto", gpus, mixed_precision=mixed_precision)
    else:
        device_label = default_device_label()
    X, y = check_data(X, y)
    protocol = make_protocol(builder, X, y, task=task, cv=cv, scoring=scoring, epochs=epochs,
                             batch_size=batch_size, seed=seed, fixed=fixed, fast=fast)

    workdir = Path(directory) if directory is not None else None
    scratch = None
    if workdir is None and distributed:
        # Workers share the trial store through a file.
        scratch = tempfile.TemporaryDirectory(prefix="nn_tuning_")
        workdir = Path(scratch.name)
    if workdir is not None:
        if overwrite and workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(
        strategy, space, configs, X, y,
        dict(builder=getattr(builder, "__qualname__", repr(builder)), cv=repr(cv),
             scoring=protocol.scoring, epochs=epochs, batch_size=batch_size, seed=seed,
             max_trials=max_trials, fixed=dict(fixed or {}), task=protocol.task,
             options=dict(options or {})),
    )
    store = TrialStore(workdir / "trials.db" if workdir else None, fingerprint=fingerprint)
    if len(store):
        logger.info("resuming %s in %s: %d trials already stored", strategy, workdir, len(store))

    total = (space.grid_size if strategy == "grid" else
             len(configs) if strategy == "manual" else max_trials)
    bar = _progress_bar(total, strategy) if progress else None
    csv_path = workdir / "trials.csv" if workdir else None

    def on_trial(trial: Any) -> None:
        if bar is not None:
            bar(trial)
        if csv_path is not None:
            write_atomic(csv_path, trials_frame(store.trials()).to_csv(index=False))
        if max_seconds is not None and time.perf_counter() - start >= max_seconds:
            raise _BudgetSpent

    ctx = SearchContext(
        protocol=protocol, X=X, y=y, space=space, store=store, max_trials=max_trials,
        seed=seed, workers=workers, configs=configs, workdir=workdir, progress=on_trial,
        options=dict(options or {}), device=device_label,
    )
    ctx.options.update({k: v for k, v in (("chief", chief), ("worker_of", worker_of),
                                          ("trials_per_gpu", trials_per_gpu)) if v is not None})
    try:
        if dask_scheduler is not None:
            with dask_backend(dask_scheduler, n_workers=max(workers, 2)) as client:
                ctx.workers = max(workers, sum(client.nthreads().values()), 2)
                ctx.options["dask"] = True
                strat.run(ctx)
        else:
            strat.run(ctx)
    except _BudgetSpent:
        logger.info("%s: wall-clock budget of %s s spent after %d trials",
                    strategy, max_seconds, len(store))
    finally:
        ctx.close()
        if bar is not None:
            bar.close()
    if ctx.repeats:
        logger.info("%s: the oracle proposed already scored configurations %d times; they were "
                    "not retrained", strategy, ctx.repeats)

    trials = store.trials()
    store.close()
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    if not complete and worker_of is None:
        reasons = {t.reason for t in trials if t.reason}
        raise AllTrialsFailedError(
            f"all {len(trials)} trials of strategy {strategy!r} failed"
            + (f"; first reason: {sorted(reasons)[0]}" if reasons else "")
        )
    best = max(complete, key=lambda t: (t.mean_score, -t.number)) if complete else None
    best_estimator = best_model = None
    chosen, choice = best, "best"
    if refit == "simplest" and best is not None:
        chosen, choice = _simplest_trial(trials, strategy, epochs, best)
    if refit and chosen is not None and worker_of is None:
        best_estimator = protocol.estimator_for(chosen.params).fit(X, y)
        best_model = best_estimator.model_
    result = TuningResult(
        trials=trials_frame(trials), best_params=dict(best.params) if best else {},
        best_score=best.mean_score if best else math.nan,
        best_model=best_model, best_estimator=best_estimator, strategy=strategy, space=space,
        scoring=protocol.scoring, wall_seconds=time.perf_counter() - start,
        resumed_trials=ctx.resumed, trial_params=[dict(t.params) for t in trials],
        refit_choice=choice,
        extra={"task": protocol.task, "cv_folds": len(protocol.splits), "epochs": epochs,
               "batch_size": batch_size, "seed": seed, "max_trials": max_trials,
               "workers": workers, "device": device_label},
    )
    if directory is not None and worker_of is None:
        result.save(workdir)
    if scratch is not None:
        scratch.cleanup()
    return result


def _simplest_trial(trials: list[Any], strategy: str, epochs: int, best: Any) -> tuple[Any, str]:
    """The one-standard-error choice among ``trials``, or ``best`` when no size is known."""
    from .result import one_standard_error

    choice = one_standard_error(trials_frame(trials), epochs if strategy == "hyperband" else None)
    if choice is None:
        logger.warning("refit='simplest': no trial has a trainable-parameter count (stored by an "
                       "earlier version); refitting the best configuration instead")
        return best, "best"
    return trials[choice["row"]], "simplest"
