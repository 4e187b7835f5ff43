"""The masking paper's mask optimiser: known answers (TV, composites, the loss by hand, upsampling, a mask that
finds the region a model reads), seeding and batching, the contract calls, and clear errors."""
import json

import numpy as np
import pytest
import tensorflow as tf

from eval import registry
from kernels.image import total_variation
from masking.optimiser import PRESETS, MaskOptimisation
from tests import tiny


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def cnn():
    """The registry-wide tiny CNN (8, 8, 3) -> 3 classes, a pool of 6 images and 3 images to explain."""
    return tiny.image_cnn(), tiny.images(6, (8, 8, 3), seed=5), tiny.images(3, (8, 8, 3), seed=1)


def build(model, pool, **options):
    options = {"steps": 12, "distractors": 3, "verbose": 0, **options}
    return MaskOptimisation(model, **options).fit(pool)


# ------------------------------------------------------------------------------------------ known answers

def test_total_variation_of_a_constant_is_zero_and_of_a_step_its_hand_value():
    np.testing.assert_allclose(total_variation(np.full((2, 5, 5), 0.3, np.float32)).numpy(), [0.0, 0.0])
    step = np.zeros((1, 4, 4), np.float32)
    step[0, :, :2] = 1.0  # a vertical edge between columns 1 and 2: (1 - 0)^2 for rows 0..2 (the last row is left out)
    assert total_variation(step).numpy()[0] == pytest.approx(3.0)
    ramp = np.tile(np.arange(4, dtype=np.float32) * 0.5, (4, 1))[None]  # steps of 0.5 along each row
    assert total_variation(ramp).numpy()[0] == pytest.approx(3 * 3 * 0.25)  # 3 rows x 3 pairs x 0.5^2


def test_the_composite_is_the_image_where_m_is_1_and_the_distractor_where_m_is_0(cnn):
    model, pool, x = cnn
    explainer = build(model, pool)
    distractors = tf.constant(pool[:4])
    ones = explainer.composites(tf.ones((3, 8, 8)), tf.constant(x), distractors).numpy()
    zeros = explainer.composites(tf.zeros((3, 8, 8)), tf.constant(x), distractors).numpy()
    assert ones.shape == zeros.shape == (3, 4, 8, 8, 3)
    np.testing.assert_array_equal(ones, np.broadcast_to(x[:, None], ones.shape))
    np.testing.assert_array_equal(zeros, np.broadcast_to(pool[None, :4], zeros.shape))
    half = explainer.composites(tf.fill((3, 8, 8), 0.25), tf.constant(x), distractors).numpy()
    np.testing.assert_allclose(half, 0.25 * x[:, None] + 0.75 * pool[None, :4], rtol=1e-6)


def test_the_upsampled_mask_is_bilinear_with_half_pixel_centres(cnn):
    model, pool, _ = cnn
    explainer = build(model, pool, scale=4)
    assert explainer.mask_shape == (2, 2)
    logit = np.log(np.array([0.2, 0.6]) / (1 - np.array([0.2, 0.6])))  # sigmoid -> 0.2, 0.6 along columns
    weights = np.broadcast_to(logit, (1, 2, 2)).astype(np.float32)
    mask = explainer.masks(tf.constant(weights)).numpy()[0]
    # PyTorch's Upsample(scale_factor=4, align_corners=False): source = (i + 0.5) / 4 - 0.5, clamped at the ends.
    source = np.clip((np.arange(8) + 0.5) / 4 - 0.5, 0, 1)
    np.testing.assert_allclose(mask, np.broadcast_to(0.2 + 0.4 * source, (8, 8)), rtol=1e-5)


@pytest.mark.parametrize("loss, subset, output", [("paper", None, "probability"), ("paper", None, "logit"),
                                                  ("double_softmax", None, "probability"),
                                                  ("paper", [0, 2], "probability"),
                                                  ("double_softmax", [2, 0], "logit")])
