"""load_data with N-D samples: reshaped tables, npz arrays, image folders, and the scale modes."""

from __future__ import annotations

import numpy as np
import pytest

from nn_tuning.data import load_data, scale_mode
from nn_tuning.exceptions import DataError
from tests.image_folders import write_digit_folder


def test_digits_as_8x8x1_images_scaled_per_channel():
    split = load_data(dataset="digits", shape=[8, 8, 1], task="classification", seed=0)
    assert split.X_train.shape == (1437, 8, 8, 1) and split.X_test.shape == (360, 8, 8, 1)
    assert split.scale == "channel"
    # One channel: one mean and one deviation over every training pixel.
    assert abs(split.X_train.mean()) < 1e-4 and abs(split.X_train.std() - 1) < 1e-3
    info = split.describe()
    assert info["sample_shape"] == [8, 8, 1] and len(info["feature_mean"]) == 1


def test_standard_scales_every_pixel_and_tables_are_unchanged():
    split = load_data(dataset="digits", shape=[8, 8, 1], task="classification", scale="standard")
    assert len(split.describe()["feature_mean"]) == 64
    table = load_data(dataset="digits", task="classification")
    assert table.scale == "standard" and table.X_train.shape == (1437, 64)
    np.testing.assert_allclose(split.X_train.reshape(-1, 64), table.X_train, atol=1e-5)


def test_unit_divides_8bit_images_and_refuses_other_values(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.integers(0, 256, (40, 6, 6, 3)).astype("uint8"), y=np.arange(40) % 2)
    split = load_data(npz=path, scale="unit", task="classification")
    assert split.X_train.max() <= 1 and split.X_train.shape[1:] == (6, 6, 3)
    assert split.describe()["feature_divisor"] == 255.0
    with pytest.raises(DataError, match=r"data\.scale = 'unit' divides 8-bit images by 255, but "
                                        r"the values lie in \[-0\.1.*use 'standard' or 'channel'"):
        load_data(dataset="diabetes", shape=[5, 2], scale="unit")


def test_image_folder_and_npz_with_renamed_arrays(tmp_path):
    folder = write_digit_folder(tmp_path / "imgs", per_class=10)
    split = load_data(images=folder, color_mode="grayscale", task="classification", seed=1)
    assert split.X_train.shape == (24, 8, 8, 1) and split.classes == ["digit_0", "digit_1",
                                                                      "digit_2"]
    assert set(split.y_test) == {"digit_0", "digit_1", "digit_2"}  # stratified
    path = tmp_path / "seq.npz"
    np.savez(path, seqs=np.random.default_rng(0).normal(size=(30, 5, 2)), t=np.arange(30.0))
    split = load_data(npz=path, x_array="seqs", y_array="t")
    assert split.X_train.shape == (24, 5, 2) and split.target == "t"


def test_bad_shapes_and_scales():
    with pytest.raises(DataError, match=r"data\.shape \[8, 8, 2\] holds 128 values, but each "
                                        r"sample has 64"):
        load_data(dataset="digits", shape=[8, 8, 2], task="classification")
    with pytest.raises(DataError, match="data.scale must be true, false or one of standard"):
        scale_mode("minmax", 2)
    with pytest.raises(DataError, match="exactly one of 'dataset', 'csv', 'npz' or 'images'"):
        load_data(dataset="iris", npz="x.npz")


@pytest.mark.parametrize("value", ["inf", "-inf", "1e999"])
def test_an_infinite_feature_is_refused_like_a_missing_one(tmp_path, value):
    csv = tmp_path / "ads.csv"
    csv.write_text(f"TV,Radio,Sales\n1,2,3\n4,{value},6\n7,8,9\n10,11,12\n13,14,15\n")
    with pytest.raises(DataError, match=r"feature column 'Radio' has an infinite value at row 1"):
        load_data(csv=csv, target="Sales", test_size=0.2)


def test_tune_refuses_infinite_features_before_training(tmp_path):
    from model_builders import mlp_regressor
    from nn_tuning import tune

    X = np.ones((10, 2))
    X[3, 1] = np.inf
    with pytest.raises(DataError, match=r"X contains NaN or infinite values \(first at row 3, "
                                        r"column 1\)"):
        tune(mlp_regressor, {"neurons": [4]}, X, np.arange(10.0), strategy="grid", cv=2,
             epochs=1, directory=tmp_path / "run")
    assert not (tmp_path / "run").exists()
