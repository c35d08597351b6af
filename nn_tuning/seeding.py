"""Seeding scoped to one block: a seeded fit leaves the process's random state as it found it.

Inside :func:`scoped_seed` every source of randomness a Keras fit draws from is
seeded as ``keras.utils.set_random_seed`` seeds it (Python's ``random``, NumPy's
global generator, TensorFlow's global seed, Keras' global seed and
``SeedGenerator``);
on leaving, each is put back exactly: the Python and NumPy generator states,
TensorFlow's global seed *and* the position of its operation-seed sequence
(so unseeded TensorFlow ops go on drawing as if the block had not run), and
Keras' global seed and global ``SeedGenerator`` object, and TensorFlow's op
determinism switch (scikeras' scopes turn it on and, when TensorFlow is first
asked about it inside one of them, never off: unseeded random ops then fail
for the rest of the process). scikeras' own
``tensorflow_random_state`` restores the TensorFlow seed but not its sequence
and leaves Keras' global seed generator alone.

Threads. Python's ``random``, NumPy's global generator and TensorFlow's seed
are process-wide; Keras keeps its global seed and seed generator per thread.
Seeded blocks therefore hold a process-wide lock: two seeded fits in threads
of one process (a Dask worker with several threads) run one after the other,
and each is as reproducible as it is alone. Unseeded work running in another
thread at the same time still shares the process-wide generators: it may
draw from the seeded state, and what it draws while a seeded block runs is
lost when the block restores the state. Dask's local clusters here use
single-threaded worker processes, where none of this arises.

>>> import random
>>> before = random.getstate()
>>> with scoped_seed(0):
...     _ = random.random()
>>> random.getstate() == before
True
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["scoped_seed"]

# Reentrant: a seeded fit builds its model inside its own seeded block.
_lock = threading.RLock()


def _tensorflow_loaded() -> bool:
    # TensorFlow's seeds matter only once it is imported (always, on Keras'
    # TensorFlow backend); under JAX or PyTorch it may not even be installed.
    return "tensorflow" in sys.modules


def _tf_context() -> Any:
    if not _tensorflow_loaded():
        return None
    try:
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover - a TensorFlow without this module
        return None
    ctx = context.context()
    return ctx if hasattr(ctx, "_set_global_seed") else None


def _capture() -> dict[str, Any]:
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    ctx = _tf_context()
    rng = getattr(ctx, "_rng", None)
    return {
        # Asked first, before any TF_DETERMINISTIC_OPS=1 (which scikeras sets
        # in its scopes) can make TensorFlow report determinism as already on.
        "determinism": _determinism(),
        "env": os.environ.get("TF_DETERMINISTIC_OPS"),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "tf_seed": getattr(ctx, "_seed", None),
        "tf_rng": rng.getstate() if rng is not None else None,
        "keras_seed": global_state.get_global_attribute(rng_utils.GLOBAL_RANDOM_SEED),
        "keras_generator": global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR),
    }


def _restore(saved: dict[str, Any]) -> None:
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    if saved["env"] is None:
        os.environ.pop("TF_DETERMINISTIC_OPS", None)
    else:
        os.environ["TF_DETERMINISTIC_OPS"] = saved["env"]
    if saved["determinism"] is not None and _determinism() != saved["determinism"]:
        from tensorflow.python.framework import config

        (config.enable_op_determinism if saved["determinism"] else config.disable_op_determinism)()
    random.setstate(saved["python"])
    np.random.set_state(saved["numpy"])
    _set_tf_seed(saved["tf_seed"])
    if saved["tf_seed"] is not None and saved["tf_rng"] is not None:
        _tf_context()._rng.setstate(saved["tf_rng"])  # the op-seed sequence goes on where it was
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, saved["keras_seed"])
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR,
                                      saved["keras_generator"])


def _determinism() -> bool | None:
    """TensorFlow's op-determinism switch; None when TensorFlow is not loaded."""
    if not _tensorflow_loaded():
        return None
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()


def _set_tf_seed(seed: int | None) -> None:
    """TensorFlow's global seed, as ``tf.random.set_seed`` sets it, but keeping its kernel cache.

    ``tf.random.set_seed`` also clears the eager kernel cache (resetting the
    counters of stateful random kernels, which Keras 3 does not use: its ops
    are stateless, seeded from Python's ``random`` and ``SeedGenerator``s).
    Every eager op after a clear re-creates its kernel: with four seed changes
    per fit that cost about 10% of a small configuration's CV run.
    """
    if not _tensorflow_loaded():
        return
    ctx = _tf_context()
    if ctx is None or not hasattr(ctx, "_seed"):  # pragma: no cover - another TensorFlow
        import tensorflow as tf

        tf.random.set_seed(seed)
        return
    ctx._seed = seed
    if seed is not None:
        ctx._rng = random.Random(seed)


def _seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)``, with :func:`_set_tf_seed` for TensorFlow's part."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    _set_tf_seed(seed)


@contextlib.contextmanager
def scoped_seed(seed: int | None) -> Iterator[None]:
    """Seed Python, NumPy, TensorFlow and Keras inside the block, and restore them after.

    Parameters
    ----------
    seed : int or None
        The seed; ``None`` seeds nothing and restores nothing.
    """
    if seed is None:
        yield
        return
    with _lock:
        saved = _capture()
        try:
            _seed_everything(int(seed))
            yield
        finally:
            _restore(saved)
