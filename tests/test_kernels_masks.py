"""Tests of kernels.masks (RISE's random grid masks)."""
import numpy as np
import pytest

from kernels import random_grid_masks
from kernels.masks import grid_mask_geometry


def test_geometry_and_values():
    assert grid_mask_geometry((28, 28), (7, 7)) == ((4, 4), (32, 32))
    assert grid_mask_geometry((1, 10), (1, 3)) == ((1, 4), (2, 16))
    masks = random_grid_masks(np.arange(64), seed=0, size=(12, 10), grid=(3, 2)).numpy()
    assert masks.shape == (64, 12, 10) and masks.min() >= 0.0 and masks.max() <= 1.0
    assert 0.4 < masks.mean() < 0.6  # p = 0.5
    assert random_grid_masks(np.arange(200), seed=0, size=(8, 8), grid=2, p=0.2).numpy().mean() < 0.3


def test_a_mask_depends_on_the_seed_and_its_number_only():
    every = random_grid_masks(np.arange(10), seed=3, size=(9, 9), grid=3).numpy()
    np.testing.assert_array_equal(random_grid_masks([7, 2], seed=3, size=(9, 9), grid=3).numpy(), every[[7, 2]])
    assert not np.array_equal(random_grid_masks(np.arange(10), seed=4, size=(9, 9), grid=3).numpy(), every)


def test_all_ones_grid_gives_all_ones_and_masks_are_smooth():
    np.testing.assert_allclose(random_grid_masks(np.arange(3), seed=0, size=(6, 6), grid=2, p=1.0).numpy(), 1.0)
    masks = random_grid_masks(np.arange(20), seed=1, size=(16, 16), grid=2).numpy()
    # Bilinear upsampling of 8-pixel cells: neighbouring pixels differ by at most 1/8.
    assert np.abs(np.diff(masks, axis=1)).max() <= 1 / 8 + 1e-6


def test_bad_arguments():
    with pytest.raises(ValueError, match="grid: expected at most the mask size"):
        random_grid_masks([0], seed=0, size=(4, 4), grid=5)
    with pytest.raises(ValueError, match=r"p: expected a probability in \(0, 1\]"):
        random_grid_masks([0], seed=0, size=(4, 4), grid=2, p=1.5)
    with pytest.raises(ValueError, match="seed: expected an integer >= 0"):
        random_grid_masks([0], seed=-1, size=(4, 4), grid=2)
    with pytest.raises(ValueError, match="size: expected an int or a pair"):
        random_grid_masks([0], seed=0, size=(4, 4, 4), grid=2)
