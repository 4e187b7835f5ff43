"""Tests of kernels.wasserstein: sliced Wasserstein distance between two batches."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import projection_directions, sliced_wasserstein
from tests import tiny


@pytest.mark.parametrize("channels", [2, 5])
def test_sw_is_zero_for_identical_batches_and_symmetric(channels):
    p, q = tiny.gaussian(16, (channels,), seed=0), tiny.gaussian(16, (channels,), seed=1)
    assert sliced_wasserstein(p, p, 32, seed=0).numpy() == pytest.approx(0.0, abs=1e-7)
    assert sliced_wasserstein(p, q, 32, seed=3).numpy() == pytest.approx(
        sliced_wasserstein(q, p, 32, seed=3).numpy(), rel=1e-6)


def test_sw_matches_the_closed_form_for_a_diagonal_shift():
    p, delta, seed = tiny.gaussian(20, (2,)), 0.7, tf.constant([5, 9], tf.int64)
    directions = projection_directions(2, 64, seed=seed).numpy()
    expected = np.mean(np.abs(delta * (directions[0] + directions[1])))
    got = sliced_wasserstein(p, p + delta, 64, seed=seed).numpy()
    assert got == pytest.approx(expected, rel=1e-5)
    # For many directions the mean of |cos a + sin a| over the half circle tends to 2 * sqrt(2) / pi.
    assert got == pytest.approx(delta * 2 * np.sqrt(2) / np.pi, rel=1e-3)


def test_sw_grows_with_the_shift():
    p = tiny.gaussian(16, (3,))
    values = [sliced_wasserstein(p, p + d, 64, seed=1).numpy() for d in (0.1, 0.5, 2.0)]
    assert values[0] < values[1] < values[2]


def test_sw_is_invariant_to_the_batch_order():
    p, q = tiny.gaussian(16, (2,), seed=0), tiny.gaussian(16, (2,), seed=1)
    perm = np.random.default_rng(2).permutation(16)
    assert sliced_wasserstein(p[perm], q, 32, seed=4).numpy() == pytest.approx(
        sliced_wasserstein(p, q, 32, seed=4).numpy(), rel=1e-6)


def test_directions_are_unit_vectors_and_two_d_ones_evenly_spaced():
    many = projection_directions(6, 10, seed=0).numpy()
    np.testing.assert_allclose(np.linalg.norm(many, axis=0), 1.0, rtol=1e-5)
    planar = projection_directions(2, 8, seed=0).numpy()
    angles = np.unwrap(np.arctan2(planar[1], planar[0]))
    np.testing.assert_allclose(np.diff(angles), np.pi / 8, rtol=1e-4)


def test_sw_seed_reproducible_and_fresh_without_seed():
    p, q = tiny.gaussian(16, (4,), seed=0), tiny.gaussian(16, (4,), seed=1)
    assert sliced_wasserstein(p, q, 8, seed=7).numpy() == sliced_wasserstein(p, q, 8, seed=7).numpy()
    assert sliced_wasserstein(p, q, 8).numpy() != sliced_wasserstein(p, q, 8).numpy()


def test_sw_gradient_is_finite():
    p, q = tf.Variable(tiny.gaussian(16, (2,), seed=0)), tiny.gaussian(16, (2,), seed=1)
    with tf.GradientTape() as tape:
        value = sliced_wasserstein(p, q, 16, seed=0)
    grad = tape.gradient(value, p).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
    # q = p + delta: on every direction theta the sorted projections differ by delta (theta_0 + theta_1), so
    # each sample gets the same gradient -mean_theta(sign(theta_0 + theta_1) theta) / B.
    seed, delta = tf.constant([5, 9], tf.int64), 0.7
    directions = projection_directions(2, 64, seed=seed).numpy()  # (2, 64)
    shifted = tf.Variable(tiny.gaussian(20, (2,)))
    with tf.GradientTape() as tape:
        value = sliced_wasserstein(shifted, shifted.numpy() + delta, 64, seed=seed)
    expected = -(np.sign(directions.sum(axis=0)) * directions).mean(axis=1) / 20
    np.testing.assert_allclose(tape.gradient(value, shifted).numpy(), np.tile(expected, (20, 1)), rtol=1e-5,
                               atol=1e-8)


def test_sw_rejects_bad_inputs():
    with pytest.raises(ValueError, match="q"):
        sliced_wasserstein(tiny.gaussian(16, (2,)), tiny.gaussian(8, (2,)), 8)
    with pytest.raises(ValueError, match="p"):
        sliced_wasserstein(tiny.gaussian(16, ()), tiny.gaussian(16, ()), 8)
    with pytest.raises(ValueError, match="q"):
        sliced_wasserstein(tiny.gaussian(16, (2,)), np.full((16, 2), np.nan), 8)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(tiny.gaussian(16, (2,)), tiny.gaussian(16, (2,)), 0)
