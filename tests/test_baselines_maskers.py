"""Real-Time Saliency and the classifier-agnostic masker (baselines.realtime, baselines.classifier_agnostic,
baselines.maskers): the known answers of their terms (reference section 2 and 4), what they learn on a task
whose label is a small patch, batching, seeds, bad inputs and the exported SavedModel."""
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from baselines.classifier_agnostic import ClassifierAgnostic, entropy, masked_in_loss, masked_out_loss
from baselines.maskers import smoothness, spatial_stages
from baselines.realtime import (RealTimeSaliency, area_term, class_margin, destroyer_hinge, preserver_hinge,
                                saliency_objective)
from tests import tiny

#: The contract test's call (tests/test_contract.py): 4 images of tiny.image_cnn, one epoch, batches of 2.
CONTRACT_X = tiny.images(4, (8, 8, 3), seed=5)
CONTRACT_Y = np.arange(4) % 3


@pytest.fixture(scope="module")
def cnn():
    return tiny.image_cnn()


def fitted(cls, model, **hyper):
    explainer = cls(model, verbose=0, **hyper)
    explainer.fit(CONTRACT_X, CONTRACT_Y, epochs=1, batch_size=2, verbose=0)
    return explainer


@pytest.fixture(scope="module")
def rts(cnn):
    return fitted(RealTimeSaliency, cnn, base_channels=8, k=5)


@pytest.fixture(scope="module")
def ca(cnn):
    return fitted(ClassifierAgnostic, cnn, channels=8, save_freq=1, f_size=2, k=5)


@pytest.fixture(scope="module")
def patch_task(object_task):
    """The object task's model (the class is a 4x4 object at a random place) and 400 + 200 of its images."""
    x, y, boxes = object_task.test_set(600)
    return object_task.model, (x[:400], y[:400]), (x[400:], y[400:], boxes[400:])


# ------------------------------------------------------------------------------------------ known answers

def test_the_area_of_an_empty_mask_is_the_epsilon_to_the_power_not_zero():
    np.testing.assert_allclose(float(area_term(tf.zeros([2, 8, 8, 1]))), 0.0005 ** 0.3, rtol=1e-6)
    np.testing.assert_allclose(float(area_term(tf.ones([1, 4, 4]))), 1.0005 ** 0.3, rtol=1e-6)


@pytest.mark.parametrize("c, height, width", [(1.0, 224, 224), (0.5, 5, 7), (0.2, 8, 3)])
def test_the_smoothness_of_a_constant_mask_is_its_border_term(c, height, width):
    masks = tf.fill([3, height, width, 1], c)  # per-batch normalisation: the value does not depend on N
    np.testing.assert_allclose(float(smoothness(masks)), 0.3 * c ** 2 * (height + width), rtol=1e-5)
    if height == 224:
        np.testing.assert_allclose(float(smoothness(masks)), 134.4, rtol=1e-5)


def test_the_smoothness_counts_the_squared_steps_and_the_border_over_two_n():
    mask = tf.constant([[[0.0, 1.0], [0.0, 1.0]]])  # two horizontal steps of 1; border sum of m^2 = 1 + 1 + 0 + 2
    np.testing.assert_allclose(float(smoothness(mask)), (2.0 + 0.3 * 4.0) / 2.0, rtol=1e-6)


def test_the_hinges_vanish_once_the_margin_is_reached():
    def logits(margin):  # class 0 leads class 2 (the best other) by ``margin``
        return tf.constant([[margin, -3.0, 0.0]])

    labels = tf.constant([0])
    np.testing.assert_allclose(class_margin(logits(1.5), labels), [1.5])
    for margin, expected in ((1.0, 0.0), (2.0, 0.0), (0.5, 0.5), (-1.0, 2.0)):
        np.testing.assert_allclose(preserver_hinge(logits(margin), labels), [expected], atol=1e-6)
    for margin, expected in ((-5.0, 0.0), (-7.0, 0.0), (0.0, 5.0), (1.0, 6.0)):
        np.testing.assert_allclose(destroyer_hinge(logits(margin), labels), [expected], atol=1e-6)


