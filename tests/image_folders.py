"""A small image data set made at test time: scikit-learn's digits written out as PNG files.

Each class gets a sub-folder (``digit_0``, ``digit_1``...) of 8-bit grey PNGs
(pixels 0..16 stretched to 0..255), written with Pillow, so the image-folder
path is tested end to end without a download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def digit_images(classes: tuple[int, ...] = (0, 1, 2), per_class: int = 20,
                 size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Digits as uint8 grey images of ``size`` x ``size`` (upscaled by repeating pixels)."""
    X, y = load_digits(return_X_y=True)
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in classes])
    images = (X[keep].reshape(-1, 8, 8) * (255 / 16)).round().astype("uint8")
    if size != 8:
        factor = size // 8
        images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    return images, y[keep]


def write_digit_folder(root: Path, classes: tuple[int, ...] = (0, 1, 2), per_class: int = 20,
                       size: int = 8) -> Path:
    """Write the digits of ``classes`` into ``root/digit_<c>/<i>.png``; return ``root``."""
    images, labels = digit_images(classes, per_class, size)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:04d}.png")
    return root
