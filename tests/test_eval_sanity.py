"""Sanity checks (eval.sanity): mask cosine, chance level, model and data randomisation (MEED Section 4.1.3)."""
import math

import keras
import numpy as np
import pytest
from keras import layers

from eval import (
    data_randomization,
    expected_random_cosine,
    mask_cosine_similarity,
    model_randomization,
    sanity_report,
)
from tests import tiny


def random_k_hot(rng, n, d, k):
    """n independent uniform k-subsets of d features as (n, d) uint8 masks."""
    masks = np.zeros((n, d), np.uint8)
    np.put_along_axis(masks, rng.random((n, d)).argsort(axis=1)[:, :k], 1, axis=1)
    return masks


# --- mask_cosine_similarity -------------------------------------------------------------------------

def test_identical_masks_have_cosine_one():
    masks = random_k_hot(np.random.default_rng(0), 6, 16, 3).reshape(6, 4, 4)  # image-like (N, H, W)
    np.testing.assert_allclose(mask_cosine_similarity(masks, masks.astype(bool)), np.ones(6))


def test_disjoint_masks_have_cosine_zero_and_partial_overlap_is_exact():
    a = np.array([[1, 1, 0, 0], [1, 1, 0, 0]])
    b = np.array([[0, 0, 1, 1], [1, 0, 1, 1]], dtype=np.float32)
    cos = mask_cosine_similarity(a, b)
    assert cos.dtype == np.float64 and cos.shape == (2,)
    assert cos[0] == 0.0
    assert cos[1] == pytest.approx(1 / math.sqrt(2 * 3))  # overlap 1, |A| = 2, |B| = 3


def test_random_k_subsets_are_at_chance_level():
    n, d, k = 20000, 50, 5
    rng = np.random.default_rng(1)
    cos = mask_cosine_similarity(random_k_hot(rng, n, d, k), random_k_hot(rng, n, d, k))
    chance = expected_random_cosine(k, d)
    assert chance == 0.1
    sigma = (d - k) / (d * math.sqrt(d - 1))  # hypergeometric std of one cosine
    assert abs(cos.mean() - chance) < 3 * sigma / math.sqrt(n)
    assert cos.std() == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize("a, b, error, match", [
    (np.ones((3, 4)), np.ones((3, 5)), ValueError, r"masks_b: expected the shape of masks_a \(3, 4\), got \(3, 5\)"),
    (np.full((2, 3), 0.5), np.ones((2, 3)), ValueError, r"masks_a: expected a binary mask .* \[0\.5\]"),
    (np.ones((2, 3)), np.array([[1, 2, 0], [1, 1, 1]]), ValueError, r"masks_b: expected a binary mask .* \[2\]"),
    (np.array([[1.0, np.nan]]), np.ones((1, 2)), ValueError, r"masks_a: expected a binary mask .* \[nan\]"),
    (np.ones(4), np.ones(4), ValueError, r"masks_a: expected a batch of masks .* got shape \(4,\)"),
    (np.ones((0, 4)), np.ones((0, 4)), ValueError, r"N >= 1"),
    (None, np.ones((2, 2)), TypeError, r"masks_a: expected .* got None"),
    (np.array([["a", "b"]]), np.ones((1, 2)), TypeError, r"masks_a: .* dtype <U1"),
    (np.array([[1, 0], [0, 0]]), np.ones((2, 2)), ValueError, r"masks_a: .* 1 empty masks, e.g. samples \[1\]"),
])
def test_mask_cosine_similarity_rejects_bad_masks(a, b, error, match):
    with pytest.raises(error, match=match):
        mask_cosine_similarity(a, b)


def test_expected_random_cosine_checks_its_arguments():
    assert expected_random_cosine(10, 400) == 0.025  # MEED's IMDB setting
    with pytest.raises(ValueError, match=r"k: expected 1 <= k <= 400"):
        expected_random_cosine(401, 400)
    with pytest.raises(ValueError, match=r"d: expected an integer >= 1, got 0"):
        expected_random_cosine(1, 0)
    with pytest.raises(TypeError, match=r"k: expected an integer"):
        expected_random_cosine(2.5, 10)


# --- sanity_report ----------------------------------------------------------------------------------

def test_sanity_report_passes_at_chance_and_fails_for_unchanged_masks():
    n, d, k = 2000, 40, 4
    rng = np.random.default_rng(2)
    original = random_k_hot(rng, n, d, k)
    report = sanity_report(original, random_k_hot(rng, n, d, k), k)
    se = (d - k) / (d * math.sqrt(d - 1)) / math.sqrt(n)
    assert report["chance"] == 0.1 and report["n_samples"] == n and report["d"] == d and report["k"] == k
    assert report["chance_std_error"] == pytest.approx(se)
    assert report["threshold"] == pytest.approx(0.1 + 3 * se)
    assert report["z_score"] == pytest.approx((report["cosine_mean"] - 0.1) / se)
    assert abs(report["z_score"]) < 3 and report["passes"] is True

    same = sanity_report(original, original, k)
    assert same["cosine_mean"] == 1.0 and same["cosine_std"] == 0.0 and same["passes"] is False


