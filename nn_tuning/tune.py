"""``tune()``: check, open the run folder and store, execute the strategy, pick and refit the best.

Each step is a function (or a small class) that can be read and tested alone:

1. :func:`check_call` (:func:`nn_tuning.plan.plan_run` and
   :func:`nn_tuning.run_folder.check_run_folder`) checks every argument and the
   folder, and fixes what the run computes (nothing is written);
2. :func:`nn_tuning.evaluators.select_evaluator` (called by the plan) picks how
   configurations train;
3. :class:`nn_tuning.run_folder.RunFolder` creates the folder (or a scratch one);
4. :func:`execute` runs the strategy against the trial store, with the
   progress bar, ``trials.csv`` and the time budget;
5. :func:`best_trial` and :func:`build_result` pick the best and refit it.

The evaluator, the store and the scratch folder are released in every outcome.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .devices import device_note
from .evaluators import Evaluator
from .exceptions import AllTrialsFailedError, ConfigError
from .interrupts import remembered
from .locks import RunLock
from .plan import RunPlan, plan_run
from .result import Trial, TrialState, TuningResult, one_standard_error, trials_frame
from .run_folder import RunFolder, check_run_folder
from .scaleout import Role, ScaleOut
from .space import SearchSpace
from .stacked import clock, compiled
from .store import TrialStore
from .watcher import TrialWatcher
from .strategies.base import BudgetSpent, SearchContext

__all__ = ["tune", "check_call", "execute", "best_trial", "build_result", "worker_process"]

logger = logging.getLogger("nn_tuning")


def tune(
    builder: Callable[..., Any],
    space: SearchSpace | Mapping[str, Any] | None,
    X: Any,
    y: Any,
    *,
    strategy: str | None = None,
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
    engine: str = "auto",
    max_seconds: float | None = None,
    fit: Mapping[str, Any] | None = None,
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
        Features and target, samples on the first axis. ``X`` has at least 2
        dimensions: a table (rows, features), images (N, H, W[, C]),
        sequences (N, T, F); its shape is part of the run's identity.
    strategy : {"manual", "grid", "random", "bayesian", "hyperband", "asha"}, optional
        How configurations are chosen. Without one, a run given ``max_seconds``
        runs ``"asha"`` (successive halving inside the stack, which measured
        best for a time budget: README, "The best network for the time you
        have"); otherwise a strategy is required.
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
        unless ``overwrite=True``, which deletes only a folder holding an
        nn-tuning run. Every argument is checked before the folder is
        touched: a refused call leaves it as it was.
    workers : int, default=1
        Configurations trained at once in worker processes (Bayesian and
        Hyperband: keras-tuner workers).
    refit : bool or {"best", "simplest"}, default=True
        Refit the best configuration on all of ``X, y`` (True or ``"best"``),
        or the smallest good one (``"simplest"``: ``TuningResult.simplest``,
        the one-standard-error rule over trainable parameters).
    progress : bool, default=False
        Show a progress bar.
    fast : bool, default=True
        Use the fast trial path (:mod:`nn_tuning.fast_fit`).
    options : mapping, optional
        Strategy options, checked against the strategy's own options class
        (an unknown name is a ConfigError): ``num_initial_points`` and
        ``parallel_trials`` for Bayesian search; ``factor``,
        ``hyperband_iterations`` and ``parallel_trials`` for Hyperband.
    device : {"auto", "cpu", "gpu"}, optional
        Choose TensorFlow's devices first (:func:`nn_tuning.devices.configure_devices`,
        GPU memory growth on); by default TensorFlow's own choice. The device
        is recorded with every trial.
    gpus : list of int, optional
        GPUs to use with ``device``.
    mixed_precision : bool, default=False
        Train with Keras' ``mixed_float16`` policy (the caller's policy is
        restored when ``tune`` returns).
    dask_scheduler : str, optional
        Manual, grid and random search: train on Dask through scikit-learn's joblib,
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
    engine : {"auto", "keras", "stacked"}, default="auto"
        How configurations are trained: ``keras`` trains each as its own
        model; ``auto`` picks. Part of the run's identity.
    max_seconds : float, optional
        Wall-clock budget: no new trial starts once it is spent (trials in
        flight finish and are kept; ``"asha"`` stops its stacks at the next
        segment of epochs and stores each configuration where it got).
    fit : mapping, optional
        ``model.fit`` settings of every fit, the folds' and the refit's
        (:mod:`nn_tuning.fit_settings`): ``validation_split`` in [0, 1),
        ``callbacks`` (keras.callbacks.Callback list), ``class_weight`` (label ->
        weight or ``"balanced"``, per fit's rows; classification only),
        ``shuffle`` (bool), ``sample_weight`` (one weight >= 0 per row of ``X``;
        each fold fits on its rows'). Part of the run's identity. The last three
        stack; the others train per configuration (``extra["not_stacked"]``).

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
    spent_before, traces_before = clock.spent(), compiled.traces()
    check_refit(refit)
    with _restored_precision_policy():
        plan = check_call(builder, space, X, y, strategy=strategy, cv=cv, scoring=scoring,
                          epochs=epochs, batch_size=batch_size, max_trials=max_trials, seed=seed,
                          configs=configs, task=task, fixed=fixed, fast=fast, options=options,
                          device=device, engine=engine, max_seconds=max_seconds, fit=fit,
                          directory=directory, overwrite=overwrite, workers=workers, gpus=gpus,
                          trials_per_gpu=trials_per_gpu, mixed_precision=mixed_precision,
                          dask_scheduler=dask_scheduler, chief=chief, worker_of=worker_of)
        scale = plan.scale
        # A keras-tuner worker joins its chief's run folder: only the chief holds the lock.
        lock = RunLock(directory) if directory is not None and scale.role is not Role.WORKER \
            else contextlib.nullcontext()
        with lock, plan.evaluator() as evaluator, \
                RunFolder(directory, overwrite=overwrite, scratch=plan.needs_shared_store) as folder, \
                contextlib.closing(TrialStore(folder.store_path,
                                              fingerprint=plan.fingerprint)) as store:
            ctx = execute(plan, store, evaluator, folder.path, progress=progress, start=start)
            trials = store.trials()
        result = build_result(plan, trials, ctx, start=start,
                              refit=refit if scale.role is not Role.WORKER else False)
        _time_split(result, spent_before, traces_before)
        if directory is not None and scale.role is not Role.WORKER:
            result.save(directory)
    return result


def _time_split(result: TuningResult, before: dict[str, float], traces_before: int) -> None:
    """Where the run's time went (stacked building, tracing, training, scoring; the refit)."""
    now = clock.spent()
    seconds = {part: round(now[part] - before[part], 3) for part in clock.PARTS}
    seconds["refit"] = result.extra.pop("refit_seconds", 0.0)
    seconds["total"] = round(result.wall_seconds, 3)
    result.extra["seconds"] = seconds
    result.extra["traces"] = compiled.traces() - traces_before
    logger.debug("%s: %d training loop(s) traced; seconds %s", result.strategy,
                 result.extra["traces"], seconds)


