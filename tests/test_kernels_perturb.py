"""Tests of kernels.perturb (every baseline) and kernels.tiles."""
import numpy as np
import pytest
import tensorflow as tf

from kernels import gaussian_blur, n_tiles, perturb, tile_grid, tile_scores, tiles_to_pixels
from tests import tiny


def _ones(x):
    return np.ones(x.shape[:-1], np.float32)


@pytest.mark.parametrize("baseline, kwargs", [
    ("zeros", {}), ("constant", {"value": 0.5}), ("mean", {}), ("blur", {}), ("blur", {"sigma": 1.0}),
    ("noise", {"value": 0.3, "seed": 1}), ("distractor", {"distractors": tiny.images(3, (8, 8, 2), seed=9)}),
])
def test_a_mask_of_ones_returns_x(baseline, kwargs):
    x = tiny.images(3, (8, 8, 2))
    np.testing.assert_allclose(perturb(x, _ones(x), baseline, **kwargs).numpy(), x, atol=1e-6)


def test_a_mask_of_zeros_returns_each_baseline():
    x = tiny.images(3, (8, 8, 2))
    zeros = np.zeros(x.shape[:-1], np.float32)
    np.testing.assert_array_equal(perturb(x, zeros).numpy(), 0.0)
    np.testing.assert_allclose(perturb(x, zeros, "constant", value=-0.25).numpy(), -0.25)
    means = perturb(x, zeros, "mean").numpy()
    np.testing.assert_allclose(means, np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape), atol=1e-6)
    np.testing.assert_allclose(perturb(x, zeros, "blur", sigma=1.0).numpy(), gaussian_blur(x, 1.0).numpy())
    np.testing.assert_allclose(perturb(x, zeros, "blur").numpy(),
                               gaussian_blur(x, 5.0, kernel_size=11).numpy())
    paired = tiny.images(3, (8, 8, 2), seed=5)
    np.testing.assert_array_equal(perturb(x, zeros, "distractor", distractors=paired).numpy(), paired)
    explicit = np.array([0.1, 0.9], np.float32)
    np.testing.assert_allclose(perturb(x, zeros, explicit).numpy(), np.broadcast_to(explicit, x.shape))


def test_noise_baseline_is_seeded_with_std_value():
    x = np.zeros((4, 16, 16, 3), np.float32)
    zeros = np.zeros(x.shape[:-1], np.float32)
    first = perturb(x, zeros, "noise", value=2.0, seed=3).numpy()
    np.testing.assert_array_equal(first, perturb(x, zeros, "noise", value=2.0, seed=3).numpy())
    assert not np.array_equal(first, perturb(x, zeros, "noise", value=2.0, seed=4).numpy())
    assert first.std() == pytest.approx(2.0, rel=0.1) and abs(first.mean()) < 0.2


def test_distractor_pool_draws_one_image_per_sample_with_the_seed():
    x = tiny.images(5, (4, 4, 1))
    pool = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 4, 4, 1), np.float32)
    zeros = np.zeros((5, 4, 4), np.float32)
    out = perturb(x, zeros, "distractor", distractors=pool, seed=2).numpy()
    np.testing.assert_array_equal(out, perturb(x, zeros, "distractor", distractors=pool, seed=2).numpy())
    for image in out:
        assert image.min() == image.max() and image[0, 0, 0] in (0.0, 1.0, 2.0)


def test_soft_mask_blends_and_channel_masks_work():
    x = tiny.images(3, (8, 8, 2))
    half = np.full(x.shape, 0.5, np.float32)
    np.testing.assert_allclose(perturb(x, half, "constant", value=1.0).numpy(), 0.5 * x + 0.5, atol=1e-6)
    np.testing.assert_allclose(perturb(x, half[..., :1]).numpy(), 0.5 * x, atol=1e-6)


def test_flat_inputs():
    x = tiny.images(4, (10,))
    mask = np.zeros((4, 10), np.float32)
    mask[:, :3] = 1.0
    out = perturb(x, mask, "mean").numpy()
    np.testing.assert_allclose(out[:, :3], x[:, :3])
    np.testing.assert_allclose(out[:, 3:], np.broadcast_to(x.mean(axis=1, keepdims=True), (4, 7)), atol=1e-6)


def test_perturb_is_differentiable_in_the_mask():
    x = tiny.images(3, (8, 8, 2))
    mask = tf.Variable(np.full(x.shape[:-1], 0.5, np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(perturb(x, mask, "constant", value=1.0))
    np.testing.assert_allclose(tape.gradient(loss, mask).numpy(), (x - 1.0).sum(axis=-1), atol=1e-5)


def test_perturb_rejects_bad_inputs():
    x = tiny.images(3, (8, 8, 2))
    with pytest.raises(ValueError, match="baseline"):
        perturb(x, _ones(x), "zero")
    with pytest.raises(ValueError, match="mask"):
        perturb(x, np.ones((3, 8, 7)), "zeros")
    with pytest.raises(ValueError, match="mask"):
        perturb(x, _ones(x) * 2.0, "zeros")
    with pytest.raises(ValueError, match="x"):
        perturb(np.zeros((3, 8, 8)), np.ones((3, 8, 8)), "zeros")
    with pytest.raises(ValueError, match="baseline"):
        perturb(x, _ones(x), np.zeros((3, 8, 8, 3)))
    with pytest.raises(ValueError, match="baseline"):
        perturb(tiny.images(2, (6,)), np.ones((2, 6)), "blur")
    with pytest.raises(ValueError, match="value"):
        perturb(x, _ones(x), "noise")
    with pytest.raises(ValueError, match="distractors"):
        perturb(x, _ones(x), "distractor")
    with pytest.raises(ValueError, match="distractors"):
        perturb(x, _ones(x), "distractor", distractors=np.zeros((4, 8, 8, 3)))
    with pytest.raises(ValueError, match="distractors"):
        perturb(x, _ones(x), "zeros", distractors=tiny.images(3, (8, 8, 2)))
    with pytest.raises(ValueError, match="sigma"):
        perturb(x, _ones(x), "mean", sigma=2.0)


def test_tile_grid_row_major_with_partial_tiles():
    grid = tile_grid(5, 7, 3)
    assert grid.dtype == np.int32 and grid.shape == (5, 7)
    assert n_tiles(5, 7, 3) == 6 == grid.max() + 1
    np.testing.assert_array_equal(grid[0], [0, 0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(grid[:, 0], [0, 0, 0, 3, 3])


def test_tile_scores_are_tile_means_and_round_trip():
    scores = np.random.default_rng(0).uniform(size=(2, 5, 7)).astype(np.float32)
    per_tile = tile_scores(scores, 3).numpy()
    assert per_tile.shape == (2, 6)
    assert per_tile[1, 5] == pytest.approx(scores[1, 3:, 6:].mean())
    assert per_tile[0, 0] == pytest.approx(scores[0, :3, :3].mean())
    pixels = tiles_to_pixels(per_tile, 5, 7, 3).numpy()
    assert pixels.shape == (2, 5, 7)
    np.testing.assert_allclose(tile_scores(pixels, 3).numpy(), per_tile, rtol=1e-6)
    np.testing.assert_allclose(pixels[0, :3, :3], per_tile[0, 0])


def test_tiles_reject_bad_inputs():
    with pytest.raises(ValueError, match="tile"):
        tile_grid(4, 4, 0)
    with pytest.raises(ValueError, match="tile_mask"):
        tiles_to_pixels(np.zeros((1, 5)), 4, 4, 2)
    with pytest.raises(ValueError, match="scores"):
        tile_scores(np.zeros((4, 4)), 2)