def test_a_fake_selector_flips_both_hinges_with_margin_one():
    masks = tf.zeros([2, 4, 4, 1])
    preserved = tf.constant([[2.0, 0.0], [2.0, 0.0]])  # class 0 leads by 2 on the preserved images
    destroyed = tf.constant([[0.0, 0.5], [0.0, 0.5]])  # and trails by 0.5 on the destroyed ones
    labels = tf.constant([0, 0])
    real = saliency_objective(masks, preserved, destroyed, labels, tf.constant([False, False]))
    fake = saliency_objective(masks, preserved, destroyed, labels, tf.constant([True, True]))
    np.testing.assert_allclose([real["preserver"], real["destroyer"]], [0.0, 4.5], atol=1e-6)
    np.testing.assert_allclose([fake["preserver"], fake["destroyer"]], [3.0, 1.5], atol=1e-6)
    expected = 4.5 + 8 * 0.0005 ** 0.3 + 0.0 + 0.3 * 0.0
    np.testing.assert_allclose(float(real["loss"]), expected, rtol=1e-5)


def test_the_masked_out_entropy_of_uniform_logits_is_log_k():
    np.testing.assert_allclose(entropy(tf.zeros([2, 5])), [math.log(5)] * 2, rtol=1e-6)
    labels, m_bar = tf.constant([0]), tf.constant([0.25])
    # Correct on x, wrong on the masked-out image: -H - lambda_out (1 - m_bar).
    wrong = tf.constant([[0.0, 2.0, 0.0]])
    expected = -float(entropy(wrong)[0]) - 15.0 * 0.75
    np.testing.assert_allclose(float(masked_out_loss(wrong, [1.0], labels, m_bar)), expected, rtol=1e-5)
    # Wrong on x: both terms vanish.
    np.testing.assert_allclose(float(masked_out_loss(wrong, [0.0], labels, m_bar)), 0.0, atol=1e-7)
    # Masked in and correct: CE - lambda_in (1 - m_bar); wrong: CE alone.
    right = tf.constant([[2.0, 0.0, 0.0]])
    ce = -float(tf.nn.log_softmax(right)[0, 0])
    np.testing.assert_allclose(float(masked_in_loss(right, labels, m_bar)), ce - 0.75, rtol=1e-5)
    ce_wrong = -float(tf.nn.log_softmax(wrong)[0, 0])
    np.testing.assert_allclose(float(masked_in_loss(wrong, labels, m_bar)), ce_wrong, rtol=1e-5)


def test_the_stages_are_the_last_feature_map_of_each_resolution():
    assert [layer.name for layer in spatial_stages(tiny.image_cnn())] == ["conv", "pool"]
    assert [layer.name for layer in spatial_stages(tiny.bottleneck_cnn())] == ["conv1", "relu2"]
    assert [layer.name for layer in spatial_stages(tiny.nested_cnn())] == ["block_out", "conv_c"]


def test_ca_masks_are_in_0_1_constant_on_blocks_and_half_for_a_zero_final_conv():
    model = tiny.bottleneck_cnn()
    x = tiny.images(3, tiny.BOTTLENECK_SHAPE, seed=2)
    assert ClassifierAgnostic(model, verbose=0).upsample == 1  # the grid stays as fine as conv1's 16 x 16
    masker = ClassifierAgnostic(model, upsample=4, channels=8, verbose=0)
    assert masker.get_config()["masker_layers"] == ["conv1", "relu2"]
    masks = masker.explain(x)
    assert masks.shape == (3, 16, 16) and masks.dtype == np.float32
    assert np.all(masks > 0) and np.all(masks < 1)
    blocks = masks.reshape(3, 4, 4, 4, 4)
    np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[:, :, :1, :, :1], blocks.shape))
    assert np.ptp(blocks[:, :, 0, :, 0]) > 0  # not one constant
    np.testing.assert_array_equal(masker.coarse_masks(x), blocks[:, :, 0, :, 0])
    conv = masker.masker.get_layer("mask_conv")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    np.testing.assert_array_equal(masker.explain(x), np.full((3, 16, 16), 0.5, np.float32))


def test_ca_gives_the_same_mask_for_every_label(ca):
    x = tiny.images(3, (8, 8, 3))
    reference = ca.explain(x)
    for label in range(3):
        np.testing.assert_array_equal(ca.explain(x, label), reference)
    assert not ca.uses_targets and ca.requires_fit and ca.needs_labels


# ------------------------------------------------------------------------------------------ learning

def test_rts_learns_to_cover_the_patch_for_the_true_selector_only(patch_task):
    model, (x, y), (x_test, y_test, boxes) = patch_task
    rts = RealTimeSaliency(model, base_channels=16, verbose=0)
    rts.fit(x, y, epochs=10, selector_epochs=3, batch_size=32)
    assert rts.histories["selector"].history["exists_accuracy"][-1] > 0.7
    true, fake = rts.explain(x_test, y_test), rts.explain(x_test, 1 - y_test)
    assert true[boxes].mean() > 0.6 and true[boxes].mean() > true[~boxes].mean() + 0.3, (true[boxes].mean(),
                                                                                        true[~boxes].mean())
    # The class selector: a wrong class gets a much emptier mask.
    assert fake[boxes].mean() < 0.5 * true[boxes].mean(), (fake[boxes].mean(), true[boxes].mean())


