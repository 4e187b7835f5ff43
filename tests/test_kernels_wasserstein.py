"""Tests of kernels.wasserstein: sliced Wasserstein distance between two batches."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import projection_directions, sliced_wasserstein


def _batch(shape=(16, 2), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("channels", [2, 5])
def test_sw_is_zero_for_identical_batches_and_symmetric(channels):
    p, q = _batch((16, channels), 0), _batch((16, channels), 1)
    assert sliced_wasserstein(p, p, 32, seed=0).numpy() == pytest.approx(0.0, abs=1e-7)
    assert sliced_wasserstein(p, q, 32, seed=3).numpy() == pytest.approx(
        sliced_wasserstein(q, p, 32, seed=3).numpy(), rel=1e-6)


def test_sw_matches_the_closed_form_for_a_diagonal_shift():
    p, delta, seed = _batch((20, 2)), 0.7, tf.constant([5, 9], tf.int64)
    directions = projection_directions(2, 64, seed=seed).numpy()
    expected = np.mean(np.abs(delta * (directions[0] + directions[1])))
    got = sliced_wasserstein(p, p + delta, 64, seed=seed).numpy()
    assert got == pytest.approx(expected, rel=1e-5)
    # For many directions the mean of |cos a + sin a| over the half circle tends to 2 * sqrt(2) / pi.
    assert got == pytest.approx(delta * 2 * np.sqrt(2) / np.pi, rel=1e-3)


def test_sw_grows_with_the_shift():
    p = _batch((16, 3))
    values = [sliced_wasserstein(p, p + d, 64, seed=1).numpy() for d in (0.1, 0.5, 2.0)]
    assert values[0] < values[1] < values[2]


def test_sw_is_invariant_to_the_batch_order():
    p, q = _batch((16, 2), 0), _batch((16, 2), 1)
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
    p, q = _batch((16, 4), 0), _batch((16, 4), 1)
    assert sliced_wasserstein(p, q, 8, seed=7).numpy() == sliced_wasserstein(p, q, 8, seed=7).numpy()
    assert sliced_wasserstein(p, q, 8).numpy() != sliced_wasserstein(p, q, 8).numpy()


def test_sw_gradient_is_finite():
    p, q = tf.Variable(_batch((16, 2), 0)), _batch((16, 2), 1)
    with tf.GradientTape() as tape:
        value = sliced_wasserstein(p, q, 16, seed=0)
    grad = tape.gradient(value, p).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_sw_rejects_bad_inputs():
    with pytest.raises(ValueError, match="q"):
        sliced_wasserstein(_batch((16, 2)), _batch((8, 2)), 8)
    with pytest.raises(ValueError, match="p"):
        sliced_wasserstein(_batch((16,)), _batch((16,)), 8)
    with pytest.raises(ValueError, match="q"):
        sliced_wasserstein(_batch(), np.full((16, 2), np.nan), 8)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(_batch(), _batch(), 0)
