"""Stacked training: many small Keras models, one (configuration, fold) each, trained as one model.

:mod:`.structure` is what a stack needs of a model, :mod:`.read_model` and
:mod:`.read_training` read it off a compiled Keras model,
:mod:`.engine` trains a stack, :mod:`.compiled` keeps its compiled loop for the
stacks after it. Importing this package imports neither
TensorFlow nor scikeras: Keras and its backend load when a stack trains.
"""

from __future__ import annotations

from . import compiled
from .engine import Replica, StackResult, epoch_orders, train_stack
from .read_model import read_structure
from .structure import (
    SUPPORTED_ACTIVATIONS,
    SUPPORTED_LOSSES,
    SUPPORTED_OPTIMIZERS,
    NotStackable,
    Structure,
)

__all__ = ["SUPPORTED_ACTIVATIONS", "SUPPORTED_LOSSES", "SUPPORTED_OPTIMIZERS", "NotStackable",
           "Replica", "StackResult", "Structure", "compiled", "epoch_orders",
           "read_structure", "train_stack"]