def test_the_loss_equals_a_hand_computation(loss, subset, output):
    model = tiny.linear_softmax((4, 4, 1), n_classes=3, seed=2, bias=True)
    kernel, bias = tiny.kernel_of(model)
    rng = np.random.default_rng(0)
    x, distractors = rng.uniform(size=(2, 4, 4, 1)), rng.uniform(size=(3, 4, 4, 1))
    weights = rng.normal(size=(2, 4, 4))
    targets = np.array([0, 2])
    explainer = MaskOptimisation(model, scale=1, l1=0.003, tv=0.2, loss=loss, class_subset=subset, output=output,
                                 verbose=0).fit(distractors)
    got = explainer.objective(tf.constant(weights, tf.float32), tf.constant(x, tf.float32), tf.constant(targets),
                              tf.constant(distractors, tf.float32)).numpy()

    masks = 1 / (1 + np.exp(-weights))
    composite = masks[:, None, :, :, None] * x[:, None] + (1 - masks[:, None, :, :, None]) * distractors[None]
    logits = composite.reshape(2, 3, 16) @ kernel.reshape(16, 3) + bias
    columns = [0, 1, 2] if subset is None else subset
    probabilities = softmax(logits[..., columns])  # (pair, distractor, class): a softmax over the listed labels
    target_column = np.array([columns.index(t) for t in targets])
    if loss == "paper":
        data = -np.log(probabilities[np.arange(2), :, target_column]).mean(axis=1)
    else:
        data = -np.log(softmax(probabilities.mean(axis=1))[np.arange(2), target_column])
    core = masks[:, :-1, :-1]
    tv = ((core - masks[:, 1:, :-1]) ** 2 + (core - masks[:, :-1, 1:]) ** 2).sum(axis=(1, 2))
    expected = data + 0.2 * tv + 0.003 * masks.sum(axis=(1, 2))
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_the_mask_concentrates_on_the_region_the_model_reads():
    # Class 1's logit minus class 0's is (sum of the 4x4 corner) - 8: the image's corner (1) makes it
    # confident, the distractors' corners (< 0.5) do not; nothing else matters to the model.
    model = tiny.corner_model(16, 4, [-0.5, 0.5], [0.0, -8.0])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.5, (2, 16, 16, 1)).astype(np.float32)
    x[:, :4, :4] = 1.0
    pool = rng.uniform(0, 0.5, (20, 16, 16, 1)).astype(np.float32)
    explainer = MaskOptimisation(model, steps=200, distractors=4, l1=1e-2, tv=0.0, verbose=0).fit(pool)
    masks = explainer.explain(x, [1, 1])
    inside = masks[:, :4, :4].mean(axis=(1, 2))
    outside = (masks.sum(axis=(1, 2)) - masks[:, :4, :4].sum(axis=(1, 2))) / (256 - 16)
    assert np.all(inside > 0.5) and np.all(outside < 0.05), (inside, outside)
    # The top-16 pixels of the mask are the corner.
    top = explainer.select(x, 16, targets=[1, 1])
    assert top[:, :4, :4].sum() == 2 * 16


# ------------------------------------------------------------------------------------- seeds and batching

