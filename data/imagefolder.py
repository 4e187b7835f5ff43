"""A local folder of images sorted into one sub-folder per class: the data of MEED's ImageNet setting.

MEED Section 4.4 explains a Gorilla-vs-Zebra classifier trained on the two ImageNet classes. ImageNet
cannot be downloaded here (nor redistributed), so the user points ``data_dir`` at a copy laid out the
way ImageNet (and ``keras.utils.image_dataset_from_directory``) lays it out::

    data_dir/train/<class>/*.JPEG      e.g. train/n02480855/ (gorilla), train/n02391049/ (zebra)
    data_dir/val/<class>/*.JPEG        ("test/" is accepted instead of "val/")

Class names are the sub-folder names in sorted order (the same set in both splits). Every image is
decoded (JPEG, PNG, BMP, GIF first frame), converted to RGB and resized to ``size`` x ``size`` with
bilinear interpolation and antialiasing, ignoring the aspect ratio as ``keras.utils.load_img`` with
``target_size`` does. Pixels are returned as uint8; ``data.dataset`` applies MobileNet's preprocessing.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from data.sources import DatasetNotFoundError, RawData

logger = logging.getLogger("data")

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEST_FOLDERS = ("val", "test")
#: The ImageNet WordNet ids of the paper's two classes (MEED Section 4.4), for the error message.
PAPER_CLASSES = {"n02480855": "gorilla", "n02391049": "zebra"}


def load_image_folder(data_dir, *, size: int = 224) -> tuple[RawData, list[str]]:
    """Train and test images of a class-per-folder tree (module docstring) as uint8 (N, size, size, 3),
    with the class names (the sub-folder names, sorted; label i = names[i])."""
    train_dir, test_dir = _split_dirs(data_dir)
    names = _classes(train_dir)
    test_names = _classes(test_dir)
    if test_names != names:
        raise ValueError(f"data_dir: the class folders of {test_dir} ({test_names}) differ from those of "
                         f"{train_dir} ({names})")
    x_train, y_train = _read_split(train_dir, names, size)
    x_test, y_test = _read_split(test_dir, names, size)
    logger.info("imagenet: image folder %s: %d train / %d test images of classes %s", data_dir,
                len(y_train), len(y_test), names)
    return RawData(x_train, y_train, x_test, y_test, source=f"image folder {os.fspath(data_dir)}"), names


def _split_dirs(data_dir) -> tuple[Path, Path]:
    if data_dir is None:
        classes = ", ".join(f"{wnid} ({name})" for wnid, name in PAPER_CLASSES.items())
        raise DatasetNotFoundError(
            "data_dir: the 'imagenet' setting reads a local image folder and cannot download ImageNet; "
            "pass data_dir (CLI: --data-dir) pointing at a folder with train/<class>/ and val/<class>/ "
            f"sub-folders of images, e.g. the ImageNet classes {classes} for the paper's setting")
    root = Path(data_dir)
    train = root / "train"
    test = next((root / name for name in TEST_FOLDERS if (root / name).is_dir()), None)
    if not train.is_dir() or test is None:
        raise DatasetNotFoundError(
            f"data_dir: expected {root}/train/<class>/ and {root}/val/<class>/ (or test/) folders of images; "
            f"found {sorted(p.name for p in root.iterdir()) if root.is_dir() else 'no folder'}")
    return train, test


def _classes(split_dir: Path) -> list[str]:
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if len(names) < 2:
        raise ValueError(f"data_dir: expected at least two class folders in {split_dir}, found {names}")
    return names


def _read_split(split_dir: Path, names: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    paths, labels = [], []
    for label, name in enumerate(names):
        files = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        if not files:
            raise ValueError(f"data_dir: no images ({', '.join(EXTENSIONS)}) in {split_dir / name}")
        paths += files
        labels += [label] * len(files)
    images = np.empty((len(paths), size, size, 3), np.uint8)
    for i, path in enumerate(paths):
        images[i] = _decode(path, size)
    return images, np.asarray(labels, np.int64)


def _decode(path: Path, size: int) -> np.ndarray:
    try:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        raise ValueError(f"data_dir: cannot decode the image {path}: {error.message}") from None
    resized = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear", antialias=True)
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
