"""Tests of kernels.regression (batched weighted least squares) and kernels.optim (Adam step)."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import adam_step, normal_equations, solve_normal_equations, weighted_least_squares


def _problem(n=3, s=40, f=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, s, f)).astype(np.float32), rng.normal(size=(n, s)).astype(np.float32),
            rng.uniform(0.1, 2.0, size=(n, s)).astype(np.float32))


def test_weighted_least_squares_matches_numpy_per_fit():
    x, y, w = _problem()
    coef, intercept = weighted_least_squares(x, y, w)
    for xi, yi, wi, ci in zip(x, y, w, coef.numpy()):
        root = np.sqrt(wi)[:, None]
        expected = np.linalg.lstsq(xi * root, yi * root[:, 0], rcond=None)[0]
        np.testing.assert_allclose(ci, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(intercept.numpy(), 0.0)


def test_ridge_with_an_unpenalised_intercept_is_scikit_learns_ridge():
    """Closed form of sklearn's Ridge(alpha, fit_intercept=True) with sample weights: centre with the
    weighted means, ridge on the centred data, intercept = mean(y) - mean(x) . b."""
    x, y, w = _problem(n=2, seed=1)
    shared = x[0]  # one design for both fits
    coef, intercept = weighted_least_squares(shared, y, w[0], ridge=1.0, intercept=True)
    for yi, ci, bi in zip(y, coef.numpy(), intercept.numpy()):
        wi = w[0] / w[0].sum()
        xc, yc = shared - wi @ shared, yi - wi @ yi
        expected = np.linalg.solve(xc.T @ (w[0][:, None] * xc) + np.eye(5), xc.T @ (w[0] * yc))
        np.testing.assert_allclose(ci, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bi, wi @ yi - (wi @ shared) @ expected, rtol=1e-4, atol=1e-5)


def test_accumulated_normal_equations_equal_one_fit():
    x, y, w = _problem(seed=2)
    parts = [normal_equations(x[:, a:b], y[:, a:b], w[:, a:b]) for a, b in ((0, 15), (15, 40))]
    gram, moment = parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    np.testing.assert_allclose(solve_normal_equations(gram, moment).numpy(), weighted_least_squares(x, y, w)[0].numpy(),
                               rtol=1e-5, atol=1e-6)


def test_rank_deficient_designs_stay_finite_and_exact_on_their_span():
    """Two identical columns: any split of the weight fits; the solution is finite and reproduces y."""
    x = np.random.default_rng(3).normal(size=(30, 1)).astype(np.float32)
    design = np.concatenate([x, x], axis=1)
    y = (2.0 * x[:, 0])[None]
    coef, _ = weighted_least_squares(design, y)
    assert np.all(np.isfinite(coef.numpy()))
    np.testing.assert_allclose(coef.numpy().sum(), 2.0, rtol=1e-4)


def test_bad_shapes_are_named():
    x, y, w = _problem()
    with pytest.raises(ValueError, match="targets: expected 40 samples per fit"):
        weighted_least_squares(x, y[:, :10])
    with pytest.raises(ValueError, match="weights: expected 40 weights per fit"):
        weighted_least_squares(x, y, w[:, :3])
    with pytest.raises(ValueError, match="ridge: expected a finite number >= 0"):
        weighted_least_squares(x, y, ridge=-1.0)
    with pytest.raises(ValueError, match="features: expected rank 2 or 3"):
        weighted_least_squares(x[0, 0], y)


def test_adam_step_matches_keras_adam():
    """Keras scales epsilon by sqrt(1 - beta_2^t) (the paper's "epsilon hat"); equal up to ~1e-5."""
    param = tf.Variable([0.5, -1.0, 2.0])
    optimizer = tf.keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-8)
    ours, first, second = tf.constant(param.numpy()), tf.zeros(3), tf.zeros(3)
    for step in range(1, 4):
        grad = tf.constant([0.3, -2.0, 0.01]) * step
        optimizer.apply_gradients([(grad, param)])
        ours, first, second = adam_step(ours, grad, first, second, step, 0.1)
    np.testing.assert_allclose(ours.numpy(), param.numpy(), rtol=1e-4)