def test_batched_equals_one_image_at_a_time_and_explain_labels_equals_explain(cnn):
    model, pool, x = cnn
    explainer = build(model, pool)
    targets = np.array([0, 2, 1])
    together = explainer.explain(x, targets)
    alone = np.concatenate([explainer.explain(x[i:i + 1], targets[i:i + 1], batch_size=1) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    labels = np.array([[0, 1], [2, 0], [1, 2]])
    both = explainer.explain_labels(x, labels=labels, batch_size=4)
    assert both.shape == (3, 2, 8, 8)
    for rank in range(2):
        np.testing.assert_allclose(both[:, rank], explainer.explain(x, labels[:, rank]), rtol=1e-5, atol=1e-6)
    top2 = explainer.explain_labels(x, "top2")
    order = np.argsort(-model.predict(x, verbose=0), axis=1, kind="stable")[:, :2]
    np.testing.assert_allclose(top2, explainer.explain_labels(x, order), rtol=1e-5, atol=1e-6)
    assert explainer.explain_labels(x, [0, 1, 2]).shape == explainer.explain_labels(x, "all").shape == (3, 3, 8, 8)


def test_same_seed_same_masks_other_seed_other_masks(cnn):
    model, pool, x = cnn
    first = build(model, pool, seed=3).explain(x, [0, 1, 2])
    np.testing.assert_array_equal(first, build(model, pool, seed=3).explain(x, [0, 1, 2]))
    assert not np.allclose(first, build(model, pool, seed=4).explain(x, [0, 1, 2]))
    # A pool larger than pool_size is subsampled with the seed: same seed, same pool.
    big = tiny.images(12, (8, 8, 3), seed=9)
    np.testing.assert_array_equal(build(model, big, pool_size=5).pool, build(model, big, pool_size=5).pool)
    assert build(model, big, pool_size=5).pool.shape == (5, 8, 8, 3)


# ------------------------------------------------------------------------------------------ the contract

def test_registry_contract_fit_explain_select_config_export(cnn, tmp_path):
    model, _, x = cnn
    method = registry.spec("masking")
    assert method.requires_fit and registry.spec("mask_optimisation") is method
    explainer = method.build(model, steps=3, verbose=0)
    # The contract test's call: fit(x, labels, epochs=1, batch_size=2, verbose=0) on 4 images.
    assert explainer.fit(tiny.images(4, (8, 8, 3), seed=5), np.arange(4) % 3, epochs=1, batch_size=2,
                         verbose=0) is explainer
    targets = np.array([0, 2, 1])
    reference = explainer.explain(x, targets)
    assert reference.shape == (3, 8, 8) and reference.dtype == np.float32
    assert np.all((reference > 0) & (reference < 1))
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(2)
    for inputs in (x, tf.constant(x), dataset):
        for batch_size in (None, 1, 32):
            for t in (targets, np.eye(3, dtype=np.float32)[targets]):
                np.testing.assert_allclose(explainer.explain(inputs, t, batch_size=batch_size), reference,
                                           rtol=1e-5, atol=1e-6)
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(explainer.explain(x), explainer.explain(x, predicted), rtol=1e-5, atol=1e-6)
    masks = explainer.select(x, 5)
    np.testing.assert_array_equal(masks.reshape(3, -1).sum(axis=1), [5, 5, 5])
    config = explainer.get_config()
    assert config["method"] == "masking" and config["steps"] == 3 and config["scale"] == 1
    json.dumps(config)
    served = tf.saved_model.load(explainer.export(tmp_path / "masking", k=4)).signatures["serving_default"](
        x=tf.constant(x))
    np.testing.assert_allclose(served["scores"].numpy(), explainer.explain(x, predicted), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(served["mask"].numpy().reshape(3, -1).sum(axis=1), [4, 4, 4])


def test_presets_and_class_subset(cnn):
    model, pool, x = cnn
    assert (build(model, pool).scale, build(model, pool).l1) == (1, PRESETS["cifar"]["l1"])  # auto: small images
    imagenet = build(model, pool, preset="imagenet")
    assert (imagenet.scale, imagenet.l1, imagenet.tv, imagenet.mask_shape) == (4, 2e-5, 0.01, (2, 2))
    assert build(model, pool, preset="imagenet", tv=0.0, scale=2).get_config()["tv"] == 0.0
    subset = build(model, pool, class_subset=[1, 2])
    probabilities = model.predict(x, verbose=0)
    best = np.array([1, 2])[probabilities[:, [1, 2]].argmax(axis=1)]
    np.testing.assert_allclose(subset.explain(x), subset.explain(x, best), rtol=1e-5, atol=1e-6)
    assert subset.explain_labels(x, "all").shape == (3, 2, 8, 8)


# ------------------------------------------------------------------------------------------------ errors

def test_bad_inputs_are_clear_errors_naming_the_argument(cnn, text_model):
    model, pool, x = cnn
    with pytest.raises(ValueError, match="scale: expected a factor that divides the image size 8x8, got 3"):
        MaskOptimisation(model, scale=3)
    with pytest.raises(ValueError, match="l1: expected a finite number >= 0"):
        MaskOptimisation(model, l1=-1e-3)
    with pytest.raises(ValueError, match="tv: expected a finite number >= 0"):
        MaskOptimisation(model, tv=-0.1)
    with pytest.raises(ValueError, match="preset: unknown value 'cifar10'"):
        MaskOptimisation(model, preset="cifar10")
    with pytest.raises(ValueError, match="loss: unknown value"):
        MaskOptimisation(model, loss="xent")
    with pytest.raises(ValueError, match="class_subset: expected class ids in"):
        MaskOptimisation(model, class_subset=[0, 7])
    with pytest.raises(ValueError, match="model: mask optimisation needs an image model"):
        MaskOptimisation(text_model[0])
    explainer = MaskOptimisation(model, steps=2, verbose=0)
    with pytest.raises(RuntimeError, match="explain: no distractor pool yet; call fit"):
        explainer.explain(x)
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \(N, 8, 8, 3\)"):
        explainer.fit(np.zeros((5, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="x: expected at least 2 images for the distractor pool, got 1"):
        explainer.fit(pool[:1])
    explainer.fit(pool)
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        explainer.explain(x, [0, 1, 3])
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 2\]"):
        explainer.explain_labels(x, [0, 5])
    with pytest.raises(ValueError, match="labels: unknown value 'top3'"):
        explainer.explain_labels(x, "top3")
    with pytest.raises(ValueError, match="targets: expected labels of class_subset"):
        MaskOptimisation(model, class_subset=[0, 1], verbose=0).fit(pool).explain(x, [0, 2, 1])