def test_sanity_report_checks_k_and_mask_sizes():
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 0]])
    assert sanity_report(masks[:1], masks[:1], 2)["cosine_std"] == 0.0  # one sample
    with pytest.raises(ValueError, match=r"masks_randomized: expected exactly k=2 .* between 1 and 3"):
        sanity_report(masks, np.array([[1, 0, 0, 0], [1, 1, 1, 0]]), 2)
    with pytest.raises(ValueError, match=r"k: expected k < d = 4"):
        sanity_report(np.ones((2, 4)), np.ones((2, 4)), 4)
    with pytest.raises(ValueError, match=r"z: expected a finite number > 0"):
        sanity_report(masks, masks, 2, z=0)


# --- model_randomization ----------------------------------------------------------------------------

def test_model_randomization_redraws_every_weight_and_keeps_the_original():
    model = tiny.trained_like_cnn()
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(4).random((5, 6, 6, 1)).astype(np.float32)
    predictions = model.predict(x, verbose=0)

    randomized = model_randomization(model, seed=0)
    assert randomized is not model and isinstance(randomized, keras.Model)
    assert [w.path for w in randomized.trainable_weights] == [w.path for w in model.trainable_weights]
    for old, new in zip(model.weights, randomized.weights):
        assert tuple(new.shape) == tuple(old.shape)
        assert not np.allclose(np.asarray(new), np.asarray(old)), old.path
    for old, kept in zip(model.get_weights(), before):
        np.testing.assert_array_equal(old, kept)
    np.testing.assert_array_equal(model.predict(x, verbose=0), predictions)

    # each weight comes from its own layer's initializer
    np.testing.assert_array_equal(randomized.get_layer("dense").bias.numpy(), np.zeros(2))
    np.testing.assert_array_equal(randomized.get_layer("bn").gamma.numpy(), np.ones(3))
    np.testing.assert_array_equal(randomized.get_layer("bn").moving_variance.numpy(), np.ones(3))
    kernel = randomized.get_layer("dense").kernel.numpy()
    limit = math.sqrt(6 / sum(kernel.shape))  # Glorot uniform
    assert np.abs(kernel).max() <= limit and kernel.std() > limit / 4


def test_model_randomization_is_seeded():
    model = tiny.trained_like_cnn()
    first = model_randomization(model, seed=7).get_weights()
    np.random.default_rng().random(3)
    keras.random.uniform((2,))
    again = model_randomization(model, seed=7).get_weights()
    other = model_randomization(model, seed=8).get_weights()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])  # the conv kernel


def test_model_randomization_rejects_bad_inputs():
    with pytest.raises(TypeError, match=r"blackbox: expected a keras.Model, got function"):
        model_randomization(lambda x: x)
    with pytest.raises(TypeError, match=r"seed: expected an integer >= 0"):
        model_randomization(tiny.trained_like_cnn(), seed=1.5)
    with pytest.raises(ValueError, match=r"blackbox: expected a built model"):
        model_randomization(keras.Sequential([layers.Dense(2)]))


# --- data_randomization -----------------------------------------------------------------------------

def test_data_randomization_is_a_seeded_permutation():
    y = np.repeat(np.arange(4), 25)
    shuffled = data_randomization(y, seed=0)
    np.testing.assert_array_equal(np.sort(shuffled), y)
    assert not np.array_equal(shuffled, y)
    np.testing.assert_array_equal(shuffled, data_randomization(y, seed=0))
    assert not np.array_equal(shuffled, data_randomization(y, seed=1))
    np.testing.assert_array_equal(y, np.repeat(np.arange(4), 25))  # the input is not modified

    one_hot = np.eye(4, dtype=np.float32)[y]
    np.testing.assert_array_equal(data_randomization(one_hot, seed=0), np.eye(4, dtype=np.float32)[shuffled])


@pytest.mark.parametrize("y, seed, error, match", [
    (None, 0, TypeError, r"y: expected labels .* got None"),
    (np.array(["a", "b"]), 0, TypeError, r"y: expected numeric labels"),
    (np.zeros((2, 2, 2)), 0, ValueError, r"y: expected labels \(N,\) or one-hot rows \(N, C\) .* \(2, 2, 2\)"),
    (np.zeros(0), 0, ValueError, r"N >= 1"),
    (np.zeros(3), -1, ValueError, r"seed: expected an integer >= 0, got -1"),
])
def test_data_randomization_rejects_bad_inputs(y, seed, error, match):
    with pytest.raises(error, match=match):
        data_randomization(y, seed)
