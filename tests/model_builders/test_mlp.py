import keras
import numpy as np
import pytest

from model_builders import mlp_classifier, mlp_regressor


def test_regressor_direct_use_builds_fits_and_predicts():
    model = mlp_regressor(input_dim=3, neurons=8, n_layers=2, activation="relu", optimizer="adam")
    assert isinstance(model, keras.Model)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [8, 8, 1]
    X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = X.sum(axis=1)
    history = model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert model.predict(X, verbose=0).shape == (32, 1)


def test_hidden_layers_tuple_overrides_neurons_and_dropout_is_added():
    model = mlp_regressor(input_dim=4, hidden_layers=(16, 4), dropout=0.25)
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [16, 4, 1]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2


def test_optimizer_name_instance_and_learning_rate():
    model = mlp_regressor(input_dim=2, optimizer="SGD", learning_rate=0.05)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    shared = keras.optimizers.Adamax(learning_rate=0.01)
    a = mlp_regressor(input_dim=2, optimizer=shared)
    b = mlp_regressor(input_dim=2, optimizer=shared)
    assert a.optimizer is not b.optimizer and isinstance(a.optimizer, keras.optimizers.Adamax)


def test_classifier_picks_sigmoid_or_softmax_by_class_count():
    binary = mlp_classifier(input_dim=4, n_classes=2)
    assert binary.output_shape == (None, 1)
    assert binary.layers[-1].activation is keras.activations.sigmoid
    multi = mlp_classifier(input_dim=4, n_classes=3, neurons=6)
    assert multi.output_shape == (None, 3)
    assert multi.layers[-1].activation is keras.activations.softmax
    X = np.random.default_rng(0).normal(size=(30, 4)).astype("float32")
    multi.fit(X, np.arange(30) % 3, epochs=1, verbose=0)


def test_meta_supplies_input_and_class_counts():
    model = mlp_classifier(meta={"n_features_in_": 5, "n_classes_": 4})
    assert model.input_shape == (None, 5) and model.output_shape == (None, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "bogus"}, "activation 'bogus'"),
        ({"optimizer": "nope"}, "optimizer 'nope'"),
        ({"neurons": 0}, "neurons must be an integer >= 1, got 0"),
        ({"neurons": 2.5}, "neurons must be an integer >= 1, got 2.5"),
        ({"n_layers": -1}, "n_layers must be an integer >= 1, got -1"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be a number in \[0, 1\), got -0.1"),
        ({"learning_rate": 0}, "learning_rate must be a number > 0, got 0"),
        ({"hidden_layers": (4, 0)}, "hidden_layers must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_raise_naming_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp_regressor(input_dim=3, **kwargs)


def test_missing_input_dim_is_named():
    with pytest.raises(ValueError, match="input_dim must be an integer >= 1, got None"):
        mlp_regressor()
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        mlp_classifier(input_dim=3, n_classes=1)


def test_builders_do_not_import_nn_tuning():
    import ast
    from pathlib import Path

    import model_builders

    for path in Path(model_builders.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("nn_tuning"), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("nn_tuning") for a in node.names), path
