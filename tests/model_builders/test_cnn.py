import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from model_builders import cnn_classifier


def test_cnn_trains_on_flat_8x8_digits():
    X, y = load_digits(return_X_y=True)
    X = (X[:300] / 16.0).astype("float32")
    y = y[:300]
    model = cnn_classifier(input_dim=64, n_classes=10, filters=8, n_blocks=2, dense_units=32)
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    history = model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(X[:5], verbose=0).shape == (5, 10)


def test_cnn_explicit_image_shape():
    model = cnn_classifier(input_dim=48, n_classes=2, image_shape=(4, 4, 3), n_blocks=1)
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_dim": 60}, "60 input features are not a square image"),
        ({"n_blocks": 4}, "shrinks a 8x8 image"),
        ({"filters": 0}, "filters must be an integer >= 1, got 0"),
        ({"activation": "nope"}, "activation 'nope'"),
        ({"dropout": 2}, r"dropout must be a number in \[0, 1\), got 2"),
        ({"image_shape": (8, 8, 1), "input_dim": 100}, "image_shape"),
    ],
)
def test_cnn_bad_arguments(kwargs, match):
    args = {"input_dim": 64, "n_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        cnn_classifier(**args)


@pytest.mark.parametrize(("x_shape", "input_shape"), [
    ((10, 8, 8, 1), (None, 8, 8, 1)),   # images
    ((10, 6, 4, 3), (None, 6, 4, 3)),   # colour images, not square
    ((10, 8, 8), (None, 8, 8)),         # grey images: a channel axis is added inside
])
def test_cnn_takes_its_input_shape_from_scikeras_meta(x_shape, input_shape):
    meta = {"X_shape_": x_shape, "n_features_in_": x_shape[1], "n_classes_": 3}
    model = cnn_classifier(meta=meta, filters=4, n_blocks=1)
    assert model.input_shape == input_shape and model.output_shape == (None, 3)
    assert model.predict(np.zeros(x_shape, "float32"), verbose=0).shape == (10, 3)


def test_cnn_reshapes_nd_input_to_an_explicit_image_shape():
    meta = {"X_shape_": (5, 4, 12), "n_features_in_": 4, "n_classes_": 2}
    model = cnn_classifier(meta=meta, image_shape=(4, 4, 3), n_blocks=1)
    assert model.input_shape == (None, 4, 12)
    assert model.get_layer(index=1).output.shape == (None, 4, 4, 3)
    with pytest.raises(ValueError, match=r"image_shape \(8, 8\) holds 64 values, but the input "
                                         r"has 48 features"):
        cnn_classifier(meta=meta, image_shape=(8, 8))
    with pytest.raises(ValueError, match=r"takes images of shape \(height, width\) or \(height, "
                                         r"width, channels\) per sample, got samples of shape "
                                         r"\(2, 2, 2, 2\)"):
        cnn_classifier(meta={"X_shape_": (5, 2, 2, 2, 2), "n_features_in_": 2, "n_classes_": 2})
