"""The shared evaluation protocol: which task a target is."""

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from model_builders import mlp_regressor
from nn_tuning import tune
from nn_tuning.evaluation import infer_task


@pytest.mark.parametrize("y, task", [
    (np.array([0, 1, 1, 0]), "classification"),
    (np.array(["cat", "dog", "cat"]), "classification"),
    (np.array([0.0, 1.0, 2.0, 1.0]), "classification"),  # labels read as floats
    (np.arange(50, dtype=int), "classification"),  # integer labels, however many
    (np.arange(50, dtype=float), "regression"),  # whole-number measurements
    (np.array([1.5, 2.25, 3.0]), "regression"),
])
def test_infer_task(y, task):
    assert infer_task(y) == task


def test_whole_number_float_targets_are_tuned_as_regression():
    X, y = load_diabetes(return_X_y=True)  # disease scores: 214 whole-number floats
    assert infer_task(y) == "regression"
    result = tune(mlp_regressor, {"neurons": [4]}, X[:80], y[:80], strategy="grid", cv=2,
                  epochs=1, batch_size=40, seed=0, refit=False)
    assert result.scoring == "r2"


def test_iris_labels_are_classification():
    _, y = load_iris(return_X_y=True)
    assert infer_task(y) == "classification"
