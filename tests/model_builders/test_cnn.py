import keras
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
