"""Tests of kernels.soft_topk: SOFT top-k by entropic optimal transport (Xie et al. 2020)."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import soft_topk, topk_mask
from kernels.soft_topk import _soft_topk_implicit

# The authors' demo (vp_and_soft_topk.md): scores [5, 2, 3, 4, 1, 6], k = 3, epsilon 0.05, 100 iterations,
# selecting the 3 smallest; our k-largest operator given 1 - s solves the same transport problem.
DEMO_SCORES = np.array([[5.0, 2.0, 3.0, 4.0, 1.0, 6.0]], np.float32)
DEMO_MASK = [0.15886909, 0.84113085, 0.63542354, 0.36457655, 0.9414631, 0.05853688]
DEMO_GRADIENT = [0.10541585, -0.04306151, -0.07465184, -0.07465144, 0.04347444, 0.04347456]  # of A[1] + A[2] + A[3]


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


@pytest.mark.parametrize("gradient", ["implicit", "unrolled"])
def test_soft_topk_has_finite_nonzero_gradients(gradient):
    scores = tf.Variable(_separated(2, 10))
    with tf.GradientTape() as tape:
        out = soft_topk(scores, 3, iterations=50, gradient=gradient)
        loss = tf.reduce_sum(out * tf.range(10, dtype=tf.float32))
    grad = tape.gradient(loss, scores).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    # The last Sinkhorn update fixes the mask's total to k whatever the scores: its gradient is 0.
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(soft_topk(scores, 3, iterations=50, gradient=gradient))
    np.testing.assert_allclose(tape.gradient(total, scores).numpy(), 0.0, atol=1e-4 * np.abs(grad).max())


def _mask_and_gradient(scores, k, gradient, weights=None, **kwargs):
    """The mask and the gradient of sum(mask * weights) w.r.t. the scores (weights: fixed random by default)."""
    scores = tf.constant(scores)
    if weights is None:
        weights = np.random.default_rng(7).normal(size=scores.shape)
    with tf.GradientTape() as tape:
        tape.watch(scores)
        mask = soft_topk(scores, k, gradient=gradient, **kwargs)
        loss = tf.reduce_sum(mask * tf.constant(weights, tf.float32))
    return mask.numpy(), tape.gradient(loss, scores).numpy()


@pytest.mark.parametrize("gradient", ["implicit", "unrolled"])
def test_soft_topk_reproduces_the_authors_demo_mask_and_gradient(gradient):
    weights = np.array([[0.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    mask, grad = _mask_and_gradient(1.0 - DEMO_SCORES, 3, gradient, weights, epsilon=0.05, iterations=100)
    np.testing.assert_allclose(mask[0], DEMO_MASK, rtol=1e-5, atol=1e-6)
    # The demo differentiates w.r.t. s; our input is 1 - s.
    np.testing.assert_allclose(-grad[0], DEMO_GRADIENT, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 50), (3, 7, 9)])
@pytest.mark.parametrize("epsilon", [0.5, 0.1, 0.03])
def test_soft_topk_implicit_gradient_equals_the_unrolled_one_at_convergence(shape, epsilon):
    # At a converged plan (checked: 1,000 and 2,000 iterations give the same mask to 1e-5) both are
    # derivatives of the same optimum and differ by float32 rounding only. The unrolled backward runs
    # 1,000 backward steps, each adding a relative error ~1e-7, so up to ~1e-4 of the gradient's scale;
    # measured on this grid: median 1e-6, worst 1.9e-5 (k = n - 1, the empty anchor's mass 1/n). A float64
    # run of the same loop (not in this suite) matched the float32 implicit gradient to 2e-5 in such cases
    # where the float32 unrolled one was 2e-4 away: the tolerance bounds the unrolled side's rounding.
    rng = np.random.default_rng(sum(shape) + int(100 * epsilon))
    n = int(np.prod(shape[1:]))
    for scores in (rng.normal(size=shape).astype(np.float32), rng.uniform(size=shape).astype(np.float32)):
        for k in (1, n // 4, n // 2, n - 1):
            converged = soft_topk(scores, k, epsilon=epsilon, iterations=2000).numpy()
            mask_i, grad_i = _mask_and_gradient(scores, k, "implicit", epsilon=epsilon, iterations=1000)
            mask_u, grad_u = _mask_and_gradient(scores, k, "unrolled", epsilon=epsilon, iterations=1000)
            assert np.abs(converged - mask_i).max() < 1e-5, "the loop has not converged: the test does not apply"
            np.testing.assert_array_equal(mask_i, mask_u)  # the same forward
            assert np.abs(grad_i - grad_u).max() <= 1e-4 * np.abs(grad_u).max(), (k, np.abs(grad_i - grad_u).max())


def test_soft_topk_implicit_gradient_ignores_k_and_is_finite_at_k_equal_n():
    scores, k = tf.constant(_separated(2, 10)), tf.constant(3.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([scores, k])
        loss = tf.reduce_sum(soft_topk(scores, k) * tf.range(10, dtype=tf.float32))
        full = tf.reduce_sum(soft_topk(scores, 10) * tf.range(10, dtype=tf.float32))
    d_k = tape.gradient(loss, k)  # None, or zeros where the traced call connects k to the output
    assert d_k is None or float(d_k) == 0.0
    grad = tape.gradient(full, scores).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() < 1e-3  # the all-ones mask does not move


def test_soft_topk_implicit_gradient_in_a_traced_step_with_a_tensor_k_does_not_retrace():
    rng = np.random.default_rng(3)
    scores = tf.Variable(rng.normal(size=(4, 6, 6)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(4, 6, 6)).astype(np.float32))

    @tf.function
    def step(k):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(soft_topk(scores, k) * weights)
        return tape.gradient(loss, scores)

    for k in (5.5, 12.25):
        traced = step(tf.constant(k)).numpy()
        eager = _mask_and_gradient(scores.numpy(), tf.constant(k), "unrolled", weights.numpy())[1]
        np.testing.assert_allclose(traced, eager, atol=1e-4 * np.abs(eager).max())
    assert step.experimental_get_tracing_count() == 1
    # Eager calls: a new k or epsilon on the same shape reuses the kernel's trace.
    soft_topk(np.zeros((2, 13)), 3, epsilon=0.2)
    before = _soft_topk_implicit.experimental_get_tracing_count()
    soft_topk(np.ones((2, 13)), tf.constant(4.5), epsilon=0.3)
    assert _soft_topk_implicit.experimental_get_tracing_count() == before


@pytest.mark.parametrize("gradient", ["implicit", "unrolled"])
@pytest.mark.parametrize("k, error", [(0, ValueError), (11, ValueError), (1.5, TypeError)])
def test_soft_topk_rejects_bad_k(k, error, gradient):
    with pytest.raises(error, match="k"):
        soft_topk(np.zeros((2, 10)), k, gradient=gradient)


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
    with pytest.raises(ValueError, match="gradient"):
        soft_topk(np.zeros((2, 4)), 1, gradient="implicit_diff")
    with pytest.raises(ValueError, match="gradient"):
        soft_topk(np.zeros((2, 4)), 1, gradient=None)
