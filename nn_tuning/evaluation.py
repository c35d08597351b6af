"""The one evaluation protocol every strategy uses.

A :class:`Protocol` fixes the estimator (the nn-tuning wrapper around the
builder, with epochs, batch size and seed), the CV splits (stratified for
classifiers) and the scorer. Every strategy scores a configuration with
:func:`evaluate`, or, for grid and random search, hands the same estimator,
splits and scorer to scikit-learn's search classes, so scores are comparable
across strategies.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.utils.multiclass import type_of_target

from .checks import check_int
from .exceptions import ConfigError, DataError
from .fit_settings import check_fit, estimator_args
from .model_size import trainable_params
from .result import Trial, TrialState
from .space import SearchSpace
from .wrappers import KerasClassifier, KerasRegressor

__all__ = ["Protocol", "make_protocol", "evaluate", "error_reason", "check_data", "check_int"]

TASKS = ("regression", "classification")
DEFAULT_SCORING = {"regression": "r2", "classification": "accuracy"}


@dataclass(frozen=True)
class Protocol:
    """What every configuration of a run is trained and scored with.

    An evaluator needs nothing else (besides ``X, y``): ``estimator`` is the
    nn-tuning wrapper holding the builder, its fixed arguments and the
    training settings, as scikit-learn clones it (``epochs``, ``batch_size``
    and ``seed`` are repeated here for reading); then the CV splits, the
    scorer and the task; ``fit``, the run's checked ``model.fit`` settings
    (``tune(fit=...)``, which the estimator holds too). Their ``sample_weight``
    is one weight per row of X: each fold fits on its own training rows'
    weights (:meth:`fit_params`), the refit on all of them.
    """

    estimator: Any
    splits: list[tuple[np.ndarray, np.ndarray]]
    scoring: str
    scorer: Callable
    task: str
    epochs: int
    batch_size: int
    seed: int
    fit: dict[str, Any] = field(default_factory=dict)  # checked model.fit settings

    @property
    def sample_weight(self) -> np.ndarray | None:
        return self.fit.get("sample_weight")

    def fit_params(self, rows: np.ndarray | None = None) -> dict[str, Any]:
        """The keyword arguments of ``estimator.fit`` on ``rows`` of X (all rows by default)."""
        if self.sample_weight is None:
            return {}
        # A copy: scikeras multiplies its sample weights by the class weights in place.
        w = self.sample_weight
        return {"sample_weight": np.array(w if rows is None else w[rows])}

    def estimator_for(self, params: Mapping[str, Any]) -> Any:
        """A fresh, unfitted estimator set to ``params``."""
        return clone(self.estimator).set_params(
            **{SearchSpace.param_key(k): v for k, v in params.items()}
        )

    def with_epochs(self, epochs: int | None) -> Protocol:
        """This protocol training ``epochs`` epochs (itself when ``None`` or unchanged)."""
        if epochs is None or int(epochs) == self.epochs:
            return self
        return replace(self, estimator=self.estimator_for({"epochs": int(epochs)}),
                       epochs=int(epochs))

    def with_seed(self, seed: int) -> Protocol:
        """This protocol with another training seed (same folds and scorer)."""
        return replace(self, estimator=clone(self.estimator).set_params(random_state=int(seed)),
                       seed=int(seed))


def check_data(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return X, y as arrays, or raise a one-line :class:`DataError`.

    ``X`` has samples on its first axis and at least 2 dimensions: a table
    (rows, features), grey images (N, H, W), images (N, H, W, C), sequences
    (N, T, F) and so on; ``y`` has one entry (or row) per sample.
    """
    try:
        X = np.asarray(X, dtype="float32")
    except (TypeError, ValueError):
        raise DataError("X must be numeric: some feature values are not numbers") from None
    if X.ndim < 2:
        raise DataError(f"X must have samples on its first axis and at least 2 dimensions, "
                        f"such as (rows, features) or images (N, H, W, C); got shape {X.shape}")
    y = np.asarray(y)
    if y.ndim == 0 or len(X) != len(y):
        raise DataError(f"X and y must have the same number of samples, got {len(X)} and "
                        f"{'a scalar y' if y.ndim == 0 else len(y)}")
    if len(X) < 2:
        raise DataError(f"at least 2 rows are needed, got {len(X)}")
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        r, *at = (int(i) for i in bad[0])
        where = f"column {at[0]}" if len(at) == 1 else f"position {tuple(at)}"
        raise DataError(f"X contains NaN or infinite values (first at row {r}, {where})")
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        r = int(np.argwhere(~np.isfinite(y))[0][0])
        raise DataError(f"y contains NaN or infinite values (first at row {r})")
    return X, y


