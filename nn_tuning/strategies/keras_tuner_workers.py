"""keras-tuner's chief/worker mode: a chief serves the oracle, workers train.

The chief (this process) serves the oracle over keras-tuner's gRPC service;
each worker asks it for trials (``parallel_trials`` at once), trains them
with the run's protocol through its own evaluator (as one stack under the
stacked engine, :class:`~nn_tuning.evaluators.StackedEvaluator`; what cannot
stack, or everything with ``engine="keras"``, in a
:class:`~nn_tuning.evaluators.RecycledProcessEvaluator`) and commits them to the run's trial store (an SQLite file in the run folder,
which workers on other machines must reach through a shared filesystem).
``workers > 1`` starts that many local worker processes for a chief on a free
127.0.0.1 port; each runs ``tune()``'s own steps as a worker
(``SearchContext.start_worker``, set by :func:`nn_tuning.tune.execute`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from typing import Any, Protocol

from ..distributed import free_port, kerastuner_role, worker_environment
from ..exceptions import ConfigError, NNTuningError
from .base import SearchContext

__all__ = ["KerasTunerStrategy", "run_as_chief", "run_as_worker", "start_local_workers"]

logger = logging.getLogger("nn_tuning")


class KerasTunerStrategy(Protocol):
    """What this module needs of a keras-tuner search (``keras_tuner_loop.OracleLoop`` is one).

    A protocol here, not an import of ``keras_tuner_loop``: that module imports this one,
    and the two must not import each other.
    """

    name: str

    def tuner(self, ctx: SearchContext, directory: str, project: str) -> Any: ...

    def ask_evaluate_tell(self, tuner: Any, ctx: SearchContext) -> None: ...


def run_as_worker(strategy: KerasTunerStrategy, ctx: SearchContext, directory: str) -> None:
    """Ask the chief at ``ctx.scale.worker_of`` for trials until it stops the search."""
    if ctx.tuner_id == "main":
        ctx.tuner_id = f"{socket.gethostname()}-{os.getpid()}"
    with kerastuner_role(ctx.tuner_id, ctx.scale.worker_of):
        tuner = strategy.tuner(ctx, directory, f"{strategy.name}_{ctx.tuner_id}")
        strategy.ask_evaluate_tell(tuner, ctx)


def run_as_chief(strategy: KerasTunerStrategy, ctx: SearchContext, directory: str) -> None:
    """Serve the oracle (at ``ctx.scale.chief`` or a free local port) until the search ends."""
    address = ctx.scale.chief or f"127.0.0.1:{free_port()}"
    local = ctx.scale.workers if ctx.scale.workers > 1 else 0
    procs = start_local_workers(ctx, address, local) if local else []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with kerastuner_role("chief", address):
                strategy.tuner(ctx, directory, strategy.name).search(verbose=0)
        except BaseException as exc:  # reported in the calling thread
            errors.append(exc)

    logger.info("keras-tuner chief serving the %s oracle at %s", strategy.name, address)
    server = threading.Thread(target=serve, name="nn-tuning-chief", daemon=True)
    server.start()
    try:
        while server.is_alive():
            server.join(timeout=1)
            if procs and not any(p.is_alive() for p in procs):
                codes = [p.exitcode for p in procs]
                if any(codes):
                    raise NNTuningError(
                        f"keras-tuner workers exited with codes {codes} before the "
                        f"{strategy.name} search finished; stored trials are kept, rerun to resume"
                    )
                # Every worker was told to stop: the search is over. keras-tuner's
                # chief polls for that every 20 s; give it one round, no more.
                server.join(timeout=25)
                break
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
    if errors:
        raise errors[0]


def start_local_workers(ctx: SearchContext, address: str, n_workers: int) -> list:
    """Spawn ``n_workers`` keras-tuner worker processes for the chief at ``address``.

    Each runs ``ctx.start_worker(tuner_id, address, device, environment)``:
    ``tune()``'s steps for the same run, as a worker (see
    :func:`nn_tuning.tune.worker_process`).
    """
    from ..devices import default_device_label

    if ctx.start_worker is None or ctx.store.path is None:
        raise ConfigError("keras-tuner workers need a run folder for the shared trial store")
    import tensorflow as tf

    n_gpus = len(tf.config.list_physical_devices("GPU"))
    device = default_device_label() if not n_gpus else "gpu"
    spawn = multiprocessing.get_context("spawn")
    procs = []
    for i in range(n_workers):
        env = worker_environment(i, n_workers, ctx.scale.trials_per_gpu, n_gpus)
        proc = spawn.Process(target=ctx.start_worker, args=(f"tuner{i}", address, device, env),
                             name=f"nn-tuning-worker-{i}", daemon=True)
        proc.start()
        procs.append(proc)
    logger.info("started %d keras-tuner workers for the chief at %s", n_workers, address)
    return procs