def check_refit(refit: Any) -> None:
    """A one-line ConfigError unless ``refit`` is True, False, "best" or "simplest"."""
    if not (isinstance(refit, bool) or refit in ("best", "simplest")):
        raise ConfigError(f"refit must be True, False, 'best' or 'simplest', got {refit!r}")


def check_call(builder: Callable[..., Any], space: Any, X: Any, y: Any, *,
               directory: str | Path | None = None, overwrite: bool = False, workers: int = 1,
               gpus: Sequence[int] | None = None, trials_per_gpu: int | None = None,
               mixed_precision: bool = False, dask_scheduler: str | None = None,
               chief: str | None = None, worker_of: str | None = None,
               **what: Any) -> RunPlan:
    """Step 1 of :func:`tune`: check a call's arguments and run folder; write nothing.

    Takes :func:`tune`'s arguments (but ``refit`` and ``progress``) and returns
    the :class:`~nn_tuning.plan.RunPlan`, or raises a one-line ConfigError.
    """
    scale = ScaleOut(workers=workers, gpus=None if gpus is None else tuple(gpus),
                     trials_per_gpu=trials_per_gpu, mixed_precision=mixed_precision,
                     dask_scheduler=dask_scheduler, chief=chief, worker_of=worker_of)
    plan = plan_run(builder, space, X, y, scale=scale, **what)
    check_run_folder(directory, overwrite=overwrite, fingerprint=plan.fingerprint)
    return plan


