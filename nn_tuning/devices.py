"""Which devices TensorFlow trains on: CPU or GPUs, memory growth, mixed precision.

Under ``KERAS_BACKEND=jax`` the devices are JAX's (chosen when JAX starts, by
``JAX_PLATFORMS`` and ``CUDA_VISIBLE_DEVICES``): they are checked and
labelled from ``jax.devices()``, and TensorFlow is never imported.

TensorFlow grabs all GPU memory by default, so two trials cannot share a GPU;
memory growth is turned on here by default. Call :func:`configure_devices`
before anything has run on TensorFlow in the process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .exceptions import ConfigError

__all__ = ["DEVICES", "configure_devices", "default_device_label", "describe_devices",
           "device_note"]

DEVICES = ("auto", "cpu", "gpu")


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _jax_gpus() -> list[object]:
    import jax

    return [d for d in jax.devices() if d.platform == "gpu"]


def describe_devices() -> list[str]:
    """The devices the Keras backend sees, e.g. ``['CPU:0', 'GPU:0']``.

    TensorFlow's physical devices, or JAX's devices under ``KERAS_BACKEND=jax``
    (TensorFlow is then never imported).
    """
    if _backend() == "jax":
        import jax

        return [f"{d.platform.upper()}:{d.id}" for d in jax.devices()]
    import tensorflow as tf

    return [d.name.removeprefix("/physical_device:") for d in tf.config.list_physical_devices()]


def default_device_label() -> str:
    """``"gpu"`` when the Keras backend (TensorFlow or JAX) sees a GPU, else ``"cpu"``."""
    if _backend() == "jax":
        return "gpu" if _jax_gpus() else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def _configure_jax(device: str, gpus: Sequence[int] | None, mixed_precision: bool) -> str:
    """JAX chooses its devices when it starts: only check the choice and label it."""
    import keras

    physical = _jax_gpus()
    if device == "gpu" and not physical:
        raise ConfigError("device 'gpu' was asked for but JAX sees no GPU; use device 'cpu' or "
                          "'auto', or install JAX with CUDA")
    if gpus is not None:
        raise ConfigError(f"gpus {list(gpus)!r} cannot be chosen under KERAS_BACKEND=jax; "
                          "choose JAX's GPUs with CUDA_VISIBLE_DEVICES before starting")
    if device == "cpu" and physical:
        raise ConfigError("device 'cpu' cannot be chosen under KERAS_BACKEND=jax once JAX sees a "
                          "GPU; set JAX_PLATFORMS=cpu before starting")
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return "gpu:" + ",".join(str(i) for i in range(len(physical))) if physical else "cpu"


def configure_devices(
    device: str = "auto",
    gpus: Sequence[int] | None = None,
    *,
    memory_growth: bool = True,
    mixed_precision: bool = False,
) -> str:
    """Choose the devices of this process and return a label for the trial records.

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"}
        ``auto`` uses the GPUs when the backend (TensorFlow or JAX) sees any.
    gpus : sequence of int, optional
        Indices of the GPUs to use (all when omitted).
    memory_growth : bool, default=True
        Allocate GPU memory as needed instead of all of it at once.
    mixed_precision : bool, default=False
        Train with Keras' ``mixed_float16`` policy.

    Returns
    -------
    str
        ``"cpu"`` or ``"gpu:0,1"``.
    """
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if gpus is not None and (not all(isinstance(g, int) and g >= 0 for g in gpus) or not gpus):
        raise ConfigError(f"gpus must be a list of GPU indices such as 0,1, got {gpus!r}")
    if _backend() == "jax":
        return _configure_jax(device, gpus, mixed_precision)
    import keras
    import tensorflow as tf

    physical = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not physical:
        raise ConfigError("device 'gpu' was asked for but TensorFlow sees no GPU; "
                          "use device 'cpu' or 'auto', or install nn-tuning[gpu]")
    if gpus is not None and physical:
        missing = [g for g in gpus if g >= len(physical)]
        if missing:
            raise ConfigError(f"gpus {missing} do not exist: TensorFlow sees {len(physical)} GPU(s)")
    chosen = [] if device == "cpu" else [physical[g] for g in (gpus or range(len(physical)))]
    try:
        # Idempotent: a repeated, identical choice after TensorFlow started is fine.
        if physical and tf.config.get_visible_devices("GPU") != chosen:
            tf.config.set_visible_devices(chosen, "GPU")
        for gpu in chosen:
            if tf.config.experimental.get_memory_growth(gpu) != memory_growth:
                tf.config.experimental.set_memory_growth(gpu, memory_growth)
    except RuntimeError as exc:
        raise ConfigError(
            f"devices must be chosen before TensorFlow runs anything in this process ({exc})"
        ) from None
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return "gpu:" + ",".join(str(g) for g in (gpus or range(len(chosen)))) if chosen else "cpu"


def device_note() -> str:
    """What the active backend trains on, for the one line a run logs per strategy."""
    if _backend() == "jax":
        return "JAX devices: " + ", ".join(describe_devices())
    return "visible CUDA devices: " + os.environ.get("CUDA_VISIBLE_DEVICES", "all")
