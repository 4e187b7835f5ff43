"""Tests of kernels.soft_topk: SOFT top-k by entropic optimal transport (Xie et al. 2020)."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import soft_topk, topk_mask


def _separated(n_samples=3, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(n_samples)]).astype(np.float32) / (n - 1)


def test_soft_topk_selects_the_k_largest_with_small_epsilon():
    scores = _separated()
    soft = soft_topk(scores, 4, epsilon=0.01, iterations=1000).numpy()
    hard = topk_mask(scores, 4).numpy()
    assert np.abs(soft - hard).max() < 0.05


def test_soft_topk_rows_sum_to_k_and_values_in_unit_interval():
    scores = np.random.default_rng(1).normal(size=(4, 5, 5)).astype(np.float32)
    out = soft_topk(scores, 7).numpy()
    assert out.shape == scores.shape
    np.testing.assert_allclose(out.reshape(4, -1).sum(axis=1), 7.0, atol=1e-3)
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-5


def test_soft_topk_k_equal_n_gives_ones():
    np.testing.assert_allclose(soft_topk(_separated(2, 6), 6).numpy(), 1.0, atol=1e-5)


def test_soft_topk_accepts_a_fractional_tensor_k():
    out = soft_topk(_separated(2, 10), tf.constant(2.5)).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 2.5, atol=1e-3)


def test_soft_topk_is_batch_independent():
    scores = _separated(3, 8)
    np.testing.assert_allclose(soft_topk(scores, 3).numpy()[1], soft_topk(scores[1:2], 3).numpy()[0],
                               atol=1e-6)


def test_soft_topk_has_finite_nonzero_gradients():
    scores = tf.Variable(_separated(2, 10))
    with tf.GradientTape() as tape:
        out = soft_topk(scores, 3, iterations=50)
        loss = tf.reduce_sum(out * tf.range(10, dtype=tf.float32))
    grad = tape.gradient(loss, scores).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    # The last Sinkhorn update fixes the mask's total to k whatever the scores: its gradient is 0.
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(soft_topk(scores, 3, iterations=50))
    np.testing.assert_allclose(tape.gradient(total, scores).numpy(), 0.0, atol=1e-4 * np.abs(grad).max())


@pytest.mark.parametrize("k, error", [(0, ValueError), (11, ValueError), (1.5, TypeError)])
def test_soft_topk_rejects_bad_k(k, error):
    with pytest.raises(error, match="k"):
        soft_topk(np.zeros((2, 10)), k)


def test_soft_topk_rejects_bad_tensor_k_scores_epsilon_iterations():
    with pytest.raises(ValueError, match="k"):
        soft_topk(np.zeros((2, 10)), tf.constant(12.0))
    with pytest.raises(ValueError, match="scores"):
        soft_topk(np.array([[0.0, np.nan, 1.0]]), 1)
    with pytest.raises(ValueError, match="scores"):
        soft_topk(np.zeros(4), 1)
    with pytest.raises(ValueError, match="epsilon"):
        soft_topk(np.zeros((2, 4)), 1, epsilon=0.0)
    with pytest.raises(ValueError, match="iterations"):
        soft_topk(np.zeros((2, 4)), 1, iterations=0)
