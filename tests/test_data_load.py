"""data.load on real-data sources, with small files in the real formats written to temporary folders.

No test touches the network: every test runs with allow_download=False and with the Keras cache, the
Debian system path and the TensorFlow Datasets root pointed at temporary folders (except the one test
that reads the real Debian Fashion-MNIST, skipped when it is absent).
"""
import gzip
import logging
import os
import pickle
import re
import struct

import numpy as np
import pytest

from data import sources
from data.dataset import Dataset, load, preprocess_imdb

REAL_FASHION = "/usr/share/datasets/fashion-mnist"
REAL_FASHION_PRESENT = os.path.isfile(os.path.join(REAL_FASHION, "train-images-idx3-ubyte.gz"))


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Point the Keras cache, the system path and TFDS at empty temporary folders."""
    keras_home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(sources, "TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return {"cache": keras_home / "datasets", "system": tmp_path / "system", "tfds": tmp_path / "tfds",
            "tmp": tmp_path}


# ------------------------------------------------------------------------------ writers (real formats)

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

    full = load("fashion_mnist", data_dir=d, allow_download=False)
    assert full.n_classes == 10 and len(full.y_train) == 60 and len(full.y_val) + len(full.y_test) == 200
    np.testing.assert_array_equal(full.y_train, cycle_labels(60))


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
    with pytest.raises(sources.DatasetNotFoundError, match=r"TensorFlow Datasets.*not prepared in .*mnist"):
        load("mnist", allow_download=False)


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