@contextlib.contextmanager
def _restored_precision_policy() -> Iterator[None]:
    """Give Keras' global dtype policy back as it was (``mixed_precision`` sets it)."""
    import keras

    saved = keras.config.dtype_policy()
    try:
        yield
    finally:
        if keras.config.dtype_policy() is not saved:
            keras.config.set_dtype_policy(saved)


def execute(plan: RunPlan, store: TrialStore, evaluator: Evaluator, workdir: Path | None, *,
            progress: bool = False, start: float | None = None,
            tuner_id: str = "main") -> SearchContext:
    """Run the plan's strategy: its batches go to ``evaluator``, its trials to ``store``.

    Stops quietly when ``max_seconds`` are spent. Returns the search context
    (its ``resumed`` and ``repeats`` counts). ``tuner_id`` names this process
    among a keras-tuner chief's workers.
    """
    start = time.perf_counter() if start is None else start
    logger.info("%s: training on %s (%s)", plan.name, plan.device, device_note())
    if len(store):
        logger.info("resuming %s in %s: %d trials already stored", plan.name, workdir, len(store))
    ctx = SearchContext(
        protocol=plan.protocol, X=plan.X, y=plan.y, space=plan.space, store=store,
        evaluator=evaluator, options=plan.options, max_trials=plan.max_trials,
        seed=plan.protocol.seed, configs=plan.configs, workdir=workdir, scale=plan.scale,
        device=plan.device, engine=plan.engine, tuner_id=tuner_id,
        deadline=None if plan.max_seconds is None else start + plan.max_seconds,
        start_worker=None if store.path is None else partial(
            worker_process, plan, str(store.path), workdir),
    )
    evaluator.deadline = ctx.deadline
    # keras-tuner workers share the chief's folder: several appenders would repeat each
    # other's lines, so only the chief writes trials.csv (at the end, with the results).
    csv_dir = workdir if plan.scale.role is not Role.WORKER else None
    watcher = TrialWatcher(store, csv_dir, plan.strategy.planned_trials(ctx), plan.name, progress)
    ctx.on_trial = watcher
    try:
        with remembered():  # a Ctrl-C lost inside TensorFlow still stops the search
            plan.strategy.run(ctx)
    except BudgetSpent:
        logger.info("%s: wall-clock budget of %s s spent after %d trials",
                    plan.name, plan.max_seconds, len(store))
    finally:
        watcher.close()
    # Counted here, after the progress bar closed: never a log line inside a live bar.
    if ctx.resumed:
        logger.info("%s: %d trials taken from the store (resumed), not retrained",
                    plan.name, ctx.resumed)
    if ctx.repeats:
        logger.info("%s: the oracle proposed already scored configurations %d times; they were "
                    "not retrained", plan.name, ctx.repeats)
    return ctx