def test_ca_learns_a_mask_brighter_on_the_patch(patch_task):
    model, (x, y), (x_test, _, boxes) = patch_task
    ca = ClassifierAgnostic(model, channels=16, save_freq=5, f_size=5, verbose=0)
    ca.fit(x, y, epochs=6, batch_size=32)
    masks = ca.explain(x_test)
    assert masks[boxes].mean() > masks[~boxes].mean() + 0.3, (masks[boxes].mean(), masks[~boxes].mean())
    np.testing.assert_allclose(ca.baseline_colour.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-5)


# ------------------------------------------------------------------------------------------ training

def test_rts_phases_train_their_own_parts(cnn):
    rts = RealTimeSaliency(cnn, base_channels=8, verbose=0)
    start = [w.numpy().copy() for w in rts.class_embedding.weights], [w.numpy().copy() for w in rts.decoder.weights]
    after_phase_one = []
    record = keras.callbacks.LambdaCallback(on_train_end=lambda logs: after_phase_one.append(
        [w.numpy().copy() for w in rts.decoder.weights]) if not after_phase_one else None)
    rts.fit(CONTRACT_X, CONTRACT_Y, epochs=1, selector_epochs=2, batch_size=2, callbacks=[record])
    assert sorted(rts.histories) == ["masker", "selector"]
    assert not np.array_equal(start[0][0], rts.class_embedding.weights[0].numpy())  # phase 1 moved the selector
    assert all(np.array_equal(a, b) for a, b in zip(start[1], after_phase_one[0]))  # but not the decoder
    embedding = rts.class_embedding.weights[0].numpy().copy()
    rts.fit(CONTRACT_X, CONTRACT_Y, epochs=1, selector_epochs=0, batch_size=2)
    np.testing.assert_array_equal(embedding, rts.class_embedding.weights[0].numpy())  # phase 2 alone: frozen
    assert not all(np.array_equal(a, b.numpy()) for a, b in zip(after_phase_one[0], rts.decoder.weights))


def test_ca_pools_snapshots_of_the_classifier_and_evaluates_them(cnn):
    ca = ClassifierAgnostic(cnn, channels=8, save_freq=1, f_size=2, verbose=0)
    states = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: states.append(
        [v.numpy().copy() for v in ca.classifier.trainable_variables]))
    ca.fit(CONTRACT_X, CONTRACT_Y, epochs=2, batch_size=2, callbacks=[record])  # 4 batches, a snapshot each
    assert int(ca.snapshots_taken.numpy()) == 4 and len(states) == 4
    assert not np.array_equal(states[0][0], states[-1][0])  # the classifier is trained
    x = tiny.images(3, (8, 8, 3))
    for slot in range(2):
        pooled = [p.numpy()[slot] for p in ca.pool]
        assert any(all(np.array_equal(a, b) for a, b in zip(pooled, state)) for state in states), slot
        copy = keras.models.clone_model(cnn)
        copy.set_weights(pooled)
        logits = np.log(copy.predict(x, verbose=0))
        np.testing.assert_allclose(ca.pool_logits(x, slot) - ca.pool_logits(x, slot).max(1, keepdims=True),
                                   logits - logits.max(1, keepdims=True), atol=1e-4)
    assert ca.get_config()["evaluate_historic"] is True


@pytest.mark.parametrize("cls, hyper", [(RealTimeSaliency, {"base_channels": 8}),
                                        (ClassifierAgnostic, {"channels": 8, "save_freq": 1, "f_size": 2})])
def test_the_same_seed_gives_the_same_masks(cls, hyper, cnn):
    x = tiny.images(3, (8, 8, 3))
    first, second = (fitted(cls, cnn, seed=3, **hyper).explain(x, [0, 1, 2]) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, fitted(cls, cnn, seed=4, **hyper).explain(x, [0, 1, 2]))


# ------------------------------------------------------------------------------------------ the contract

