"""Image folders: checked before anything is loaded, then read with Keras."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nn_tuning import arrays
from nn_tuning.exceptions import DataError
from nn_tuning.images import load_image_folder, scan_image_folder
from tests.image_folders import digit_images, write_digit_folder


@pytest.fixture
def folder(tmp_path):
    return write_digit_folder(tmp_path / "digits", classes=(0, 1, 2), per_class=6)


def test_folder_loads_as_images_with_class_names(folder):
    X, y, info = load_image_folder(folder, color_mode="grayscale")
    assert X.shape == (18, 8, 8, 1) and X.dtype == np.float32
    assert info.class_names == ("digit_0", "digit_1", "digit_2") and info.counts == (6, 6, 6)
    assert list(y[:6]) == ["digit_0"] * 6 and list(y[-6:]) == ["digit_2"] * 6
    expected, _ = digit_images((0, 1, 2), 6)
    np.testing.assert_array_equal(X[..., 0], expected.astype("float32"))  # no resize, no scaling


def test_rgb_and_image_size_resize(folder):
    X, _, info = load_image_folder(folder, image_size=(16, 12), color_mode="rgb")
    assert X.shape == (18, 16, 12, 3) and info.image_size == (16, 12)
    assert 0 <= X.min() and X.max() <= 255


def _png(path, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(size, "uint8"), mode="L").save(path)


@pytest.mark.parametrize(("damage", "match"), [
    (lambda f: _png(f / "digit_1" / "big.png", (10, 12)),
     r"images of different sizes \(8x8 in .*, 10x12 in .*big\.png'\); set data\.image_size"),
    (lambda f: (f / "digit_3").mkdir(), r"class folder '.*digit_3' holds no images"),
    (lambda f: (f / "digit_0" / "notes.txt").write_text("hi"),
     r"'.*notes\.txt' is not an image file; Keras reads \.bmp, \.gif"),
    (lambda f: (f / "digit_0" / "broken.png").write_bytes(b"not a png"),
     r"'.*broken\.png' is not a readable image"),
    (lambda f: _png(f / "stray.png"), r"'.*stray\.png' is not in a class folder"),
])
def test_bad_folders_are_refused_in_one_line(folder, damage, match):
    damage(folder)
    with pytest.raises(DataError, match=match) as info:
        scan_image_folder(folder)
    assert "\n" not in str(info.value)


def test_hidden_files_are_ignored_and_one_class_is_refused(tmp_path, folder):
    (folder / "digit_0" / ".DS_Store").write_text("x")
    assert scan_image_folder(folder).n_images == 18
    one = write_digit_folder(tmp_path / "one", classes=(4,), per_class=3)
    with pytest.raises(DataError, match="at least 2; found 1"):
        scan_image_folder(one)
    with pytest.raises(DataError, match="data.images folder not found"):
        scan_image_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="data.color_mode must be one of grayscale, rgb, rgba"):
        scan_image_folder(folder, color_mode="cmyk")


def test_images_that_would_not_fit_in_memory_are_refused(folder, monkeypatch):
    # 18 images of 512x512x3 as float32: 54 MiB, x3 at peak.
    monkeypatch.setattr(arrays, "available_memory", lambda: 100 * 2**20)
    with pytest.raises(DataError, match=r"need about 162 MiB \(54 MiB as float32, x3 .*only "
                                        r"100 MiB of memory is available; use a smaller "
                                        r"data\.image_size"):
        scan_image_folder(folder, image_size=(512, 512))
    assert scan_image_folder(folder, image_size=(64, 64)).shape == (18, 64, 64, 3)
