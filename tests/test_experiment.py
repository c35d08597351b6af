"""Experiment configs and experiment data: parsing, checks, overrides (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nn_tuning import ConfigError, DataError, SearchSpace
from nn_tuning.data import BUNDLED, load_data
from nn_tuning.experiment import Experiment, Overrides

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

BASE = """
name = "tiny"
[data]
dataset = "advertising"
[builder]
name = "mlp_regressor"
[space]
neurons = [4, 8]
activation = ["relu", "linear"]
[training]
cv = 2
epochs = 2
[strategies.grid]
[strategies.random]
max_trials = 3
"""


def test_default_is_the_advertising_study():
    exp = Experiment.default()
    assert exp.name == "advertising" and exp.builder_name == "mlp_regressor"
    assert exp.space.grid_size == 54
    assert exp.space["activation"].values == ("softmax", "relu", "linear")
    assert exp.space["neurons"].values == (5, 10, 15, 25, 35, 50)
    assert exp.space["optimizer"].values == ("SGD", "Adam", "Adamax")
    assert exp.training.epochs == 80 and exp.training.batch_size == 40
    assert exp.data.features == ("TV", "Radio", "Newspaper") and exp.data.target == "Sales"
    assert exp.data.test_size == 0.2
    for name in ("random", "bayesian", "hyperband"):
        assert exp.strategies[name].max_trials < 54
    assert len(exp.strategies["manual"].configs) >= 2


def test_shipped_copy_matches_the_embedded_default():
    assert (EXPERIMENTS / "advertising.toml").read_text() == Experiment.default().text


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_experiment_parses(path):
    exp = Experiment.from_file(path)
    assert exp.strategies and exp.space is not None
    json.dumps(exp.resolved())


def test_shipped_studies_cover_regression_and_both_classifiers():
    builders = {Experiment.from_file(p).builder_name for p in EXPERIMENTS.glob("*.toml")}
    assert builders == {"mlp_regressor", "mlp_classifier", "cnn_classifier"}


def test_task_follows_the_builder():
    assert Experiment.from_text(BASE).task == "regression"
    text = BASE.replace("mlp_regressor", "mlp_classifier").replace("advertising", "iris")
    assert Experiment.from_text(text).task == "classification"


def test_overrides_cap_every_strategy():
    exp = Experiment.default().with_overrides(Overrides(max_trials=4, epochs=3, seed=7, cv=2,
                                                        device="cpu"))
    assert exp.training.device == "cpu" and exp.training.epochs == 3
    assert exp.training.seed == 7 and exp.training.cv == 2
    assert len(exp.strategies["manual"].configs) == 4
    assert all(exp.strategies[s].max_trials == 4 for s in ("random", "bayesian", "hyperband"))
    sub, max_trials = exp.search_args("grid")
    assert 1 <= sub.grid_size <= 4 and set(sub) == set(exp.space) and max_trials is None
    assert exp.resolved()["strategies"]["grid"]["max_trials"] == 4
    # The original is untouched.
    assert Experiment.default().strategies["random"].max_trials == 15


def test_no_overrides_keeps_the_full_grid():
    exp = Experiment.default().with_overrides(Overrides())
    assert exp.search_args("grid")[0].grid_size == 54


@pytest.mark.parametrize("edit, match", [
    (lambda t: "foo = 1\n" + t, r"unknown key 'foo'; allowed: name"),
    (lambda t: t.replace('dataset = "advertising"', 'dataset = "advertising"\nfoo = 1'),
     r"unknown key 'data\.foo'; allowed: dataset"),
    (lambda t: t.replace("mlp_regressor", "mlp_nope"), r"unknown builder\.name 'mlp_nope'"),
    (lambda t: t.replace("[strategies.grid]", "[strategies.annealing]"),
     r"unknown strategy 'strategies\.annealing'"),
    (lambda t: t.replace("neurons = [4, 8]", "neuronz = [4, 8]"), r"unknown key 'space\.neuronz'"),
    (lambda t: t.replace("epochs = 2", 'epochs = "two"'), r"training\.epochs must be an integer"),
    (lambda t: t.replace("cv = 2", "cv = 1"), r"training\.cv must be an integer >= 2, got 1"),
    (lambda t: t.replace("max_trials = 3", ""), r"strategies\.random\.max_trials is required"),
    (lambda t: t.replace('dataset = "advertising"', 'dataset = "mnist"'),
     r"unknown data\.dataset 'mnist'"),
    (lambda t: t.replace("[training]", '[training]\nscoring = "goodness"'),
     r"training\.scoring 'goodness' is not a scikit-learn scorer"),
    (lambda t: t.replace("[training]", '[training]\ndevice = "tpu"'), r"training\.device"),
    (lambda t: t.replace("neurons = [4, 8]", 'neurons = { type = "float", low = 1.0, high = 2.0 }'),
     r"strategies\.grid: .*a grid search needs grid points"),
    (lambda t: t.replace("neurons = [4, 8]\nactivation = [\"relu\", \"linear\"]", ""),
     r"the \[space\] table is empty"),
    (lambda t: t.replace("[space]", "[spaces]"), r"unknown key 'spaces'"),
    (lambda t: t + "\n[strategies.manual]\nconfigs = [{ neuronz = 3 }]\n",
     r"unknown key 'strategies\.manual\.configs\[0\]\.neuronz'"),
    (lambda t: t.replace("[space]", "[space]\nn_layers = { type = \"int\", low = 3, high = 1 }"),
     r"\[space\] search space entry 'n_layers'.*low <= high"),
    (lambda t: t.replace("[data]", "[data]\ntest_size = 1.5"), r"data\.test_size must be"),
    (lambda t: "[data\n", r"malformed TOML"),
])
def test_bad_configs_are_one_line_errors_naming_file_and_key(edit, match):
    with pytest.raises(ConfigError, match=match) as info:
        Experiment.from_text(edit(BASE), source="cfg.toml")
    message = str(info.value)
    assert message.startswith("cfg.toml: ") and "\n" not in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: '.*nope\.toml'"):
        Experiment.from_file(tmp_path / "nope.toml")


def test_manual_only_config_needs_no_space():
    text = """
