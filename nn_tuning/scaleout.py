"""How a run is executed, never what it computes: one frozen value.

:class:`ScaleOut` groups the settings that say where and how many trials
train at once (processes, GPUs, Dask, keras-tuner's chief/worker roles). They
are checked when the value is made, travel together from ``tune()`` to the
evaluator chooser and the strategies, and are never part of a run's identity:
a run resumed with more workers or on another device is the same run.

A leaf module: it imports only the shared checks, so the CLI and the config
parser use it without importing TensorFlow.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .checks import check_int
from .exceptions import ConfigError

__all__ = ["ENGINES", "Role", "ScaleMode", "ScaleOut", "check_engine", "parse_address"]

#: Training engines: ``auto`` picks one, ``keras`` trains each configuration
#: as its own model, ``stacked`` trains a batch of configurations as one model.
ENGINES = ("auto", "keras", "stacked")


class Role(str, enum.Enum):
    """This process's part in keras-tuner's chief/worker mode."""

    LOCAL = "local"    # proposes and trains (optionally with local worker processes)
    CHIEF = "chief"    # serves the oracle; workers started elsewhere train
    WORKER = "worker"  # asks a chief for trials and trains them


class ScaleMode(str, enum.Enum):
    """A way of spreading trials beyond this process that a strategy must support.

    Every strategy runs with local ``workers``; these two are each strategy's
    own business (:attr:`nn_tuning.strategies.base.Strategy.scale_out`).
    """

    DASK = "dask"    # scikit-learn's joblib work on a Dask cluster (dask_scheduler)
    CHIEF = "chief"  # keras-tuner's chief/worker mode (chief, worker_of; workers > 1 locally)


def parse_address(address: object, what: str = "chief") -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port), or a one-line ConfigError."""
    host, _, port = str(address).rpartition(":")
    if not isinstance(address, str) or not host or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT such as 127.0.0.1:8000, got {address!r}")
    return host, int(port)


def check_engine(engine: object) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a one-line ConfigError."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return str(engine)


@dataclass(frozen=True)
class ScaleOut:
    """Where and how many trials train at once.

    Parameters
    ----------
    workers : int, default=1
        Local worker processes: each trains whole stacks under the stacked
        engine, configurations one at a time otherwise.
    gpus : tuple of int, optional
        GPUs to use (all TensorFlow sees when omitted).
    trials_per_gpu : int, optional
        keras-tuner workers packed onto each GPU.
    mixed_precision : bool, default=False
        Train with Keras' ``mixed_float16`` policy (restored after the run).
    dask_scheduler : str, optional
        ``"local"`` or the address of a Dask scheduler (``tcp://host:8786``).
    chief : str, optional
        Serve keras-tuner's oracle at ``HOST:PORT``.
    worker_of : str, optional
        Act as a keras-tuner worker of the chief at ``HOST:PORT``.
    """

    workers: int = 1
    gpus: tuple[int, ...] | None = None
    trials_per_gpu: int | None = None
    mixed_precision: bool = False
    dask_scheduler: str | None = None
    chief: str | None = None
    worker_of: str | None = None

    def __post_init__(self) -> None:
        check_int("workers", self.workers)
        if self.trials_per_gpu is not None:
            check_int("trials_per_gpu", self.trials_per_gpu)
        if self.gpus is not None:
            gpus = self.gpus
            if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Sequence) or not gpus \
                    or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0
                               for g in gpus):
                raise ConfigError(f"gpus must be a list of GPU indices such as [0, 1], got {gpus!r}")
            object.__setattr__(self, "gpus", tuple(gpus))
        if not isinstance(self.mixed_precision, bool):
            raise ConfigError(f"mixed_precision must be True or False, got {self.mixed_precision!r}")
        if self.dask_scheduler is not None and (
                not isinstance(self.dask_scheduler, str)
                or not (self.dask_scheduler == "local" or "://" in self.dask_scheduler)):
            raise ConfigError(f"dask_scheduler must be 'local' or an address like "
                              f"tcp://host:8786, got {self.dask_scheduler!r}")
        for name in ("chief", "worker_of"):
            if getattr(self, name) is not None:
                parse_address(getattr(self, name), name)
        if self.chief is not None and self.worker_of is not None:
            raise ConfigError(f"chief and worker_of exclude each other, got chief={self.chief!r} "
                              f"and worker_of={self.worker_of!r}")

    @property
    def role(self) -> Role:
        """This process's keras-tuner role."""
        if self.worker_of is not None:
            return Role.WORKER
        return Role.CHIEF if self.chief is not None else Role.LOCAL

    @property
    def modes(self) -> frozenset[ScaleMode]:
        """The scale-out modes these settings ask of the strategy."""
        return frozenset(
            ([ScaleMode.DASK] if self.dask_scheduler is not None else [])
            + ([ScaleMode.CHIEF] if self.chief is not None or self.worker_of is not None else []))

    def check_strategy(self, strategy: str, modes: frozenset[ScaleMode],
                       supporting: dict[ScaleMode, list[str]]) -> None:
        """Refuse settings strategy ``strategy`` cannot use (it supports ``modes``).

        ``supporting`` names, per mode, the strategies that do (for the hint).
        """
        def names(mode: ScaleMode) -> str:
            found = supporting.get(mode) or ["none"]
            return f"{', '.join(found[:-1])} or {found[-1]}" if len(found) > 1 else found[0]

        if ScaleMode.CHIEF in self.modes - modes:
            raise ConfigError(f"chief/worker mode is keras-tuner's: use strategy "
                              f"{names(ScaleMode.CHIEF)}, got {strategy!r} (it scales out with "
                              "workers or Dask)")
        if ScaleMode.DASK in self.modes - modes:
            raise ConfigError(f"dask_scheduler runs strategy {names(ScaleMode.DASK)}, got "
                              f"{strategy!r} (it scales out with workers or chief)")