# A float target with more distinct values than this is a measurement, even
# when every value happens to be whole (scikit-learn's type_of_target calls
# such a target "multiclass": the diabetes data's 214 disease scores, say).
_MAX_FLOAT_CLASSES = 20


def infer_task(y: np.ndarray) -> str:
    """"classification" for labels (strings, integers, few whole floats), else "regression"."""
    kind = type_of_target(y)
    if kind == "multiclass" and np.asarray(y).dtype.kind == "f" \
            and len(np.unique(y)) > _MAX_FLOAT_CLASSES:
        return "regression"
    return "classification" if kind in ("binary", "multiclass") else "regression"


def make_protocol(
    builder: Callable[..., Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: str | None = None,
    cv: int | Any = 5,
    scoring: str | None = None,
    epochs: int = 50,
    batch_size: int = 32,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    fast: bool = True,
    fit: Mapping[str, Any] | None = None,
) -> Protocol:
    """Fix the estimator, CV splits and scorer of a run.

    ``cv`` is a number of folds (shuffled with ``seed``; stratified for
    classification) or any scikit-learn splitter. ``fit`` holds ``model.fit``
    settings (:func:`nn_tuning.fit_settings.check_fit`).
    """
    if not callable(builder):
        raise ConfigError(f"builder must be a function returning a compiled keras.Model, got {builder!r}")
    task = task or infer_task(y)
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    scoring = scoring or DEFAULT_SCORING[task]
    if not isinstance(scoring, str) or scoring not in get_scorer_names():
        raise ConfigError(
            f"scoring must be a scikit-learn scorer name such as 'r2', "
            f"'neg_root_mean_squared_error' or 'accuracy', got {scoring!r}"
        )
    fit = check_fit(fit, n_rows=len(X), task=task, y=y)
    wrapper = KerasClassifier if task == "classification" else KerasRegressor
    estimator = wrapper(
        model=builder, epochs=int(epochs), batch_size=int(batch_size), random_state=int(seed),
        verbose=0, fast=fast, **{SearchSpace.param_key(k): v for k, v in (fixed or {}).items()},
        **estimator_args(fit),
    )
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        if cv < 2:
            raise ConfigError(f"cv must be an integer >= 2 or a scikit-learn splitter, got {cv!r}")
        splitter_cls = StratifiedKFold if task == "classification" else KFold
        cv = splitter_cls(int(cv), shuffle=True, random_state=int(seed))
    elif not hasattr(cv, "split"):
        raise ConfigError(f"cv must be an integer >= 2 or a scikit-learn splitter, got {cv!r}")
    try:
        splits = list(cv.split(X, y))
    except ValueError as exc:
        raise DataError(f"cannot split the data into CV folds: {exc}") from None
    return Protocol(
        estimator=estimator, splits=splits, scoring=scoring,
        scorer=check_scoring(estimator, scoring), task=task,
        epochs=int(epochs), batch_size=int(batch_size), seed=int(seed),
        fit=fit,
    )


_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning)): (.*)$", re.M)


def error_reason(text: str | BaseException) -> str:
    """One line naming what went wrong, from an exception or a traceback text."""
    if isinstance(text, BaseException):
        msg = str(text).strip()
        if "Traceback" not in msg:
            first = msg.splitlines()[0] if msg else ""
            return f"{type(text).__name__}: {first}"[:500]
        text = msg
    found = _ERROR_LINE.findall(text)
    if found:
        name, msg = found[-1]
        return f"{name.rsplit('.', 1)[-1]}: {msg}"[:500]
    return (text.strip().splitlines() or ["unknown error"])[-1][:500]


def evaluate(protocol: Protocol, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any]) -> Trial:
    """Score one configuration on every fold; a failure becomes a failed trial."""
    params = dict(params)
    start = time.perf_counter()
    try:
        estimator = protocol.estimator_for(params)
        cv = cross_validate(
            estimator, X, y, cv=protocol.splits, scoring=protocol.scorer, error_score="raise",
            return_estimator=True, params=protocol.fit_params(),  # sliced to each fold's rows
        )
    except Exception as exc:  # a trial that fails is recorded, the search goes on
        return Trial(params, TrialState.FAILED, fit_seconds=time.perf_counter() - start,
                     reason=error_reason(exc))
    trial = trial_from_scores(params, list(map(float, cv["test_score"])),
                              time.perf_counter() - start)
    trial.n_params = trainable_params(cv["estimator"][0].model_)
    return trial


def trial_from_scores(params: dict[str, Any], scores: list[float], seconds: float,
                      reason: str | None = None) -> Trial:
    """A complete trial, or a failed one when a fold has no finite score."""
    if all(math.isfinite(s) for s in scores):
        return Trial(params, TrialState.COMPLETE, scores, seconds)
    return Trial(params, TrialState.FAILED, scores, seconds,
                 reason=reason or "a fold produced no finite score")
