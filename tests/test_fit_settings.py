"""``nn_tuning.fit_settings``: checking, identity and row weights of ``model.fit`` settings."""

from __future__ import annotations

import keras
import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

from nn_tuning.fit_settings import check_fit, fit_identity, row_weights


def test_a_callback_s_identity_is_its_settings_not_its_state(tmp_path):
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=2)
    before = fit_identity({"callbacks": [stop]})
    stop.wait, stop.best = 5, 0.1  # what training leaves behind
    assert fit_identity({"callbacks": [stop]}) == before
    assert fit_identity({"callbacks": [keras.callbacks.EarlyStopping(monitor="loss",
                                                                     patience=3)]}) != before
    # A callback that does not keep every argument as an attribute still has an identity.
    saved = fit_identity({"callbacks": [keras.callbacks.ModelCheckpoint(
        str(tmp_path / "m.keras"))]})["callbacks"][0]
    assert saved["class"].endswith("ModelCheckpoint") and saved["monitor"] == "val_loss"


def test_class_weight_labels_written_as_text_match_the_classes():
    y = np.array([0, 1, 1, 2, 2, 2])
    fit = check_fit({"class_weight": {"0": 3, "1": 1.5, "2": 1}}, n_rows=6,
                    task="classification", y=y)
    assert fit["class_weight"] == {0: 3.0, 1: 1.5, 2: 1.0}
    assert all(type(k) is int for k in fit["class_weight"])


def test_row_weights_multiply_sample_and_class_weights():
    y = np.array(["a", "b", "b", "b"])
    w = np.array([1.0, 2.0, 0.0, 1.0])
    np.testing.assert_allclose(row_weights({"class_weight": "balanced"}, w, y),
                               w * compute_sample_weight("balanced", y))
    np.testing.assert_allclose(row_weights({"class_weight": {"a": 2.0, "b": 1.0}}, None, y),
                               [2.0, 1.0, 1.0, 1.0])
    assert row_weights({"shuffle": False}, None, y) is None