@pytest.mark.parametrize("which", ["rts", "ca"])
def test_batched_equals_one_by_one_and_select_is_the_top_k(which, request):
    explainer = request.getfixturevalue(which)
    x = tiny.images(5, (8, 8, 3), seed=1)
    targets = [0, 1, 2, 1, 0]
    batched = explainer.explain(x, targets, batch_size=32)
    assert batched.shape == (5, 8, 8) and batched.dtype == np.float32
    assert np.all(batched >= 0) and np.all(batched <= 1)
    one_by_one = np.concatenate([explainer.explain(x[i:i + 1], targets[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-6)
    predicted = explainer.model.predict(x, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(explainer.explain(x), explainer.explain(x, predicted), atol=1e-6)
    masks = explainer.select(x)
    np.testing.assert_array_equal(masks.reshape(5, -1).sum(axis=1), [5] * 5)
    config = explainer.get_config()
    assert config["method"] == explainer.name and json.loads(json.dumps(config)) == config


@pytest.mark.parametrize("which", ["rts", "ca"])
def test_the_export_reloads_with_the_same_scores(which, request, tmp_path):
    explainer = request.getfixturevalue(which)
    x = tiny.images(3, (8, 8, 3), seed=7)
    explainer.export(tmp_path / which, k=4)
    served = tf.saved_model.load(str(tmp_path / which)).signatures["serving_default"](x=tf.constant(x))
    assert sorted(served) == ["mask", "scores"]
    np.testing.assert_allclose(served["scores"].numpy(), explainer.explain(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(served["mask"].numpy().reshape(3, -1).sum(axis=1), [4, 4, 4])


def test_rts_mask_resolution_and_the_small_encoder(cnn):
    rts = RealTimeSaliency(cnn, base_channels=4, mask_resolution=8, verbose=0)
    assert rts.mask_shape == (8, 8) and rts.get_config()["mask_resolution"] == [8, 8]
    assert RealTimeSaliency(cnn, base_channels=4, verbose=0).mask_shape == (4, 4)  # not coarser than 'pool'
    small = RealTimeSaliency(cnn, encoder="small", encoder_channels=(4, 8), base_channels=4, verbose=0)
    small.fit(CONTRACT_X, CONTRACT_Y, epochs=1, batch_size=2, verbose=0)
    assert small.mask_shape == (4, 4) and small.coarse_masks(CONTRACT_X).shape == (4, 4, 4)
    assert small.explain(CONTRACT_X, [0, 1, 2, 0]).shape == (4, 8, 8)


def test_bad_inputs_raise_value_errors_naming_the_argument(cnn):
    def raises(name, build):
        with pytest.raises(ValueError, match=rf"^{name}:"):
            build()

    rts = RealTimeSaliency(cnn, base_channels=4, verbose=0)
    raises("y", lambda: rts.fit(CONTRACT_X, epochs=1, batch_size=2))
    raises("y", lambda: rts.fit(tf.data.Dataset.from_tensor_slices(CONTRACT_X).batch(2), epochs=1))
    raises("encoder_layers", lambda: RealTimeSaliency(cnn, encoder_layers=["conv", "nope"]))
    raises("encoder_layers", lambda: RealTimeSaliency(cnn, encoder_layers=["flatten"]))
    raises("encoder_layers", lambda: RealTimeSaliency(cnn, encoder="small", encoder_layers=["conv"]))
    raises("masker_layers", lambda: ClassifierAgnostic(cnn, masker_layers=["convv"]))
    raises("fake_prob", lambda: RealTimeSaliency(cnn, fake_prob=1.0))
    raises("selector_fake_prob", lambda: RealTimeSaliency(cnn, selector_fake_prob=-0.1))
    raises("prob_historic", lambda: ClassifierAgnostic(cnn, prob_historic=1.5))
    raises("mask_resolution", lambda: RealTimeSaliency(cnn, mask_resolution=2))
    raises("mask_resolution", lambda: RealTimeSaliency(cnn, mask_resolution=(4, 9)))
    raises("upsample", lambda: ClassifierAgnostic(cnn, upsample=3))
    raises("baseline", lambda: ClassifierAgnostic(cnn, baseline=[0.1, 0.2]))
    raises("explain_with", lambda: ClassifierAgnostic(cnn, explain_with="teacher"))
    raises("k", lambda: rts.select(CONTRACT_X))
    raises("model", lambda: RealTimeSaliency(tiny.tabular_mlp()))
    raises("model", lambda: ClassifierAgnostic(tiny.text_cnn()))
    raises("x", lambda: rts.explain(tiny.images(2, (8, 8, 1))))
    raises("targets", lambda: rts.explain(CONTRACT_X, [0, 1]))
