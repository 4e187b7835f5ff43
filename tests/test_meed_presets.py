"""Every preset's networks build, train a step and explain (small inputs, random weights)."""
import numpy as np
import pytest

from data.models import imdb_cnn, lstm_classifier, mobilenet_classifier
from meed import build
from meed.presets import PRESETS, get
from tests.helpers import changed, snapshot


def _train_and_explain(preset, blackbox, x):
    model = build(preset, blackbox, seed=0)
    before = snapshot(model.explainer.trainable_weights)
    history = model.fit(x, batch_size=len(x) // 2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss_explainer"][-1])
    assert any(changed(before, model.explainer.trainable_weights))
    return model


def test_imagenet_setting_unet_on_a_patch_grid_with_mobilenet():
    """U-Net logits on a grid of 4x4 patches, k = 10% of the patches, MobileNet black box/approximators.
    Random weights on 32x32 inputs (offline); real runs pass ImageNet weights."""
    preset = get("imagenet", batch_size=4)
    blackbox = mobilenet_classifier((32, 32, 3), 2, weights=None)
    x = np.random.default_rng(0).uniform(-1, 1, size=(8, 32, 32, 3)).astype(np.float32)
    model = _train_and_explain(preset, blackbox, x)
    assert model.explainer.output_shape == (None, 8, 8) and model.k == 6  # floor(10% of 64)
    assert model.le_weight == 1e-3 and model.adversarial == "swd" and model.n_projections == 256
    scores, masks = model.explain(x), model.select(x)
    assert scores.shape == masks.shape == (8, 32, 32)
    assert np.all(masks.sum(axis=(1, 2)) == 6 * 16)  # 6 patches of 4x4 pixels
    np.testing.assert_array_equal(masks[:, ::4, ::4].repeat(4, 1).repeat(4, 2), masks)  # constant per patch
    assert not model.approximator_s.get_layer("mobilenet_classifier").get_layer(index=1).trainable


def test_imdb_setting_text_explainer_and_embedding_masking():
    preset = get("imdb")
    blackbox = imdb_cnn()
    x = np.random.default_rng(0).integers(0, 5000, size=(8, 400)).astype(np.int32)
    model = _train_and_explain(preset, blackbox, x)
    assert model.k == 10 and model.modality == "text" and model.use_prior  # the paper's intent: GI prior
    masks = model.select(x)
    assert masks.shape == (8, 400) and np.all(masks.sum(axis=1) == 10)
    assert build(preset, blackbox, legacy=True).use_prior is False  # the released IMDB script


def test_timeseries_setting_lstm_explainer():
    preset = get("timeseries", batch_size=4)
    blackbox = lstm_classifier((3, 20), 2, units=8)
    x = np.random.default_rng(0).normal(size=(8, 3, 20)).astype(np.float32)
    model = _train_and_explain(preset, blackbox, x)
    assert model.k == 6  # 10% of 3 x 20
    masks = model.select(x)
    assert masks.shape == (8, 3, 20) and np.all(masks.sum(axis=(1, 2)) == 6)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_the_papers_settings(name):
    preset = PRESETS[name]
    assert preset.tau == 0.5
    optimizer = preset.make_optimizer()
    if preset.optimizer == "adadelta":
        assert float(optimizer.learning_rate) == pytest.approx(1.0)
    expected = {"fashion_mnist": (64, "ce", 1e-3, 128, 12), "fashion_mnist_swd": (64, "swd", 1.0, 128, 12),
                "mnist": (25, "ce", 1e-3, 128, 12), "imdb": (10, "ce", 1.0, 32, 20),
                "imagenet": (0.1, "swd", 1.0, 32, 50)}
    if name in expected:
        assert (preset.k, preset.adversarial, preset.lu_weight, preset.batch_size, preset.epochs) == expected[name]
