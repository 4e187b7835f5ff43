"""Writers of the real IDX format (MNIST / Fashion-MNIST files) with made-up images, shared by the data tests."""
from __future__ import annotations

import gzip
import struct

import numpy as np


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fake_images(n: int, shape=(28, 28), tag: int = 0, seed: int = 0) -> np.ndarray:
    """Random uint8 images (with 0 and 255 present); pixel [0, 0] = index % 256, [0, 1] = index // 256,
    [0, 2] = tag (which source wrote them)."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n,) + shape, dtype=np.uint8)
    x[:, 1, 1], x[:, 1, 2] = 0, 255
    x[:, 0, 0], x[:, 0, 1], x[:, 0, 2] = np.arange(n) % 256, np.arange(n) // 256, tag
    return x


def cycle_labels(n: int, n_classes: int = 10) -> np.ndarray:
    return (np.arange(n) % n_classes).astype(np.uint8)


def write_idx_folder(folder, n_train=60, n_test=200, tag=0, gz=True, labels_train=None, labels_test=None):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": fake_images(n_train, tag=tag, seed=1),
        "train-labels-idx1-ubyte": cycle_labels(n_train) if labels_train is None else labels_train,
        "t10k-images-idx3-ubyte": fake_images(n_test, tag=tag, seed=2),
        "t10k-labels-idx1-ubyte": cycle_labels(n_test) if labels_test is None else labels_test,
    }
    for stem, arr in arrays.items():
        data = idx_bytes(arr)
        (folder / (stem + ext)).write_bytes(gzip.compress(data) if gz else data)
    return arrays


def write_learnable_idx_folder(folder, n_train=200, n_test=60, gz=True):
    """IDX files whose images show their label: a bright 6 x 6 block at one of ten places per class on dim
    noise, so that a classifier trained on them classifies its test split correctly (VP's sample selection
    needs correct, confident predictions). Returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def images(n):
        labels = cycle_labels(n)
        x = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            row, col = 2 + 12 * (label // 5), 2 + 5 * (label % 5)
            x[i, row:row + 6, col:col + 6] = 255
        return x, labels

    (x_train, y_train), (x_test, y_test) = images(n_train), images(n_test)
    arrays = {"train-images-idx3-ubyte": x_train, "train-labels-idx1-ubyte": y_train,
              "t10k-images-idx3-ubyte": x_test, "t10k-labels-idx1-ubyte": y_test}
    for stem, arr in arrays.items():
        data = idx_bytes(arr)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return arrays
