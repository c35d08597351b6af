"""Keras 3 model builders whose arguments are the hyperparameters people tune.

This package stands alone: import it into your own training code without
``nn_tuning``.
"""

from .cnn import cnn_classifier
from .mlp import mlp_classifier, mlp_regressor

__all__ = ["cnn_classifier", "mlp_classifier", "mlp_regressor"]
