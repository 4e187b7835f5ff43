"""iba.bottleneck / iba.statistics / iba.bits: the capacity, lambda, Z, Adam, statistics and bits."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from iba import region_bits, total_bits
from iba.bits import capacity_to_heatmap
from iba.bottleneck import ONE_MINUS_LAMBDA_MIN, capacity, lambdas, noisy_features
from kernels import adam_step
from iba.statistics import FeatureStatistics


def gaussian_kl(m1, s1, m2=0.0, s2=1.0):
    """KL(N(m1, s1^2) || N(m2, s2^2)), the textbook closed form, in float64."""
    return np.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5


def _arrays(seed=0, shape=(2, 4, 5, 3)):
    rng = np.random.default_rng(seed)
    features = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
    lam = rng.uniform(0.0, 0.99, size=shape).astype(np.float32)
    mean = rng.normal(size=shape[1:]).astype(np.float32)
    std = rng.uniform(0.5, 3.0, size=shape[1:]).astype(np.float32)
    return features, lam, mean, std


def test_capacity_matches_the_closed_form_gaussian_kl():
    features, lam, mean, std = _arrays()
    got = capacity(features, lam, 1.0 - lam, mean, std).numpy()
    f64, l64 = features.astype(np.float64), lam.astype(np.float64)
    expected = gaussian_kl(l64 * (f64 - mean) / std, 1.0 - l64)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.all(got >= -1e-6)


def test_capacity_is_zero_where_lambda_is_zero_and_where_inactive():
    features, lam, mean, std = _arrays(1)
    lam[:, :2] = 0.0
    active = np.ones(features.shape[1:], np.float32)
    active[3, 4, :] = 0.0
    got = capacity(features, lam, 1.0 - lam, mean, std, active).numpy()
    np.testing.assert_array_equal(got[:, :2], 0.0)
    np.testing.assert_array_equal(got[:, 3, 4, :], 0.0)
    assert np.all(got[:, 2:3] > 0)


def test_capacity_is_finite_when_lambda_reaches_one():
    features, _, mean, std = _arrays(2)
    lam = np.ones_like(features)
    got = capacity(features, lam, np.zeros_like(lam), mean, std).numpy()
    assert np.all(np.isfinite(got))
    # The clamp bounds the log term at -log(1e-12) ~ 27.6 nats.
    normalised = (features.astype(np.float64) - mean) / std
    np.testing.assert_allclose(got, -0.5 * (1 + 2 * np.log(ONE_MINUS_LAMBDA_MIN) - normalised ** 2), rtol=1e-5)
    # Gradients through lambdas() stay finite for saturated alphas.
    signs = np.sign(np.random.default_rng(0).normal(size=(1, 5, 5, 2)))
    alpha = tf.constant((60.0 * signs).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(alpha)
        lam_t, one_minus = lambdas(alpha, 1.0)
        total = tf.reduce_sum(capacity(tf.ones_like(alpha), lam_t, one_minus, 0.0, 1.0))
    assert np.isfinite(total.numpy()) and np.all(np.isfinite(tape.gradient(total, alpha).numpy()))


def test_lambdas_blur_after_the_sigmoid_and_sum_to_one():
    from scipy import ndimage

    alpha = np.random.default_rng(3).normal(0, 3, size=(2, 7, 6, 3)).astype(np.float32)
    lam, one_minus = lambdas(alpha, 1.0)
    sig = 1.0 / (1.0 + np.exp(-alpha.astype(np.float64)))
    expected = ndimage.gaussian_filter(sig, sigma=(0, 1, 1, 0), mode="mirror", truncate=2.0)
    np.testing.assert_allclose(lam.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(lam.numpy() + one_minus.numpy(), 1.0, atol=1e-6)
    # Constant alpha = 5: lambda = sigmoid(5) ~ 0.9933 everywhere (the paper's initial value).
    lam5, _ = lambdas(np.full((1, 5, 5, 2), 5.0, np.float32), 1.0)
    np.testing.assert_allclose(lam5.numpy(), 1 / (1 + np.exp(-5.0)), rtol=1e-6)
    lam_plain, _ = lambdas(alpha, 0.0)
    np.testing.assert_allclose(lam_plain.numpy(), sig, rtol=1e-6)


def test_noisy_features_interpolate_signal_and_noise():
    features, lam, mean, std = _arrays(4, shape=(2, 3, 3, 2))
    noise = np.random.default_rng(5).normal(size=(4, 3, 3, 2)).astype(np.float32)
    active = np.ones((3, 3, 2), np.float32)
    active[0, 0, 0] = 0.0
    z = np.asarray(noisy_features(features, lam, 1 - lam, noise, mean, std, active, relu=False))
    assert z.shape == (2, 4, 3, 3, 2)
    expected = lam[:, None] * features[:, None] + (1 - lam[:, None]) * (mean + std * noise)[None]
    expected[..., 0, 0, 0] = 0.0
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)
    # lambda = 0: pure noise N(mu, std^2); lambda = 1: the signal.
    zero = np.zeros_like(lam)
    z0 = np.asarray(noisy_features(features, zero, 1 - zero, noise, mean, std, active * 0 + 1, relu=False))
    np.testing.assert_allclose(z0[0], mean + std * noise, rtol=1e-5)
    z_relu = np.asarray(noisy_features(features, zero, 1 - zero, noise, 0.0, std, active, relu=True))
    assert z_relu.min() == 0.0 and np.all(z_relu >= 0)


def test_adam_update_matches_keras_adam_with_epsilon_1e8():
    rng = np.random.default_rng(0)
    param = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    var = keras.Variable(param)
    opt = keras.optimizers.Adam(learning_rate=1.0, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    p, m, v = tf.constant(param), tf.zeros((3, 4)), tf.zeros((3, 4))
    for step, g in enumerate(grads, start=1):
        opt.apply_gradients([(tf.constant(g), var)])
        p, m, v = adam_step(p, tf.constant(g), m, v, step, 1.0)
    # Keras adds epsilon to sqrt(v) before the bias correction, PyTorch after: equal up to ~eps.
    np.testing.assert_allclose(p.numpy(), var.numpy(), rtol=1e-5, atol=1e-5)
    # The first step moves every element by exactly lr (m_hat / sqrt(v_hat) = sign(g)).
    p1, _, _ = adam_step(tf.constant(param), tf.constant(grads[0]), tf.zeros((3, 4)), tf.zeros((3, 4)), 1, 1.0)
    np.testing.assert_allclose(np.abs(p1.numpy() - param), 1.0, rtol=1e-6)


def test_feature_statistics_match_numpy_in_any_chunking():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(53, 2, 3, 4))
    data[data < 2.0] = 0.0  # zeros, as after a ReLU
    data[:, 0, 0, 0] = 0.0
    data[:, 0, 0, 1] = 0.0
    data[0, 0, 0, 1] = 5.0  # non-zero in 1 of 53 samples
    stats = FeatureStatistics((2, 3, 4))
    for start, stop in ((0, 7), (7, 8), (8, 40), (40, 53)):
        stats.update(data[start:stop].astype(np.float32))
    f32 = data.astype(np.float32).astype(np.float64)
    assert stats.count == 53
    np.testing.assert_allclose(stats.mean, f32.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std(), f32.std(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(stats.std(0.01), np.maximum(f32.std(axis=0, ddof=1), 0.01), rtol=1e-10)
    assert stats.std(0.01)[0, 0, 0] == 0.01
    active = stats.active(0.01)
    np.testing.assert_array_equal(active, (f32 != 0).mean(axis=0) > 0.01)
    assert not active[0, 0, 0] and active[0, 0, 1]  # 1/53 > 1%
    assert not stats.active(0.05)[0, 0, 1]
    nonzero = (f32 != 0).sum(axis=0)
    rms = np.sqrt((f32 ** 2).sum(axis=0) / np.maximum(nonzero, 1))
    np.testing.assert_allclose(stats.rms_nonzero(0.01), np.maximum(rms, 0.01), rtol=1e-10)
    with pytest.raises(ValueError, match="chunk"):
        stats.update(np.zeros((2, 3, 3, 4)))


def test_feature_statistics_are_stable_for_large_offsets():
    rng = np.random.default_rng(1)
    data = 1e6 + rng.normal(size=(200, 1, 1, 1))
    stats = FeatureStatistics((1, 1, 1))
    for chunk in np.array_split(data, 9):
        stats.update(chunk)
    np.testing.assert_allclose(stats.std(), data.std(axis=0, ddof=1), rtol=1e-8)


def test_heatmap_bits_keep_the_total_and_regions_add_up():
    rng = np.random.default_rng(0)
    cap = rng.uniform(0, 2, size=(3, 4, 4, 5)).astype(np.float32)
    heat = capacity_to_heatmap(cap, (16, 16))
    assert heat.shape == (3, 16, 16) and heat.dtype == np.float32
    np.testing.assert_allclose(total_bits(heat), cap.sum(axis=(1, 2, 3)) / np.log(2), rtol=1e-5)
    mask = np.zeros((16, 16), bool)
    mask[:8] = True
    inside, outside = region_bits(heat, mask), region_bits(heat, ~mask)
    np.testing.assert_allclose(inside + outside, total_bits(heat), rtol=1e-6)
    per_image = np.stack([mask, ~mask, np.ones_like(mask)])
    np.testing.assert_allclose(region_bits(heat, per_image), [inside[0], outside[1], total_bits(heat)[2]], rtol=1e-6)
    with pytest.raises(ValueError, match="masks: expected shape"):
        region_bits(heat, np.ones((2, 16, 16)))
    with pytest.raises(ValueError, match="binary"):
        region_bits(heat, np.full((16, 16), 0.5))
    with pytest.raises(ValueError, match="heatmaps"):
        total_bits(np.zeros((16, 16)))
    with pytest.raises(ValueError, match="finite"):
        total_bits(np.full((1, 2, 2), np.nan))
