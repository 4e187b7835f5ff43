"""The Per-Sample step's hand-derived backward pass (iba.step) equals autodiff of the same loss."""
import numpy as np
import pytest
import tensorflow as tf

from iba.bottleneck import capacity, lambdas, noisy_features
from iba.step import PerSampleStep
from kernels import adam_step

SHAPE = (6, 5, 3)  # h, w, c: small and non-square, so a transposed blur would show


def _problem(seed=0, n=3, copies=4, classes=4):
    rng = np.random.default_rng(seed)
    f32 = lambda a: tf.constant(np.asarray(a, np.float32))  # noqa: E731
    return dict(
        alpha=f32(rng.normal(2.0, 3.0, size=(n,) + SHAPE)),
        features=f32(np.maximum(rng.normal(0.5, 1.0, size=(n,) + SHAPE), 0)),
        mean=f32(rng.normal(0.3, 0.2, size=SHAPE)),
        std=f32(rng.uniform(0.5, 1.5, size=SHAPE)),
        active=f32(rng.uniform(size=SHAPE) > 0.2),
        noise=f32(rng.normal(size=(copies,) + SHAPE)),
        weights=f32(rng.normal(size=(int(np.prod(SHAPE)), classes)) / 5),
        targets=tf.constant(rng.integers(0, classes, size=n), tf.int32),
    )


def _tail(z, weights):
    """A small nonlinear tail: log-softmax of a linear map of tanh(Z)."""
    flat = tf.reshape(tf.tanh(z), [-1, int(np.prod(SHAPE))])
    return tf.nn.log_softmax(flat @ weights)


def _cross_entropy(z, p):
    n, copies = tf.shape(z)[0], tf.shape(z)[1]
    log_p = tf.reshape(_tail(tf.reshape(z, (-1,) + SHAPE), p["weights"]), [n, copies, -1])
    return tf.reduce_sum(-tf.reduce_mean(tf.gather(log_p, p["targets"], axis=2, batch_dims=1), axis=1))


def _autodiff_gradient(p, sigma, relu, beta):
    """dL/dalpha of the Per-Sample loss written with iba.bottleneck's ops and differentiated by TF."""
    with tf.GradientTape() as tape:
        tape.watch(p["alpha"])
        lam, one_minus = lambdas(p["alpha"], sigma)
        z = noisy_features(p["features"], lam, one_minus, p["noise"], p["mean"], p["std"], p["active"], relu)
        information = tf.reduce_mean(capacity(p["features"], lam, one_minus, p["mean"], p["std"], p["active"]),
                                     axis=[1, 2, 3])
        loss = _cross_entropy(z, p) + beta * tf.reduce_sum(information)
    return tape.gradient(loss, p["alpha"])


def _step_update(p, sigma, relu, beta, step=1, lr=0.5):
    kernels = PerSampleStep(SHAPE, sigma, relu)
    lam, one_minus = kernels.lambdas(p["alpha"])
    z = kernels.noisy_copies(lam, one_minus, p["features"], p["mean"], p["std"], p["active"], p["noise"])
    with tf.GradientTape() as tape:
        tape.watch(z)
        cross_entropy = _cross_entropy(z, p)
    zeros = tf.zeros_like(p["alpha"])
    return kernels.update(tape.gradient(cross_entropy, z), z, p["noise"], p["alpha"], lam, one_minus, p["features"],
                          p["mean"], p["std"], p["active"], zeros, zeros, step, beta, lr)


@pytest.mark.parametrize("sigma, relu", [(1.0, False), (0.0, False), (1.0, True), (0.7, True)])
def test_the_step_equals_adam_on_the_autodiff_gradient(sigma, relu):
    p = _problem()
    beta = 3.0
    grad = _autodiff_gradient(p, sigma, relu, beta)
    assert float(tf.reduce_max(tf.abs(grad))) > 1e-4  # a real gradient, not all zeros
    zeros = tf.zeros_like(p["alpha"])
    expected = adam_step(p["alpha"], grad, zeros, zeros, 1, 0.5, 0.9, 0.999, 1e-8)
    got = _step_update(p, sigma, relu, beta)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=2e-4, atol=1e-6)


def test_the_forward_half_equals_the_bottleneck_ops():
    p = _problem(seed=1)
    kernels = PerSampleStep(SHAPE, 1.0, relu=False)
    lam, one_minus = kernels.lambdas(p["alpha"])
    lam_ref, one_minus_ref = lambdas(p["alpha"], 1.0)
    np.testing.assert_allclose(lam.numpy(), lam_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(one_minus.numpy(), one_minus_ref.numpy(), atol=1e-6)
    z = kernels.noisy_copies(lam, one_minus, p["features"], p["mean"], p["std"], p["active"], p["noise"])
    z_ref = noisy_features(p["features"], lam_ref, one_minus_ref, p["noise"], p["mean"], p["std"], p["active"], False)
    assert z.shape == (3, 4) + SHAPE
    np.testing.assert_allclose(z.numpy(), z_ref.numpy(), atol=1e-5)


def test_saturated_alphas_give_finite_updates_equal_to_autodiff():
    # Image 0: 1 - lambda ~ 4e-18, below the capacity's clamp; image 1: lambda ~ 0; image 2: mixed.
    p = _problem(seed=2)
    alpha = p["alpha"].numpy()
    alpha[0], alpha[1] = 40.0, -40.0
    p["alpha"] = tf.constant(alpha)
    grad = _autodiff_gradient(p, 1.0, False, beta=10.0)
    zeros = tf.zeros_like(p["alpha"])
    expected = adam_step(p["alpha"], grad, zeros, zeros, 1, 0.5, 0.9, 0.999, 1e-8)
    for e, g in zip(expected, _step_update(p, 1.0, False, beta=10.0)):
        assert np.isfinite(g.numpy()).all()
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=2e-4, atol=1e-6)
