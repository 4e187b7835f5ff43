"""Tests of kernels.topk: hard top-k masks and the Gumbel-softmax top-k relaxation."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import gumbel_topk, stateless_seed, topk_mask


def test_topk_mask_picks_the_k_largest_per_sample():
    scores = np.array([[0.1, 0.9, 0.3, 0.7, 0.5], [5.0, -1.0, 2.0, 3.0, 4.0]], np.float32)
    mask = topk_mask(scores, 2).numpy()
    np.testing.assert_array_equal(mask, [[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]])
    assert mask.dtype == np.float32


def test_topk_mask_keeps_the_shape_and_sums_to_k_over_all_feature_axes():
    scores = np.random.default_rng(0).normal(size=(3, 4, 5, 2))
    mask = topk_mask(scores, 7).numpy()
    assert mask.shape == scores.shape
    np.testing.assert_array_equal(mask.reshape(3, -1).sum(axis=1), [7, 7, 7])
    flat, flat_mask = scores.reshape(3, -1), mask.reshape(3, -1)
    for row, row_mask in zip(flat, flat_mask):
        assert set(np.flatnonzero(row_mask)) == set(np.argsort(-row)[:7])


def test_topk_mask_breaks_ties_by_lower_flat_index():
    scores = np.array([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 2.0]]], np.float32)
    mask = topk_mask(scores, 2).numpy().reshape(2, -1)
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [0, 1, 1, 0]])


def test_topk_mask_k_equal_d_selects_everything():
    np.testing.assert_array_equal(topk_mask(np.zeros((2, 3)), 3).numpy(), np.ones((2, 3)))


def _seed():
    return tf.constant([3, 14], tf.int64)


def test_gumbel_topk_values_in_unit_interval_and_shape():
    logits = np.random.default_rng(1).normal(size=(4, 6, 6)).astype(np.float32)
    out = gumbel_topk(logits, 5, 0.5, seed=7).numpy()
    assert out.shape == logits.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    # The elementwise max of k = 5 relaxed one-hot draws: each sample's mass is between 1 (the draws agree)
    # and k (they pick disjoint features).
    mass = out.reshape(4, -1).sum(axis=1)
    assert np.all(mass >= 1.0 - 1e-5) and np.all(mass <= 5.0 + 1e-5)
    # At a very low temperature every draw is one-hot: the mass is the number of distinct features picked.
    hard = gumbel_topk(logits, 5, 1e-3, seed=7).numpy().reshape(4, -1)
    np.testing.assert_allclose(hard.sum(axis=1), (hard > 0.5).sum(axis=1), atol=1e-3)


def test_gumbel_topk_tiny_tau_k1_approaches_one_hot_argmax():
    logits = np.array([[0.0, 8.0, 1.0, 2.0], [9.0, 0.0, 1.0, 0.5]], np.float32)
    out = gumbel_topk(logits, 1, 1e-3, seed=0).numpy()
    np.testing.assert_allclose(out, np.eye(4)[[1, 0]], atol=1e-4)


def test_gumbel_topk_same_seed_same_output_and_fresh_noise_without_seed():
    logits = np.random.default_rng(2).normal(size=(3, 10)).astype(np.float32)
    np.testing.assert_array_equal(gumbel_topk(logits, 3, 0.5, seed=11).numpy(),
                                  gumbel_topk(logits, 3, 0.5, seed=11).numpy())
    np.testing.assert_array_equal(gumbel_topk(logits, 3, 0.5, seed=11).numpy(),
                                  gumbel_topk(logits, 3, 0.5, seed=stateless_seed(11)).numpy())
    assert not np.array_equal(gumbel_topk(logits, 3, 0.5).numpy(), gumbel_topk(logits, 3, 0.5).numpy())


def _expected(logits, k, tau, seed, legacy):
    tiny = np.finfo(np.float32).tiny
    u = tf.random.stateless_uniform((logits.shape[0], k, logits.shape[1]), seed, minval=tiny, maxval=1.0)
    noisy = (logits[:, None, :] - np.log(-np.log(u.numpy().astype(np.float64)))) / tau
    if not legacy:
        noisy = np.exp(noisy - noisy.max(axis=-1, keepdims=True))
        noisy /= noisy.sum(axis=-1, keepdims=True)
    return noisy.max(axis=1)


@pytest.mark.parametrize("legacy", [False, True])
def test_gumbel_topk_matches_the_hand_formula(legacy):
    logits = np.random.default_rng(3).normal(size=(2, 9)).astype(np.float32)
    out = gumbel_topk(logits, 4, 0.5, seed=_seed(), legacy=legacy).numpy()
    np.testing.assert_allclose(out, _expected(logits, 4, 0.5, _seed(), legacy), rtol=1e-4, atol=1e-5)


def test_gumbel_topk_legacy_is_unbounded():
    logits = np.full((2, 5), 3.0, np.float32)
    out = gumbel_topk(logits, 2, 0.5, seed=1, legacy=True).numpy()
    assert out.max() > 1.0


def test_gumbel_topk_is_differentiable():
    logits = tf.Variable(np.random.default_rng(4).normal(size=(2, 8)).astype(np.float32))
    weights = np.arange(8, dtype=np.float32)
    with tf.GradientTape() as tape:
        out = gumbel_topk(logits, 3, 0.5, seed=2)
        loss = tf.reduce_sum(out * weights)
    grad = tape.gradient(loss, logits).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    # k = 1: the output is one softmax of (logits + Gumbel noise) / tau, whose Jacobian is known:
    # d (w . s) / d logits = s (w - w . s) / tau.
    with tf.GradientTape() as tape:
        single = gumbel_topk(logits, 1, 0.5, seed=2)
        loss = tf.reduce_sum(single * weights)
    s = single.numpy()
    expected = s * (weights - (s * weights).sum(axis=1, keepdims=True)) / 0.5
    np.testing.assert_allclose(tape.gradient(loss, logits).numpy(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k, error", [(0, ValueError), (7, ValueError), (2.5, TypeError), (True, TypeError)])
def test_topk_mask_rejects_bad_k(k, error):
    with pytest.raises(error, match="k"):
        topk_mask(np.zeros((2, 6)), k)


def test_topk_mask_rejects_nan_and_wrong_rank():
    with pytest.raises(ValueError, match="scores"):
        topk_mask(np.array([[0.0, np.nan, 1.0]]), 1)
    with pytest.raises(ValueError, match="scores"):
        topk_mask(np.array([[0.0, np.inf, 1.0]]), 1)
    with pytest.raises(ValueError, match="scores"):
        topk_mask(np.zeros(5), 1)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_gumbel_topk_rejects_non_positive_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        gumbel_topk(np.zeros((2, 4)), 1, tau)


def test_gumbel_topk_rejects_bad_k_logits_and_seed():
    with pytest.raises(ValueError, match="k"):
        gumbel_topk(np.zeros((2, 4)), 5, 0.5)
    with pytest.raises(ValueError, match="logits"):
        gumbel_topk(np.array([[np.nan, 0.0]]), 1, 0.5)
    with pytest.raises(ValueError, match="seed"):
        gumbel_topk(np.zeros((2, 4)), 1, 0.5, seed=np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="seed"):
        gumbel_topk(np.zeros((2, 4)), 1, 0.5, seed=1.5)
