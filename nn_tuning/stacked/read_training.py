"""What a stack reads of how a model trains: its loss, optimizer, schedule and regularizers.

Each reader returns what :class:`~.structure.Structure` keeps, or raises
:class:`~.structure.NotStackable` with the reason.
"""

from __future__ import annotations

from typing import Any

from .structure import (
    SUPPORTED_LOSSES,
    SUPPORTED_OPTIMIZERS,
    SUPPORTED_REGULARIZERS,
    SUPPORTED_SCHEDULES,
    NotStackable,
)

__all__ = ["read_loss", "read_optimizer", "read_penalties"]

# Optimizer settings that read more than one weight at a time (norms over a
# whole variable or all of them), or keep extra state a stack cannot share.
_MIXING_SETTINGS = ("clipnorm", "global_clipnorm", "use_ema", "gradient_accumulation_steps",
                    "loss_scale_factor")


def _coefficients(layer: Any, attr: str) -> tuple[float, float]:
    """(L1, L2) strengths of the layer's ``attr`` regularizer: (0, 0) where it has none."""
    import keras

    reg = getattr(layer, attr, None)
    if reg is None:
        return 0.0, 0.0
    name = type(reg).__name__
    if name not in SUPPORTED_REGULARIZERS or type(reg) is not getattr(keras.regularizers, name):
        raise NotStackable(f"a {type(layer).__name__} layer's {attr} is a {name}, not one of "
                           "Keras' own "
                           f"{', '.join(SUPPORTED_REGULARIZERS)}")
    # keras.regularizers.L1 keeps its strength as a tensor, L2 and L1L2 as floats.
    return (float(keras.ops.convert_to_numpy(getattr(reg, "l1", 0.0))),
            float(keras.ops.convert_to_numpy(getattr(reg, "l2", 0.0))))


def read_penalties(layers: list[Any]) -> tuple[tuple[float, float, float, float], ...]:
    """:attr:`Structure.penalties` of the model's Conv then Dense ``layers``, in order."""
    out = tuple(_coefficients(d, "kernel_regularizer") + _coefficients(d, "bias_regularizer")
                for d in layers)
    return out if any(any(c) for c in out) else ()


def read_loss(model: Any) -> tuple[str, tuple]:
    import keras

    loss = model.loss
    kwargs: dict[str, Any] = {}
    if isinstance(loss, keras.losses.Loss):
        if type(loss).__module__.split(".")[0] != "keras" or \
                getattr(loss, "reduction", None) != "sum_over_batch_size":
            raise NotStackable(f"loss {type(loss).__name__} is not one of Keras' own with the "
                               "default reduction")
        kwargs = dict(getattr(loss, "_fn_kwargs", {}))
        fn = getattr(loss, "fn", None)
    else:
        try:
            fn = keras.losses.get(loss)
        except (ValueError, TypeError):
            fn = None
    name = getattr(fn, "__name__", None)
    if name not in SUPPORTED_LOSSES:
        shown = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
        raise NotStackable(f"loss {shown!r} is not one of {', '.join(SUPPORTED_LOSSES)}")
    return name, tuple(sorted(kwargs.items()))


def read_optimizer(model: Any) -> tuple[str, tuple, float]:
    import keras

    opt = model.optimizer
    name = type(opt).__name__
    if opt is None or type(opt) is not getattr(keras.optimizers, name, None) \
            or name not in SUPPORTED_OPTIMIZERS:
        raise NotStackable(f"optimizer {name} is not one of {', '.join(SUPPORTED_OPTIMIZERS)}")
    config = opt.get_config()
    for key in _MIXING_SETTINGS:
        if config.get(key) not in (None, False):
            raise NotStackable(f"optimizer setting {key}={config[key]!r} mixes replicas")
    if name == "Ftrl" and config.get("beta"):
        # Its per-replica term beta / (2 lr) goes through Keras' TensorFlow ops.add, which
        # adds an (R, 1, 1) tensor along another axis when R equals a weight's dimension.
        raise NotStackable(f"Ftrl with beta={config['beta']!r}: its per-replica beta / (2 lr) "
                           "would be added along the wrong axis; beta=0 stacks")
    lr = config.pop("learning_rate")
    if not isinstance(lr, (int, float)):
        lr = _schedule(opt, config)
    config.pop("name", None)
    return name, tuple(sorted((k, repr(v)) for k, v in config.items())), float(lr)


def _schedule(opt: Any, config: dict) -> float:
    """The initial learning rate of ``opt``'s schedule; its class and other settings go in
    ``config["learning_rate_schedule"]`` (so in the optimizer variant)."""
    import keras

    schedule = opt._learning_rate  # the schedule object (get_config holds it serialised)
    name = type(schedule).__name__
    if name not in SUPPORTED_SCHEDULES \
            or type(schedule) is not getattr(keras.optimizers.schedules, name):
        raise NotStackable(f"learning rate schedule {name} is not one of "
                           f"{', '.join(SUPPORTED_SCHEDULES)}")
    settings = schedule.get_config()
    if settings.get("warmup_target") is not None:
        raise NotStackable("a CosineDecay schedule with a warmup_target branches on the step "
                           "count, which differs between replicas")
    settings.pop("name", None)
    if name == "PiecewiseConstantDecay":  # the first value stands for the rate, as reported
        settings = {k: list(settings[k]) for k in ("boundaries", "values")}
        lr = settings["values"][0]
    else:
        lr = settings.pop("initial_learning_rate")
    plain = (bool, int, float, type(None))
    if not isinstance(lr, (int, float)) or not all(
            isinstance(v, plain) or (isinstance(v, list) and all(isinstance(x, plain) for x in v))
            for v in settings.values()):
        raise NotStackable(f"the {name} schedule's settings are not plain numbers")
    config["learning_rate_schedule"] = (name, tuple(sorted(settings.items())))
    return lr
