"""Arrays in an .npz file: named arrays, shapes checked from the headers, memory checked."""

from __future__ import annotations

import numpy as np
import pytest

from nn_tuning import arrays
from nn_tuning.arrays import load_npz, npz_shapes
from nn_tuning.exceptions import DataError


def test_npz_loads_named_arrays_as_float32(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.arange(2 * 4 * 4 * 3, dtype="uint8").reshape(2, 4, 4, 3),
             labels=np.array(["a", "b"]))
    assert npz_shapes(path)["images"][0] == (2, 4, 4, 3)
    X, y = load_npz(path, "images", "labels")
    assert X.shape == (2, 4, 4, 3) and X.dtype == np.float32 and list(y) == ["a", "b"]


@pytest.mark.parametrize(("arrays_", "match"), [
    ({"X": np.ones((4, 3)), "target": np.ones(4)},
     r"has no array 'y' \(data\.y_array\); it holds: X, target"),
    ({"X": np.ones(4), "y": np.ones(4)},
     r"array 'X' must have samples on its first axis and at least 2 dimensions.*got shape \(4,\)"),
    ({"X": np.ones((4, 2, 2)), "y": np.ones(3)},
     r"arrays 'X' and 'y' must have the same number of samples, got shapes \(4, 2, 2\) and \(3,\)"),
    ({"X": np.array([["a"], ["b"]]), "y": np.ones(2)}, r"array 'X' must be numeric, got dtype <U1"),
])
def test_bad_npz_is_refused_in_one_line(tmp_path, arrays_, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays_)
    with pytest.raises(DataError, match=match) as info:
        load_npz(path)
    assert "\n" not in str(info.value)


def test_missing_unreadable_and_too_big_npz(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="data.npz file not found"):
        load_npz(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(DataError, match="is not a readable .npz file"):
        load_npz(tmp_path / "junk.npz")
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((1000, 32, 32, 3), "uint8"), y=np.zeros(1000))
    monkeypatch.setattr(arrays, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(DataError, match=r"need about 35 MiB .*only 10 MiB of memory is "
                                        r"available; use fewer samples"):
        load_npz(path)