[data]
dataset = "iris"
[builder]
name = "mlp_classifier"
[strategies.manual]
configs = [{ neurons = 4 }]
"""
    exp = Experiment.from_text(text)
    assert exp.space is None and exp.name == "experiment"
    with pytest.raises(ConfigError, match="strategy 'random' needs a \\[space\\] table"):
        Experiment.from_text(text + "[strategies.random]\nmax_trials = 2\n")


# Data -----------------------------------------------------------------------------


def test_advertising_is_bundled_and_split_80_20():
    split = load_data(dataset="advertising", scale_target=True, seed=0)
    assert split.X_train.shape == (160, 3) and split.X_test.shape == (40, 3)
    assert split.features == ["TV", "Radio", "Newspaper"] and split.target == "Sales"
    assert abs(split.y_train.mean()) < 1e-5 and abs(split.y_train.std() - 1) < 1e-3
    assert 10 < split.y_test.mean() < 20  # test targets stay in Sales units
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-5)
    back = split.inverse_target(split.y_train)
    np.testing.assert_allclose(back.mean(), split.y_scaler.mean_[0], rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in BUNDLED if n != "advertising"])
def test_sklearn_datasets_load(name):
    task = "regression" if name == "diabetes" else "classification"
    split = load_data(dataset=name, task=task, seed=0)
    assert len(split.X_train) > len(split.X_test) > 0 and split.target == "target"


def test_classification_split_is_stratified():
    split = load_data(dataset="iris", task="classification", seed=0, test_size=0.2)
    assert np.bincount(split.y_test).tolist() == [10, 10, 10]


def _csv(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


def test_csv_errors_name_file_column_and_row(tmp_path):
    good = "a,b,y\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(20))
    path = _csv(tmp_path, good)
    split = load_data(csv=path, target="y", features=["a"], seed=0)
    assert split.features == ["a"] and split.X_train.shape[1] == 1
    with pytest.raises(DataError, match=r"d\.csv: data\.target column 'z' is not in the data; "
                                        r"columns are a, b, y"):
        load_data(csv=path, target="z")
    with pytest.raises(DataError, match=r"data\.features column 'c' is not in the data"):
        load_data(csv=path, target="y", features=["a", "c"])
    with pytest.raises(DataError, match=r"data\.target is required"):
        load_data(csv=path)
    bad = _csv(tmp_path, good.replace("\n3,6,", "\nthree,6,"))
    with pytest.raises(DataError, match=r"feature column 'a' is not numeric \(row 3: 'three'\)"):
        load_data(csv=bad, target="y")
    nan = _csv(tmp_path, good.replace("\n4,8,", "\n4,,"))
    with pytest.raises(DataError, match=r"feature column 'b' has a missing value at row 4"):
        load_data(csv=nan, target="y")
    with pytest.raises(DataError, match=r"data\.csv file not found"):
        load_data(csv=tmp_path / "missing.csv", target="y")


def test_scale_target_only_for_regression():
    with pytest.raises(DataError, match="scale_target"):
        load_data(dataset="iris", task="classification", scale_target=True)


def test_resolved_config_round_trips_through_json():
    exp = Experiment.from_text(BASE)
    data = json.loads(json.dumps(exp.resolved()))
    assert SearchSpace.from_dict(data["space"]) == exp.space


def test_data_sources_npz_and_images_resolve_from_the_config_folder(tmp_path):
    base = """
