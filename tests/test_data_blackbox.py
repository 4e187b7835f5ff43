"""The black boxes: architectures as in the papers, recipes by name, training + caching, the CLI."""
import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import data
from data.blackbox import cache_paths, main
from data.dataset import Dataset
from data.models import (DEFAULT_RECIPES, RECIPES, approximator_factory, default_recipe, imagenet_mobilenet, imdb_cnn,
                         lstm_classifier, mnist_cnn, paper_accuracy, recipe, small_cnn, small_resnet, tabular_mlp,
                         vp_mnist_cnn)
from eval.report import validate_report
from tests.formats import write_idx_folder

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
blackbox_module = sys.modules["data.blackbox"]  # the module; data.blackbox is the function


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


def test_vp_mnist_cnn_is_three_convolutions_and_two_dense_layers():
    model = vp_mnist_cnn()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(c.name, c.filters, c.kernel_size) for c in convs] == [
        ("conv1", 32, (3, 3)), ("conv2", 64, (3, 3)), ("conv3", 128, (3, 3))]
    assert [d.name for d in dense] == ["dense1", "logits"] and model.layers[-1].name == "probs"
    # 28 -> 26 -> 24 -> pool 12 -> 10 -> pool 5: 5 * 5 * 128 features feed dense1.
    assert model.get_layer("dense1").kernel.shape == (5 * 5 * 128, 128)
    assert model.output_shape == (None, 10)


def test_small_resnet_has_three_residual_stages():
    model = small_resnet()
    names = {layer.name for layer in model.layers}
    assert {"stem_conv", "stem_bn", "gap", "logits", "probs"} <= names
    for stage, (width, side) in enumerate(((16, 28), (32, 14), (64, 7)), start=1):
        for block in (1, 2):
            out = model.get_layer(f"stage{stage}_block{block}_out")
            assert tuple(out.output.shape) == (None, side, side, width)
            assert isinstance(model.get_layer(f"stage{stage}_block{block}_add"), keras.layers.Add)
    # Projection shortcuts exactly where the shape changes (the first block of stages 2 and 3).
    assert sorted(n for n in names if n.endswith("_shortcut_conv")) == [
        "stage2_block1_shortcut_conv", "stage3_block1_shortcut_conv"]
    assert model.get_layer("stage2_block1_shortcut_conv").strides == (2, 2)
    assert model.get_layer("stage2_block1_conv1").strides == (2, 2)
    assert model.get_layer("stage1_block1_conv1").strides == (1, 1)
    assert model.output_shape == (None, 10)


# Every recipe's values, as the cached models and the numbers in the docs were made with them.
EXPECTED_RECIPES = {
    "mnist_cnn": (mnist_cnn, keras.optimizers.Adadelta, 1.0, 128, 12),
    "imdb_cnn": (imdb_cnn, keras.optimizers.RMSprop, 1e-3, 32, 5),
    "planted_text_cnn": (imdb_cnn, keras.optimizers.RMSprop, 1e-3, 32, 3),
    "imagenet_mobilenet": (imagenet_mobilenet, keras.optimizers.Adadelta, 1.0, 32, 5),
    "small_cnn": (small_cnn, keras.optimizers.Adam, 1e-3, 64, 8),
    "tabular_mlp": (tabular_mlp, keras.optimizers.Adam, 1e-3, 100, 20),
    "lstm": (lstm_classifier, keras.optimizers.Adam, 1e-3, 128, 4),
    "vp_mnist_cnn": (vp_mnist_cnn, keras.optimizers.Adam, 1e-3, 64, 10),
    "small_resnet": (small_resnet, keras.optimizers.Adam, 1e-3, 128, 6),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_RECIPES))
def test_recipes_keep_their_values(name):
    builder, optimizer_class, learning_rate, batch_size, epochs = EXPECTED_RECIPES[name]
    spec = recipe(name)
    assert spec.builder is builder
    optimizer = spec.optimizer()
    assert type(optimizer) is optimizer_class
    assert float(optimizer.learning_rate) == pytest.approx(learning_rate)  # Adadelta: Keras 2's 1.0, not 0.001
    assert (spec.batch_size, spec.epochs) == (batch_size, epochs)
    schedule = optimizer.get_config()["learning_rate"]
    if name == "small_resnet":  # halved every 1,000 steps
        assert schedule["class_name"] == "ExponentialDecay"
        assert (schedule["config"]["decay_steps"], schedule["config"]["decay_rate"]) == (1000, 0.5)
        assert schedule["config"]["staircase"] is False
    else:
        assert isinstance(schedule, float)  # a constant learning rate


