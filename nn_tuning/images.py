"""Image folders: one sub-folder per class, checked, then read with Keras' image utilities.

``keras.utils.image_dataset_from_directory`` silently resizes every image to
256x256 unless told a size, skips files with other extensions and accepts
empty class folders. :func:`scan_image_folder` checks the folder first, with
Pillow reading only each file's header: every class folder holds images,
every file is an image Keras reads (``.bmp .gif .jpeg .jpg .png``), and the
images share one size unless ``image_size`` is given. The memory the loaded
arrays take is estimated and refused when it would not fit
(:func:`nn_tuning.arrays.check_memory`). Only then are the images read.

Hidden files and folders (names starting with ``.``) are ignored, as Keras
ignores them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arrays import check_memory
from .exceptions import DataError

__all__ = ["COLOR_MODES", "IMAGE_EXTENSIONS", "ImageFolder", "load_image_folder",
           "scan_image_folder"]

logger = logging.getLogger("nn_tuning")

#: The extensions ``image_dataset_from_directory`` reads (it skips every other file).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: data.color_mode -> channels of the loaded images.
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


@dataclass(frozen=True)
class ImageFolder:
    """A checked image folder: its classes, how many images, and the size they load at."""

    path: Path
    class_names: tuple[str, ...]
    counts: tuple[int, ...]
    image_size: tuple[int, int]  # (height, width)
    channels: int

    @property
    def n_images(self) -> int:
        return sum(self.counts)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The shape of the loaded array: (N, height, width, channels)."""
        return (self.n_images, *self.image_size, self.channels)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    files = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and all(not part.startswith(".") for part in rel.parts):
            files.append(f)
    return files


def _size_of(file: Path) -> tuple[int, int]:
    """(height, width) of an image, from its header; DataError when it is not one."""
    from PIL import Image, UnidentifiedImageError

    if file.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DataError(f"data.images: {str(file)!r} is not an image file; Keras reads "
                        f"{', '.join(IMAGE_EXTENSIONS)}")
    try:
        with Image.open(file) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"data.images: {str(file)!r} is not a readable image: "
                        f"{type(exc).__name__}") from None
    return height, width


def scan_image_folder(path: str | Path, image_size: Sequence[int] | None = None,
                      color_mode: str = "rgb") -> ImageFolder:
    """Check an image folder without loading its images; see the module's docstring.

    Raises
    ------
    DataError
        One line naming the folder or file: no such folder, fewer than 2
        class folders, an image outside a class folder, an empty class folder,
        a file that is not an image, images of different sizes without
        ``image_size``, or images that would not fit in memory.
    """
    path = Path(path)
    if color_mode not in COLOR_MODES:
        raise DataError(f"data.color_mode must be one of {', '.join(COLOR_MODES)}, "
                        f"got {color_mode!r}")
    if not path.is_dir():
        raise DataError(f"data.images folder not found: {str(path)!r}")
    entries = sorted(p for p in path.iterdir() if _visible(p))
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise DataError(f"data.images: {str(stray[0])!r} is not in a class folder; put each "
                        f"image in the sub-folder of its class")
    classes = [p for p in entries if p.is_dir()]
    if len(classes) < 2:
        raise DataError(f"data.images: {str(path)!r} must hold one sub-folder per class, at "
                        f"least 2; found {len(classes)}")
    sizes: dict[tuple[int, int], Path] = {}
    counts = []
    for folder in classes:
        files = _image_files(folder)
        if not files:
            raise DataError(f"data.images: class folder {str(folder)!r} holds no images")
        for f in files:
            sizes.setdefault(_size_of(f), f)
        counts.append(len(files))
    if image_size is None:
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise DataError(f"data.images: images of different sizes ({a[0]}x{a[1]} in "
                            f"{str(fa)!r}, {b[0]}x{b[1]} in {str(fb)!r}); set data.image_size "
                            "= [height, width] to resize them all")
        size = next(iter(sizes))
    else:
        size = (int(image_size[0]), int(image_size[1]))
    folder = ImageFolder(path, tuple(p.name for p in classes), tuple(counts), size,
                         COLOR_MODES[color_mode])
    check_memory(int(np.prod(folder.shape)), f"data.images {path.name}: {folder.n_images} "
                 f"images of {size[0]}x{size[1]}x{folder.channels}", source_itemsize=1,
                 hint="use a smaller data.image_size or fewer images")
    return folder


def load_image_folder(path: str | Path, image_size: Sequence[int] | None = None,
                      color_mode: str = "rgb") -> tuple[np.ndarray, np.ndarray, ImageFolder]:
    """Check and read an image folder.

    Returns
    -------
    X : ndarray of float32, shape (N, height, width, channels)
        Pixel values as read (0..255 for 8-bit images), class by class.
    y : ndarray of str
        Each image's class (its folder's name).
    folder : ImageFolder
        What was read.
    """
    import keras

    folder = scan_image_folder(path, image_size, color_mode)
    data = keras.utils.image_dataset_from_directory(
        folder.path, labels="inferred", label_mode="int", class_names=list(folder.class_names),
        color_mode=color_mode, batch_size=256, image_size=folder.image_size, shuffle=False,
        verbose=False)
    X = np.empty(folder.shape, dtype="float32")
    labels = np.empty(folder.n_images, dtype="int64")
    n = 0
    for images, classes in data.as_numpy_iterator():
        if n + len(images) > len(X):
            n += len(images)
            break
        X[n:n + len(images)] = images
        labels[n:n + len(images)] = classes
        n += len(images)
    if n != folder.n_images:  # pragma: no cover - the scan and Keras disagree on the files
        raise DataError(f"data.images: Keras read {n} images in {str(folder.path)!r}, the check "
                        f"found {folder.n_images}")
    logger.info("data.images %s: %d images of %dx%dx%d in %d classes", folder.path,
                folder.n_images, *folder.image_size, folder.channels, len(folder.class_names))
    return X, np.asarray(folder.class_names)[labels], folder
