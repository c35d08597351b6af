"""Compiled training loops, kept and reused: one trace per study where shapes allow.

A stack's loop is traced (TensorFlow) or compiled (JAX) for an *envelope*:
its padded shapes (depth, width, replicas), the activations, dropout,
optimizers and regularization terms present. Tracing, not arithmetic, is what small stacks pay for
(about a second each on 2 CPU cores), so a later stack reuses a kept loop
whose envelope covers it (no deeper, no wider, nothing it lacks, as many
replicas or more) unless running the padding would cost more than a trace
(a measured cost model, below). (Making a small stack's new loop large enough
for the last loop's stacks too was tried: on the Advertising study's Bayesian
search it saved 2 of 10 traces and cost 4.8 s more training.) A
stack is padded to the envelope with copies of its first replica at a
learning rate of 0 (their updates are exactly 0; their results are dropped),
so each replica trains exactly as in a stack of its own shape.

New envelopes are rounded up (replicas to a multiple of 8, powers of two
below) so that stacks of nearby sizes share them. :func:`traces` counts the
loops made in this process; each is logged at debug level.

Under JAX, compiled loops are also kept across processes in JAX's persistent
compilation cache (:func:`persistent_cache`): a second run of a study loads
them instead of compiling again. The folder is the user's cache folder
(``$XDG_CACHE_HOME/nn-tuning/jax``, or ``$NN_TUNING_JAX_CACHE`` when set);
``NN_TUNING_JAX_CACHE=off`` turns it off, and a cache folder the user has
configured for JAX is left as it is.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .layout import (Layout, Replica, conv_shapes, fit_flags, group_key, layout, stacked_params,
                     with_groups)
from .model import StackedModel
from .structure import Structure

__all__ = ["Envelope", "conv_blocks", "exact_loop", "fitting_loop", "forget", "persistent_cache",
           "round_up", "traces"]

logger = logging.getLogger("nn_tuning")

# Envelopes kept per base signature; each holds its loop's variables, so few.
_MAX_KEPT = 6
# When a kept loop serves a smaller stack, or a new loop is made larger than needed, the
# padding costs this much per unit of work (multiply-adds per row, over the replicas) per
# step; a new loop costs its trace and first run. Measured on 2 CPU cores, TensorFlow: the
# seed grid's stack (288 replicas, work 57,600) takes ~9 ms a step; tracing and first
# running a loop ~1 s. A 5-replica Bayesian stack padded into that stack took 1.7 s where a
# loop of its own took ~0.3 s after its trace.
_SECONDS_PER_WORK_STEP = 1.6e-7
_TRACE_SECONDS = 1.0

_KEPT: OrderedDict[tuple, list[Envelope]] = OrderedDict()
# Stacks may train in threads (one per device): one of them looks up or makes a loop at a time.
_LOCK = threading.RLock()
_TRACES = 0
_CACHE: dict[str, Any] = {}


@dataclass
class Envelope:
    """A compiled loop and the padded layout it was made for."""

    lay: Layout
    loop: Any


def forget() -> None:
    """Drop every kept loop (the next stack traces its own)."""
    _KEPT.clear()


def traces() -> int:
    """Training loops traced or compiled in this process so far."""
    return _TRACES


def _base(structure: Structure, X: np.ndarray, Y: np.ndarray, epochs: int, steps: int,
          n_pad: int, batch_size: int, flags: tuple[str, ...] = ()) -> tuple:
    import keras

    backend = keras.backend.backend()
    device = None
    if backend == "jax":  # a compiled loop runs on the device it was compiled for
        import jax

        device = str(jax.config.jax_default_device)
    # flags (layout.fit_flags): a loop is traced for its constants' keys (row weights...).
    return (backend, device, structure.group, epochs, steps, n_pad, batch_size, X.shape,
            Y.shape, str(Y.dtype)) + ((flags,) if flags else ())


def _static(lay: Layout) -> tuple:
    return (lay.depth, lay.width, tuple(lay.acts), tuple(lay.any_dropout), tuple(lay.any_first),
            lay.variants, len(lay.lr), lay.groups, lay.conv_widths, lay.any_input_dropout,
            lay.penalty_terms)


def _work(lay: Layout, replicas: int | None = None, depth: int | None = None,
          width: int | None = None) -> int:
    """Multiply-adds per row of one step, over every replica (of ``lay``, or as overridden)."""
    depth = lay.depth if depth is None else depth
    w = max(lay.width if width is None else width, 1)
    per = lay.n_inputs * w + max(depth - 1, 0) * w * w + w * lay.n_outputs if depth \
        else lay.n_inputs * lay.n_outputs
    return (len(lay.lr) if replicas is None else replicas) * (per + conv_work(lay))


def conv_blocks(sample_shape: Sequence[int], signatures: Sequence[tuple],
                widths: Sequence[int]) -> list[tuple[int, int, int, int, int]]:
    """Per convolution block of one replica: (input positions, kernel positions, input
    channels, filters, positions after its pooling), for samples of ``sample_shape``.

    The one walk over a stack's convolutions: :func:`conv_work` counts their
    arithmetic, :func:`nn_tuning.stacked.engine.conv_sizes` their memory.
    """
    channels = [sample_shape[-1], *widths]
    after = conv_shapes(sample_shape, signatures)
    spatial = [tuple(sample_shape[:-1])] + after[:-1]
    return [(int(np.prod(shape)), int(np.prod(sig[0])), c_in, f, int(np.prod(out)))
            for shape, sig, c_in, f, out in zip(spatial, signatures, channels, widths, after)]


def conv_work(lay: Layout) -> int:
    """Multiply-adds per sample of one replica's convolutions."""
    if not lay.convs:
        return 0
    return sum(n * k * c_in * f
               for n, k, c_in, f, _ in conv_blocks(lay.sample_shape, lay.convs, lay.conv_widths))