def test_default_recipes_and_paper_accuracies():
    assert set(RECIPES) == set(EXPECTED_RECIPES)
    assert default_recipe("fashion_mnist") == default_recipe("mnist") == "mnist_cnn"  # MEED's, not VP's
    assert {d: default_recipe(d) for d in ("imdb", "planted_text", "imagenet", "localization", "timeseries")} == {
        "imdb": "imdb_cnn", "planted_text": "planted_text_cnn", "imagenet": "imagenet_mobilenet",
        "localization": "small_cnn", "timeseries": "lstm"}
    assert {DEFAULT_RECIPES[d] for d in ("xor", "orange_skin", "nonlinear_additive", "switch")} == {"tabular_mlp"}
    assert paper_accuracy("fashion_mnist", "mnist_cnn", (2, 6)) == 0.9220
    assert paper_accuracy("mnist", "mnist_cnn", [3, 8]) == 0.9989
    assert paper_accuracy("imdb", "imdb_cnn") == 0.8860
    assert paper_accuracy("imagenet", "imagenet_mobilenet") == 1.0
    assert paper_accuracy("mnist", "vp_mnist_cnn") == 0.9952
    # The MEED number is for its class pair only; VP's for all of MNIST; none for the TGD stand-in.
    assert paper_accuracy("fashion_mnist", "mnist_cnn") is None
    assert paper_accuracy("mnist", "vp_mnist_cnn", (3, 8)) is None
    assert paper_accuracy("timeseries", "lstm") is None


def test_recipe_lookup_errors_name_the_argument_and_close_matches():
    with pytest.raises(ValueError, match=r"recipe: unknown value 'mnist_cn' \(did you mean 'mnist_cnn'"):
        recipe("mnist_cn")
    with pytest.raises(ValueError, match="recipe: unknown value 'fashion_mnist'"):  # a dataset, not a recipe
        recipe("fashion_mnist")
    with pytest.raises(TypeError, match="recipe: expected a name"):
        recipe(3)
    with pytest.raises(ValueError, match="dataset: 'cifar10' has no default recipe.*small_resnet"):
        default_recipe("cifar10")
    with pytest.raises(ValueError, match="recipe: unknown value 'resnet'"):
        paper_accuracy("mnist", "resnet")
    with pytest.raises(TypeError, match="classes"):
        paper_accuracy("mnist", "mnist_cnn", "38")


def test_approximator_factory_builds_fresh_models_of_the_recipes_architecture():
    factory = approximator_factory("mnist_cnn")
    a, b = factory((28, 28, 1), 2), factory((28, 28, 1), 2)
    assert a is not b and a.count_params() == mnist_cnn().count_params() and a.name == "approx_mnist_cnn"
    assert approximator_factory("small_resnet")((28, 28, 1), 10).count_params() == small_resnet().count_params()
    with pytest.raises(ValueError, match="recipe: unknown value"):
        approximator_factory("fashion_mnist")


def _tiny_dataset():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(96, 10)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    return Dataset(name="xor", x_train=x[:64], y_train=y[:64], x_val=x[64:80], y_val=y[64:80],
                   x_test=x[80:], y_test=y[80:], feature_shape=(10,), class_names=["a", "b"], source="test")


def _random_images(n_classes: int, n: int = 24):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n, 28, 28, 1)).astype(np.float32)
    y = np.arange(n) % n_classes
    third = n // 3
    return Dataset(name="mnist", x_train=x[:third], y_train=y[:third], x_val=x[third:2 * third],
                   y_val=y[third:2 * third], x_test=x[2 * third:], y_test=y[2 * third:],
                   feature_shape=(28, 28, 1), class_names=[str(i) for i in range(n_classes)], source="test")


