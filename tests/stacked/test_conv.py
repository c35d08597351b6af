"""Convolution stacks keep the engine's contract: each replica trains as its own ``model.fit``.

CNNs of one stack share their input, kernel sizes, padding, activations and
pooling; filters, Dense widths, dropout and learning rates differ. Plus the
ways a user writes the same model (Sequential grown with ``add()``, a list,
``build()``, functional) read as one structure, and MLPs on N-D samples
(Flatten first) stack.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from model_builders import cnn_classifier, mlp_classifier
from nn_tuning.stacked import NotStackable, read_structure

from .test_engine import _accuracy, _compare


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    return X[:160], y[:160].reshape(-1, 1)


_META = {"n_classes": 10, "meta": {"X_shape_": (160, 8, 8, 1), "n_features_in_": 64,
                                   "n_classes_": 10}}


def _cnn_configs():
    return [dict(filters=4, n_blocks=2, dense_units=12, learning_rate=0.01),
            dict(filters=6, n_blocks=2, dense_units=8, learning_rate=0.003),
            dict(filters=3, n_blocks=2, dense_units=16, optimizer="sgd", learning_rate=0.05)]


def test_cnn_one_step_matches_model_fit(digits):
    X, y = digits
    folds = [(np.arange(0, 40), np.arange(120, 160)), (np.arange(40, 80), np.arange(0, 40))]
    _compare(cnn_classifier, _cnn_configs(), X, y, folds, 1, 40, _META, _accuracy,
             run_eagerly=True)


def test_cnn_15_epochs_match_model_fit(digits):
    X, y = digits
    folds = [(np.arange(0, 120), np.arange(120, 160))]
    rel, score = _compare(cnn_classifier, _cnn_configs(), X, y, folds, 15, 40, _META, _accuracy)
    assert rel <= 1e-4
    assert score <= 1e-4