[builder]
name = "cnn_classifier"
[space]
filters = [4]
[strategies.grid]
"""
    exp = Experiment.from_text('[data]\nnpz = "arrays/d.npz"\nx_array = "images"\n'
                               'shape = [28, 28, 1]\nscale = "unit"\n' + base,
                               source="a.toml", base_dir=tmp_path)
    args = exp.data.load_args(exp.base_dir)
    assert args["npz"] == tmp_path / "arrays" / "d.npz" and args["x_array"] == "images"
    assert args["shape"] == (28, 28, 1) and exp.data.scale == "unit"
    assert exp.resolved()["data"]["shape"] == [28, 28, 1]
    exp = Experiment.from_text('[data]\nimages = "/data/pets"\nimage_size = [64, 48]\n'
                               'color_mode = "grayscale"\n' + base, source="b.toml")
    args = exp.data.load_args(exp.base_dir)
    assert str(args["images"]) == "/data/pets" and args["image_size"] == (64, 48)
    for data, match in [
        ('npz = "d.npz"\ncsv = "d.csv"', r"exactly one of .*got csv, npz"),
        ('images = "x"\nimage_size = [64]', r"data\.image_size must be \[height, width\]"),
        ('images = "x"\ncolor_mode = "cmyk"', r"data\.color_mode must be one of grayscale"),
        ('npz = "d.npz"\ntarget = "y"', r"data\.target applies to data\.dataset or data\.csv"),
        ('dataset = "digits"\nshape = [8, 0]', r"data\.shape must be a list of sizes"),
    ]:
        with pytest.raises(ConfigError, match=match):
            Experiment.from_text(f"[data]\n{data}\n" + base, source="c.toml")


CLASSIFIER = BASE.replace("mlp_regressor", "mlp_classifier").replace("advertising", "iris")


def test_training_fit_table_becomes_tune_fit_settings():
    import keras

    from nn_tuning.fit_settings import fit_from_table

    exp = Experiment.from_text(CLASSIFIER + """
[training.fit]
validation_split = 0.25
shuffle = false
class_weight = { 0 = 2.0, 1 = 1.0, 2 = 0.5 }
early_stopping = { monitor = "val_loss", patience = 3, restore_best_weights = true }
""")
    fit = exp.training.fit
    assert fit["validation_split"] == 0.25 and fit["shuffle"] is False
    assert fit["class_weight"] == {"0": 2.0, "1": 1.0, "2": 0.5}
    assert json.loads(json.dumps(exp.resolved()))["training"]["fit"] == fit  # experiment.json
    made = fit_from_table(fit)
    (callback,) = made["callbacks"]
    assert isinstance(callback, keras.callbacks.EarlyStopping)
    assert (callback.monitor, callback.patience, callback.restore_best_weights) == \
        ("val_loss", 3, True)
    assert "early_stopping" not in made
    assert fit_from_table(fit)["callbacks"][0] is not callback  # a new callback per run
    assert fit_from_table(Experiment.from_text(BASE).training.fit) is None


@pytest.mark.parametrize("table, match", [
    ("epochs = 3", r"unknown key 'training\.fit\.epochs'; allowed: validation_split, "
                   r"class_weight, shuffle, early_stopping"),
    ("validation_split = 1.0", r"training\.fit\.validation_split must be a number in \[0, 1\), "
                               r"got 1\.0"),
    ('shuffle = "yes"', r"training\.fit\.shuffle must be True or False, got 'yes'"),
    ('class_weight = "even"', r"training\.fit\.class_weight must be 'balanced' or a mapping"),
    ("class_weight = { 0 = -1.0 }", r"training\.fit\.class_weight\['0'\] must be a finite "
                                    r"number >= 0, got -1\.0"),
    ("early_stopping = { patience = 2, monitr = 'loss' }",
     r"unknown key 'training\.fit\.early_stopping\.monitr'; allowed: monitor"),
    ("early_stopping = 3", r"training\.fit\.early_stopping must be a table"),
])
def test_bad_training_fit_values_name_the_key_and_value(table, match):
    with pytest.raises(ConfigError, match=match) as info:
        Experiment.from_text(CLASSIFIER + "\n[training.fit]\n" + table + "\n", source="cfg.toml")
    assert str(info.value).startswith("cfg.toml: ") and "\n" not in str(info.value)


def test_class_weights_in_a_regression_config_are_refused():
    with pytest.raises(ConfigError, match=r"cfg\.toml: training\.fit\.class_weight is for "
                                          r"classification only"):
        Experiment.from_text(BASE + '\n[training.fit]\nclass_weight = "balanced"\n',
                             source="cfg.toml")


def test_reduce_lr_on_plateau_in_training_fit_runs_after_early_stopping_as_written():
    import keras

    from nn_tuning.fit_settings import fit_from_table

    exp = Experiment.from_text(CLASSIFIER + """
[training.fit]
validation_split = 0.25
reduce_lr_on_plateau = { factor = 0.5, patience = 2, min_lr = 1e-4 }
early_stopping = { patience = 4 }
""")
    first, second = fit_from_table(exp.training.fit)["callbacks"]
    assert isinstance(first, keras.callbacks.ReduceLROnPlateau) and first.factor == 0.5
    assert isinstance(second, keras.callbacks.EarlyStopping) and second.patience == 4
    with pytest.raises(ConfigError, match=r"cfg\.toml: training\.fit\.reduce_lr_on_plateau "
                                          r"\{'factor': 1\.5\}: .*factor >= 1\.0"):
        Experiment.from_text(CLASSIFIER + "\n[training.fit]\nreduce_lr_on_plateau = "
                             "{ factor = 1.5 }\n", source="cfg.toml")