@pytest.mark.parametrize("name", ["vp_mnist_cnn", "small_resnet"])
def test_new_recipes_train_for_an_epoch(name):
    dataset = _random_images(10)
    model, info = data.train_blackbox(dataset, recipe_name=name, epochs=1, seed=0, verbose=0)
    assert model.output_shape == (None, 10) and model.get_layer("logits").units == 10
    assert (info["recipe"], info["epochs"], info["optimizer"], info["n_train"]) == (name, 1, "Adam", 8)
    assert model.optimizer.iterations.numpy() == 1  # 8 samples, one batch of the recipe's batch size
    probs = model.predict(dataset.x_test, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_train_blackbox_records_its_accuracy():
    model, info = data.train_blackbox(_tiny_dataset(), epochs=2, seed=0, verbose=0)
    assert model.output_shape == (None, 2) and info["recipe"] == "tabular_mlp"  # the default recipe of xor
    assert 0.0 <= info["test_accuracy"] <= 1.0 and info["epochs"] == 2 and info["n_train"] == 64
    manual = float(np.mean(model.predict(_tiny_dataset().x_test, verbose=0).argmax(1) == _tiny_dataset().y_test))
    assert info["test_accuracy"] == pytest.approx(manual)


def test_train_blackbox_is_seeded_and_leaves_the_global_random_state_alone():
    random.seed(11)
    np.random.seed(11)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    a, _ = data.train_blackbox(_tiny_dataset(), epochs=1, seed=3, verbose=0)
    assert random.getstate() == python_state
    assert all(np.array_equal(u, v) for u, v in zip(np.random.get_state(), numpy_state))
    b, _ = data.train_blackbox(_tiny_dataset(), epochs=1, seed=3, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # The weights are those of keras.utils.set_random_seed(seed) before building and training.
    keras.utils.set_random_seed(3)
    spec = recipe("tabular_mlp")
    reference = spec.builder(input_shape=(10,), n_classes=2)
    reference.compile(optimizer=spec.optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    tiny = _tiny_dataset()
    reference.fit(tiny.x_train, tiny.y_train, batch_size=spec.batch_size, epochs=1,
                  validation_data=(tiny.x_val, tiny.y_val), verbose=0)
    for wa, wr in zip(a.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(wa, wr)


def test_train_blackbox_errors():
    with pytest.raises(TypeError, match="dataset: expected a data.Dataset"):
        data.train_blackbox("xor")
    with pytest.raises(ValueError, match="recipe: unknown value 'mlp'"):
        data.train_blackbox(_tiny_dataset(), recipe_name="mlp")
    with pytest.raises(TypeError, match="epochs: expected an integer >= 1, got float 1.5"):
        data.train_blackbox(_tiny_dataset(), epochs=1.5)


def test_blackbox_is_cached_and_reloaded(tmp_path, monkeypatch):
    calls = []
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor-tabular_mlp-seed0-e1.json",
                                                          "xor-tabular_mlp-seed0-e1.keras"]
    record = json.loads((tmp_path / "xor-tabular_mlp-seed0-e1.json").read_text())
    assert record == second.blackbox_info
    assert (record["dataset"], record["recipe"], record["classes"], record["paper_accuracy"]) == (
        "xor", "tabular_mlp", None, None)


def test_cache_key_holds_dataset_classes_recipe_seed_and_epochs(tmp_path):
    assert cache_paths("fashion_mnist", (2, 6), "mnist_cnn", 0, None, tmp_path) == (
        tmp_path / "fashion_mnist-2-6-mnist_cnn-seed0.keras", tmp_path / "fashion_mnist-2-6-mnist_cnn-seed0.json")
    assert cache_paths("mnist", None, "vp_mnist_cnn", 3, 2, tmp_path)[0].name == "mnist-vp_mnist_cnn-seed3-e2.keras"
    with pytest.raises(ValueError, match="recipe: unknown value"):
        cache_paths("mnist", None, "vp", 0, None, tmp_path)


def test_two_recipes_for_one_dataset_cache_to_two_files_and_none_means_all_classes(tmp_path):
    """Fake Fashion-MNIST in the IDX format (60 train images, labels 0..9): classes=None trains a
    10-class model, and each recipe has its own cache entry."""
    folder = tmp_path / "fashion"
    write_idx_folder(folder)
    common = dict(data_dir=folder, models_dir=tmp_path / "models", epochs=1, verbose=0)
    meed = data.blackbox("fashion_mnist", **common)
    vp = data.blackbox("fashion_mnist", recipe="vp_mnist_cnn", **common)
    assert sorted(p.name for p in (tmp_path / "models").glob("*.keras")) == [
        "fashion_mnist-mnist_cnn-seed0-e1.keras", "fashion_mnist-vp_mnist_cnn-seed0-e1.keras"]
    assert meed.count_params() == mnist_cnn(n_classes=10).count_params()
    assert vp.count_params() == vp_mnist_cnn(n_classes=10).count_params()
    for model, name in ((meed, "mnist_cnn"), (vp, "vp_mnist_cnn")):
        info = model.blackbox_info
        assert model.output_shape == (None, 10) and info["recipe"] == name and info["classes"] is None
        assert info["n_train"] == 60 and len(info["class_names"]) == 10
    pair = data.blackbox("fashion_mnist", classes=(2, 6), **common)
    assert pair.output_shape == (None, 2) and pair.blackbox_info["class_names"] == ["Pullover", "Shirt"]
    assert (tmp_path / "models" / "fashion_mnist-2-6-mnist_cnn-seed0-e1.json").is_file()


def test_blackbox_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m data.blackbox --dataset xor --recipe tabular_mlp"):
        data.blackbox("xor", models_dir=tmp_path, train_if_missing=False)
    with pytest.raises(ValueError, match=r"name: unknown value 'fashion' \(did you mean 'fashion_mnist'"):
        data.blackbox("fashion", models_dir=tmp_path)
    with pytest.raises(ValueError, match="recipe: unknown value 'resnet'.*small_resnet"):
        data.blackbox("xor", recipe="resnet", models_dir=tmp_path)
    with pytest.raises(ValueError, match="'cifar10' has no default recipe"):
        data.blackbox("cifar10", models_dir=tmp_path)
    with pytest.raises(TypeError, match="epochs: expected an integer >= 1, got float 1.5"):
        data.blackbox("xor", epochs=1.5, models_dir=tmp_path)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1, got 0"):
        data.blackbox("xor", epochs=0, models_dir=tmp_path)
    with pytest.raises(TypeError, match="models_dir: expected a folder path"):
        data.blackbox("xor", models_dir=3)
    with pytest.raises(ValueError, match="seed: expected an integer >= 0"):
        data.blackbox("xor", seed=-1, models_dir=tmp_path)
    with pytest.raises(TypeError, match="classes"):
        data.blackbox("xor", classes="01", models_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing trained or written


# ----------------------------------------------------------------------------------------- the CLI

@pytest.fixture
def root_logging():
    """The root logger's handlers and level as they were: the CLI configures logging for its process
    (eval.run.configure_logging), here with a handler on the test's captured stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "xor", "--epochs", "1.5"], "--epochs: expected an integer >= 1, got '1.5'"),
    (["--dataset", "fashion"], "--dataset: unknown value 'fashion' (did you mean 'fashion_mnist'?)"),
    (["--dataset", "xor", "--recipe", "mlp"], "--recipe: unknown value 'mlp'"),
    (["--dataset", "cifar10"], "'cifar10' has no default recipe"),
    (["--dataset", "xor", "--classes", "1", "1"], "classes: expected distinct label ids"),
    (["--recipe", "lstm"], "the following arguments are required: --dataset"),
])
def test_cli_bad_values_are_one_line_and_exit_code_2(argv, message, capsys, root_logging):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m data.blackbox: error: ") and message in err


def test_cli_trains_and_writes_a_valid_report(tmp_path, capsys, root_logging):
    argv = ["--dataset", "xor", "--epochs", "1", "--models-dir", str(tmp_path / "models"),
            "--out", str(tmp_path / "run"), "--verbose", "0"]
    assert main(argv) == 0
    report = validate_report(json.loads((tmp_path / "run" / "report.json").read_text()))
    record = json.loads((tmp_path / "models" / "xor-tabular_mlp-seed0-e1.json").read_text())
    assert report["kind"] == "data.blackbox" and report["details"]["blackbox"] == record
    assert report["rows"] == [{"label": "tabular_mlp", "seed": 0, "test accuracy": record["test_accuracy"],
                               "whole test split accuracy": record["full_test_accuracy"]}]
    assert report["columns"]["test accuracy"]["format"] == "percent"
    assert report["config"]["recipe"] == "tabular_mlp"  # the resolved default
    assert (tmp_path / "run" / "report.md").is_file()
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"xor black box, recipe tabular_mlp: test accuracy {100 * record['full_test_accuracy']:.2f}% on "
                   f"the whole test split ({100 * record['test_accuracy']:.2f}% on the held-out half)"]


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not FASHION.exists(), reason="needs the Debian package dataset-fashion-mnist")
def test_cli_trains_the_fashion_mnist_black_box_to_the_papers_accuracy(tmp_path):
    """The README's main job: MEED's recipe on Pullover vs Shirt reaches ~92% (paper: 92.20%)."""
    result = subprocess.run([sys.executable, "-m", "data.blackbox", "--dataset", "fashion_mnist", "--classes", "2",
                             "6", "--models-dir", str(tmp_path), "--out", str(tmp_path / "run")], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "paper: 92.20%" in result.stdout
    record = json.loads((tmp_path / "fashion_mnist-2-6-mnist_cnn-seed0.json").read_text())
    assert record["classes"] == [2, 6] and record["n_train"] == 12000 and record["recipe"] == "mnist_cnn"
    assert record["full_test_accuracy"] >= 0.90
    row = json.loads((tmp_path / "run" / "report.json").read_text())["rows"][0]
    assert row["paper accuracy"] == 0.9220 and row["whole test split accuracy"] == record["full_test_accuracy"]