def _worth_padding(padded_work: int, work: int, steps: int) -> bool:
    """Whether running ``steps`` steps padded to ``padded_work`` beats tracing a loop of ``work``."""
    return steps * (padded_work - work) * _SECONDS_PER_WORK_STEP < _TRACE_SECONDS


def _covers(env: Layout, lay: Layout) -> bool:
    """Whether ``env``'s shapes hold ``lay``'s (activations: :func:`fitting_loop` checks them)."""
    if env.depth < lay.depth or env.width < lay.width or len(env.lr) < len(lay.lr) \
            or not set(lay.variants) <= set(env.variants) \
            or any(e < n for e, n in zip(env.conv_widths, lay.conv_widths)) \
            or (lay.any_input_dropout and not env.any_input_dropout) \
            or not set(lay.penalty_terms) <= set(env.penalty_terms):
        return False
    for i in range(lay.depth):
        if (lay.any_dropout[i] and not env.any_dropout[i]) \
                or (lay.any_first[i] and not env.any_first[i]):
            return False
    return True


def round_up(n: int) -> int:
    """Replicas of a new envelope: powers of two up to 8, then multiples of 8."""
    if n <= 8:
        return 1 << max(n - 1, 0).bit_length()
    return -(-n // 8) * 8


def _make(lay: Layout, structure: Structure, params: list[np.ndarray], epochs: int, steps: int,
          n_pad: int, batch_size: int) -> Any:
    global _TRACES
    import keras

    from .loops import JaxLoop, TFLoop

    jax = keras.backend.backend() == "jax"
    if jax:
        persistent_cache()
    model = StackedModel(lay, structure, batch_size)
    loop = (JaxLoop if jax else TFLoop)(model, params, lay.variant_runs, epochs, steps, n_pad)
    _TRACES += 1
    logger.debug("stacked: loop %d traced for %d replicas, depth %d, width %d, %d optimizer(s), "
                 "%d epochs of %d steps", _TRACES, len(lay.lr), lay.depth, lay.width,
                 len(lay.variants), epochs, steps)
    return loop


def _keep(base: tuple, env: Envelope) -> None:
    _KEPT.setdefault(base, []).append(env)
    _KEPT.move_to_end(base)
    while sum(len(v) for v in _KEPT.values()) > _MAX_KEPT:
        oldest = next(iter(_KEPT))
        _KEPT[oldest].pop(0)
        if not _KEPT[oldest]:
            del _KEPT[oldest]


def exact_loop(lay: Layout, structure: Structure, consts: dict, params: list[np.ndarray],
               epochs: int, steps: int, n_pad: int, batch_size: int) -> Any:
    """The loop of exactly this layout (a slot stack's own shapes): made once, then reused."""
    with _LOCK:
        return _exact_loop(lay, structure, consts, params, epochs, steps, n_pad, batch_size)


def _exact_loop(lay: Layout, structure: Structure, consts: dict, params: list[np.ndarray],
                epochs: int, steps: int, n_pad: int, batch_size: int) -> Any:
    base = _base(structure, consts["X"], consts["Y"], epochs, steps, n_pad, batch_size,
                 tuple(k for k in ("W", "shuffled") if k in consts))
    for env in _KEPT.get(base, []):
        if _static(env.lay) == _static(lay):
            _KEPT.move_to_end(base)
            return env.loop
    env = Envelope(lay, _make(lay, structure, params, epochs, steps, n_pad, batch_size))
    _keep(base, env)
    return env.loop


def fitting_loop(replicas: Sequence[Replica], X: np.ndarray, Y: np.ndarray, *, epochs: int,
                 steps: int, n_pad: int, batch_size: int
                 ) -> tuple[Any, list[Replica], Layout, list[int]]:
    """A loop for ``replicas``: a kept one that covers them, or a new rounded-up one.

    The stack is *grouped*: replicas sorted by optimizer and activations, each group
    padded to its capacity in the envelope, so each activation is computed on
    its own replicas only. Returns the loop, the padded replicas, their
    layout (learning rate 0 for the padding) and where each given replica
    sits among them. ``X`` and ``Y`` are the stack's data, as its constants
    hold them.
    """
    with _LOCK:
        return _fitting_loop(replicas, X, Y, epochs=epochs, steps=steps, n_pad=n_pad,
                             batch_size=batch_size)


def _fitting_loop(replicas: Sequence[Replica], X: np.ndarray, Y: np.ndarray, *, epochs: int,
                  steps: int, n_pad: int, batch_size: int
                  ) -> tuple[Any, list[Replica], Layout, list[int]]:
    need = layout(replicas)
    base = _base(replicas[0].structure, X, Y, epochs, steps, n_pad, batch_size,
                 fit_flags(replicas))

    def counts(depth: int) -> Counter:
        return Counter(group_key(r, depth) for r in replicas)

    kept = [env for env in _KEPT.get(base, []) if env.lay.groups is not None]
    fits = [env for env in kept if _covers(env.lay, need)
            and all(dict(env.lay.groups).get(k, 0) >= n for k, n in counts(env.lay.depth).items())
            and _worth_padding(_work(env.lay), _work(need), epochs * steps)]
    env = min(fits, key=lambda e: _work(e.lay)) if fits else None
    if env is not None:
        _KEPT.move_to_end(base)
        groups = env.lay.groups
    else:
        groups = tuple((k, round_up(n)) for k, n in sorted(counts(need.depth).items()))
    at_least = None if env is None else env.lay
    depth = need.depth if at_least is None else at_least.depth
    keys = [group_key(r, depth) for r in replicas]
    padded: list[Replica] = []
    positions = [0] * len(replicas)
    for key, size in groups:
        members = [i for i, k in enumerate(keys) if k == key]
        for i in members:
            positions[i] = len(padded)
            padded.append(replicas[i])
        padded += [replicas[members[0] if members else 0]] * (size - len(members))
    lay = with_groups(layout(padded, at_least=at_least), groups)
    if env is None:
        env = Envelope(lay, _make(lay, replicas[0].structure, stacked_params(padded, lay),
                                  epochs, steps, n_pad, batch_size))
        _keep(base, env)
    lr = np.zeros_like(lay.lr)
    lr[positions] = lay.lr[positions]
    return env.loop, padded, replace(lay, lr=lr), positions


def persistent_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache in the user's cache folder, once per process.

    Returns the folder, or None where it is off (``NN_TUNING_JAX_CACHE=off``)
    or the user configured JAX's own cache (then theirs is used as it is).
    """
    if "dir" in _CACHE:
        return _CACHE["dir"]
    import jax

    setting = os.environ.get("NN_TUNING_JAX_CACHE", "")
    folder: Path | None = None
    if setting.lower() not in ("off", "0", "false", "no") \
            and not jax.config.jax_compilation_cache_dir:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = Path(setting) if setting else base / "nn-tuning" / "jax"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only home: compile every time, say why once
            logger.info("JAX compilation cache off: cannot create %s (%s)", folder, exc)
            folder = None
        if folder is not None:
            jax.config.update("jax_compilation_cache_dir", str(folder))
            # A stack's loop compiles in 0.3-3 s: keep those too (JAX's default keeps >= 1 s).
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    _CACHE["dir"] = folder
    return folder