def worker_process(plan: RunPlan, store_path: str, workdir: Path | None, tuner_id: str,
                   address: str, device: str, environment: Mapping[str, str]) -> None:
    """Entry point of a keras-tuner worker process its chief started (``workers > 1``).

    The same steps as :func:`tune`, for the chief's run: the plan (as a worker
    of ``address``), its evaluator, the chief's trial store, :func:`execute`.
    The chief holds the run folder, picks the best and refits.
    """
    os.environ.update(environment)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    plan = plan.for_worker(address, device)
    with plan.evaluator() as evaluator, \
            contextlib.closing(TrialStore(store_path, fingerprint=plan.fingerprint)) as store:
        execute(plan, store, evaluator, workdir, tuner_id=tuner_id)


def best_trial(trials: Sequence[Trial]) -> Trial | None:
    """The complete trial with the best mean score (the earliest among equals).

    Where trials trained for different budgets (Hyperband, successive halving),
    only those that reached the most epochs compete: a score after a few epochs
    says little of the network the refit trains for all of them.
    """
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    if not complete:
        return None
    most = max(math.inf if t.budget is None else t.budget for t in complete)
    complete = [t for t in complete if (math.inf if t.budget is None else t.budget) == most]
    return max(complete, key=lambda t: (t.mean_score, -t.number))


def build_result(plan: RunPlan, trials: list[Trial], ctx: SearchContext, *, refit: bool | str,
                 start: float) -> TuningResult:
    """The :class:`TuningResult`: the best trial, refit on all the data when asked."""
    best = best_trial(trials)
    if best is None and plan.scale.role is not Role.WORKER:
        reasons = {t.reason for t in trials if t.reason}
        raise AllTrialsFailedError(
            f"all {len(trials)} trials of strategy {plan.name!r} failed"
            + (f"; first reason: {sorted(reasons)[0]}" if reasons else "")
        )
    best_params = dict(best.params) if best else {}
    best_estimator = best_model = None
    chosen, choice = best, "best"
    if refit == "simplest" and best is not None:
        chosen, choice = _simplest_trial(trials, plan, best)
    refit_start = time.perf_counter()
    if refit and chosen is not None:
        best_estimator = plan.protocol.estimator_for(chosen.params).fit(
            plan.X, plan.y, **plan.protocol.fit_params())
        best_model = best_estimator.model_
    p = plan.protocol
    return TuningResult(
        trials=trials_frame(trials), best_params=best_params,
        best_score=best.mean_score if best else math.nan,
        best_model=best_model, best_estimator=best_estimator, strategy=plan.name,
        space=plan.space, scoring=p.scoring, wall_seconds=time.perf_counter() - start,
        resumed_trials=ctx.resumed, trial_params=[dict(t.params) for t in trials],
        refit_choice=choice,
        extra={"task": p.task, "cv_folds": len(p.splits), "epochs": p.epochs,
               "batch_size": p.batch_size, "seed": p.seed, "max_trials": plan.max_trials,
               "workers": plan.scale.workers, "device": plan.device, "engine": plan.engine,
               "budget_epochs": _budget_epochs(plan),
               "planned_trials": plan.strategy.planned_trials(ctx),
               "refit_seconds": round(time.perf_counter() - refit_start, 3),
               **({"search": dict(ctx.notes)} if ctx.notes else {}),
               # Configurations the stacked evaluator sent elsewhere, per reason (asha's too).
               **({"not_stacked": dict(ns)}
                  if (ns := getattr(ctx.evaluator, "not_stacked", None)) else {})},
    )


def _budget_epochs(plan: RunPlan) -> int | None:
    """The full budget of a strategy whose trials may train on part of it (Hyperband's)."""
    return plan.protocol.epochs if plan.strategy.partial_budgets else None


def _simplest_trial(trials: list[Trial], plan: RunPlan, best: Trial) -> tuple[Trial, str]:
    """The one-standard-error choice among ``trials``, or ``best`` when no size is known."""
    choice = one_standard_error(trials_frame(trials), _budget_epochs(plan))
    if choice is None:
        logger.warning("refit='simplest': no trial has a trainable-parameter count (stored by an "
                       "earlier version); refitting the best configuration instead")
        return best, "best"
    return trials[choice["row"]], "simplest"
