"""The local image-folder source of MEED's ImageNet setting, and the ImageNet-weights check."""
import numpy as np
import pytest
import tensorflow as tf

import data
from data.models import MOBILENET_WEIGHTS_FILE, mobilenet_weights, recipe
from data.sources import DatasetNotFoundError


def write_images(folder, n, colour, size=(40, 30), fmt="png"):
    folder.mkdir(parents=True)
    for i in range(n):
        image = np.full(size + (3,), colour, np.uint8)
        image[i % size[0], :, :] = 255 - np.asarray(colour, np.uint8)  # a line: images differ
        encoded = tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=100)
        tf.io.write_file(str(folder / f"img{i}.{fmt}"), encoded)


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "imagenet2"
    write_images(root / "train" / "n02480855", 5, (0, 0, 0))
    write_images(root / "train" / "n02391049", 4, (255, 255, 255), fmt="jpeg")
    write_images(root / "val" / "n02480855", 3, (0, 0, 0))
    write_images(root / "val" / "n02391049", 3, (255, 255, 255), fmt="jpeg")
    return root


def test_loads_a_class_per_folder_tree_with_mobilenet_preprocessing(folder):
    ds = data.load("imagenet", data_dir=folder)
    assert ds.class_names == ["n02391049", "n02480855"]  # sorted folder names
    assert ds.x_train.shape == (9, 224, 224, 3) and ds.x_train.dtype == np.float32
    assert len(ds.x_val) + len(ds.x_test) == 6 and len(ds.x_val) == 3
    np.testing.assert_array_equal(ds.y_train, [0] * 4 + [1] * 5)
    # black images -> -1, white -> +1 (preprocess_input of keras.applications.mobilenet)
    assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0
    np.testing.assert_allclose(ds.x_train[4:, 100:, :, :].mean(), -1.0, atol=1e-6)  # class 1 = black
    assert ds.source.startswith("image folder")
    picked = data.load("imagenet", data_dir=folder, classes=(1,))
    assert picked.class_names == ["n02480855"] and len(picked.x_train) == 5


def test_without_a_folder_the_error_says_what_to_pass(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="--data-dir.*gorilla"):
        data.load("imagenet")
    with pytest.raises(DatasetNotFoundError, match="train/<class>/ and .*val/<class>/"):
        data.load("imagenet", data_dir=tmp_path)


def test_mismatched_classes_and_unreadable_images_are_named(folder):
    (folder / "val" / "n99999999").mkdir()
    write_images(folder / "val" / "n99999999" / "x", 1, (9, 9, 9))
    with pytest.raises(ValueError, match="class folders of .*val.* differ"):
        data.load("imagenet", data_dir=folder)
    bad = folder.parent / "bad"
    write_images(bad / "train" / "a", 1, (0, 0, 0))
    write_images(bad / "train" / "b", 1, (0, 0, 0))
    write_images(bad / "test" / "a", 1, (0, 0, 0))
    write_images(bad / "test" / "b", 1, (0, 0, 0))
    (bad / "test" / "b" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode the image .*broken.jpg"):
        data.load("imagenet", data_dir=bad)


def test_imagenet_weights_are_looked_up_in_the_keras_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/models/{MOBILENET_WEIGHTS_FILE}"):
        mobilenet_weights()
    with pytest.raises(FileNotFoundError, match="not in the Keras cache"):
        recipe("imagenet_mobilenet").builder(input_shape=(224, 224, 3), n_classes=2)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / MOBILENET_WEIGHTS_FILE).write_bytes(b"")
    assert mobilenet_weights() == str(tmp_path / "models" / MOBILENET_WEIGHTS_FILE)
