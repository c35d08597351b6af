"""The first step of ``tune()``: check every argument and fix what the run computes.

:func:`plan_run` turns ``tune()``'s arguments into a :class:`RunPlan` or
raises a one-line :class:`~nn_tuning.exceptions.ConfigError` naming the
argument. It writes nothing, so a refused call leaves the disk as it found
it; it only chooses TensorFlow's devices (which must happen before any
training) and, with ``mixed_precision``, Keras' global policy (restored by
``tune()``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import check_int, check_seconds
from .evaluation import Protocol, check_data, make_protocol
from .evaluators import select_evaluator
from .scaleout import Role, ScaleMode, ScaleOut, check_engine
from .space import SearchSpace
from .exceptions import ConfigError
from .fit_settings import fit_identity
from .strategies import TIME_BUDGET_STRATEGY, strategy_class, supporting

__all__ = ["RunPlan", "plan_run", "run_fingerprint"]

logger = logging.getLogger("nn_tuning")


@dataclass(frozen=True)
class RunPlan:
    """A checked run: what it computes (and its fingerprint) and how it executes."""

    strategy: Any  # a Strategy instance
    space: SearchSpace | None
    configs: list[dict[str, Any]] | None
    options: Any  # the strategy's Options dataclass
    max_trials: int | None
    max_seconds: float | None
    protocol: Protocol
    X: np.ndarray
    y: np.ndarray
    scale: ScaleOut
    engine: str
    device: str
    fingerprint: str
    make_evaluator: Callable[..., Any]  # (protocol, X, y) -> Evaluator; see select_evaluator

    def evaluator(self) -> Any:
        """A new evaluator for this run (``close()`` it, or use it in a ``with`` block)."""
        return self.make_evaluator(self.protocol, self.X, self.y)

    @property
    def name(self) -> str:
        return self.strategy.name

    def for_worker(self, address: str, device: str) -> RunPlan:
        """This run as a keras-tuner worker of the chief at ``address``, training on ``device``."""
        scale = dataclasses.replace(self.scale, chief=None, worker_of=address, workers=1)
        return dataclasses.replace(self, scale=scale, device=device,
                                   make_evaluator=select_evaluator(self.engine, scale))

    @property
    def needs_shared_store(self) -> bool:
        """keras-tuner's chief and workers share the trial store through a file."""
        return ScaleMode.CHIEF in self.strategy.scale_out and (
            self.scale.role is not Role.LOCAL or self.scale.workers > 1)


def run_fingerprint(strategy: str, space: SearchSpace | None, configs: Any, X: np.ndarray,
                    y: np.ndarray, settings: Mapping[str, Any]) -> str:
    """The identity of a run: what it computes, never how it executes (workers, devices).

    X's shape is part of it when X is not a table: the same pixels as (N, 64)
    rows and as (N, 8, 8, 1) images are different runs. (Tables keep the
    identity they had before N-D inputs, so their earlier runs still resume.)
    """
    h = hashlib.sha256()
    identity = [strategy, space.to_dict() if space else None, configs, dict(settings)]
    if X.ndim != 2:
        identity.append({"X_shape": list(X.shape)})
    h.update(json.dumps(identity, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(y).astype("U").tobytes() if y.dtype.kind in "OUS"
             else np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _device_label(device: str | None, scale: ScaleOut) -> str:
    from .devices import configure_devices, default_device_label

    if device is not None or scale.mixed_precision:
        # tune() says once per strategy, as its run starts, where it trains.
        return configure_devices(device or "auto", scale.gpus,
                                 mixed_precision=scale.mixed_precision)
    return default_device_label()


def plan_run(builder: Callable[..., Any], space: SearchSpace | Mapping[str, Any] | None,
             X: Any, y: Any, *, strategy: str | None, cv: Any = 5, scoring: str | None = None,
             epochs: int = 50, batch_size: int = 32, max_trials: int | None = None,
             seed: int = 0, configs: Sequence[Mapping[str, Any]] | None = None,
             task: str | None = None, fixed: Mapping[str, Any] | None = None, fast: bool = True,
             options: Mapping[str, Any] | None = None, device: str | None = None,
             scale: ScaleOut | None = None, engine: str = "auto",
             max_seconds: float | None = None, fit: Mapping[str, Any] | None = None) -> RunPlan:
    """Check ``tune()``'s arguments; see :func:`nn_tuning.tune` for their meaning."""
    scale = scale if scale is not None else ScaleOut()
    if strategy is None:
        if max_seconds is None:
            raise ConfigError("strategy is required (or give max_seconds: a time budget runs "
                              f"{TIME_BUDGET_STRATEGY!r}), got None")
        strategy = TIME_BUDGET_STRATEGY
    cls = strategy_class(strategy)
    if space is not None and not isinstance(space, SearchSpace):
        space = SearchSpace(space)
    if max_trials is not None:
        max_trials = check_int("max_trials", max_trials)
    cls.check(space, max_trials)
    configs = cls.check_configs(configs)  # None unless the strategy runs the user's configs
    parsed_options = cls.parse_options(options)
    if max_seconds is not None:
        max_seconds = check_seconds("max_seconds", max_seconds)
    cls.check_budget(max_trials, max_seconds)
    check_int("seed", seed, 0)
    engine = check_engine(engine)
    scale.check_strategy(cls.name, cls.scale_out,
                         {mode: supporting("scale_out", mode) for mode in scale.modes})
    select_evaluator(engine, scale)  # an engine these settings cannot serve is refused here
    X, y = check_data(X, y)
    make_evaluator = select_evaluator(engine, scale)
    protocol = make_protocol(builder, X, y, task=task, cv=cv, scoring=scoring, epochs=epochs,
                             batch_size=batch_size, seed=seed, fixed=fixed, fast=fast, fit=fit)
    settings = dict(
        builder=getattr(builder, "__qualname__", repr(builder)), cv=repr(cv),
        scoring=protocol.scoring, epochs=protocol.epochs, batch_size=protocol.batch_size,
        seed=protocol.seed, max_trials=max_trials, fixed=dict(fixed or {}), task=protocol.task,
        options=dataclasses.asdict(parsed_options), engine=engine,
    )
    if fit:  # absent when not given, so runs without fit settings keep their identity
        settings["fit"] = fit_identity(protocol.fit)
    fingerprint = run_fingerprint(cls.name, space, configs, X, y, settings)
    return RunPlan(
        strategy=cls(), space=space, configs=configs, options=parsed_options,
        max_trials=max_trials, max_seconds=max_seconds, protocol=protocol, X=X, y=y,
        scale=scale, engine=engine, device=_device_label(device, scale),
        fingerprint=fingerprint, make_evaluator=make_evaluator,
    )
