"""The black boxes: architectures as in the MEED reference, training + caching, the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import data
from data.dataset import Dataset
from data.models import approximator_factory, imdb_cnn, mnist_cnn, recipe

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_mnist_cnn_matches_the_reference_architecture():
    model = mnist_cnn()
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dropout", "Dense", "Softmax"]
    conv1, conv2 = model.get_layer("conv1"), model.get_layer("conv2")
    assert (conv1.filters, conv1.kernel_size, conv1.strides, conv1.padding) == (32, (3, 3), (1, 1), "valid")
    assert (conv2.filters, conv2.kernel_size) == (64, (3, 3))
    assert model.get_layer("dropout1").rate == 0.25 and model.get_layer("dropout2").rate == 0.5
    assert model.get_layer("dense1").units == 128
    assert model.output_shape == (None, 2)
    # 28 -> 26 -> 24 -> 12: 12 * 12 * 64 flattened features feed the dense layer.
    assert model.get_layer("dense1").kernel.shape == (12 * 12 * 64, 128)


def test_imdb_cnn_matches_the_reference_architecture():
    model = imdb_cnn()
    assert model.get_layer("embedding").input_dim == 5000 and model.get_layer("embedding").output_dim == 50
    conv = model.get_layer("conv")
    assert (conv.filters, conv.kernel_size, conv.padding) == (250, (3,), "valid")
    assert model.get_layer("dense1").units == 250
    probs = model.predict(np.zeros((2, 400), np.int32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_recipes_follow_the_papers():
    fashion = recipe("fashion_mnist")
    optimizer = fashion.optimizer()
    assert isinstance(optimizer, keras.optimizers.Adadelta)
    assert float(optimizer.learning_rate) == pytest.approx(1.0)  # Keras 2's default, not Keras 3's 0.001
    assert (fashion.batch_size, fashion.epochs, fashion.paper_accuracy) == (128, 12, 0.9220)
    with pytest.raises(ValueError, match="dataset"):
        recipe("fashion")


def test_approximator_factory_builds_fresh_models_of_the_black_box_architecture():
    factory = approximator_factory("fashion_mnist")
    a, b = factory((28, 28, 1), 2), factory((28, 28, 1), 2)
    assert a is not b and a.count_params() == mnist_cnn().count_params()


def _tiny_dataset():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(96, 10)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    return Dataset(name="xor", x_train=x[:64], y_train=y[:64], x_val=x[64:80], y_val=y[64:80],
                   x_test=x[80:], y_test=y[80:], feature_shape=(10,), class_names=["a", "b"], source="test")


def test_train_blackbox_records_its_accuracy():
    model, info = data.train_blackbox(_tiny_dataset(), epochs=2, seed=0, verbose=0)
    assert model.output_shape == (None, 2)
    assert 0.0 <= info["test_accuracy"] <= 1.0 and info["epochs"] == 2 and info["n_train"] == 64
    manual = float(np.mean(model.predict(_tiny_dataset().x_test, verbose=0).argmax(1) == _tiny_dataset().y_test))
    assert info["test_accuracy"] == pytest.approx(manual)


def test_train_blackbox_is_seeded():
    a, _ = data.train_blackbox(_tiny_dataset(), epochs=1, seed=3, verbose=0)
    b, _ = data.train_blackbox(_tiny_dataset(), epochs=1, seed=3, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_blackbox_is_cached_and_reloaded(tmp_path, monkeypatch):
    calls = []
    blackbox_module = sys.modules["data.blackbox"]  # the module; data.blackbox is the function
    original = blackbox_module.train_blackbox

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(blackbox_module, "train_blackbox", counting)
    first = data.blackbox("xor", models_dir=tmp_path, epochs=1, verbose=0)
    second = data.blackbox("xor", models_dir=tmp_path, epochs=1, verbose=0)
    assert len(calls) == 1
    x = np.random.default_rng(1).normal(size=(5, 10)).astype(np.float32)
    np.testing.assert_allclose(first.predict(x, verbose=0), second.predict(x, verbose=0), rtol=1e-6)
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert record == second.blackbox_info and record["dataset"] == "xor"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_blackbox_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m data.blackbox --dataset xor"):
        data.blackbox("xor", models_dir=tmp_path, train_if_missing=False)
    with pytest.raises(ValueError, match="unknown value 'fashion'"):
        data.blackbox("fashion", models_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not FASHION.exists(), reason="needs the Debian package dataset-fashion-mnist")
def test_cli_trains_the_fashion_mnist_black_box_to_the_papers_accuracy(tmp_path):
    """The README's main job: the paper's recipe on Pullover vs Shirt reaches ~92% (paper: 92.20%)."""
    result = subprocess.run([sys.executable, "-m", "data.blackbox", "--dataset", "fashion_mnist",
                             "--models-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "paper: 92.20%" in result.stdout
    record = json.loads((tmp_path / "fashion_mnist-2-6-seed0.json").read_text())
    assert record["classes"] == [2, 6] and record["n_train"] == 12000
    assert record["full_test_accuracy"] >= 0.90
