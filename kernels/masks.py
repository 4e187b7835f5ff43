"""Random smooth masks from a coarse binary grid (RISE, Petsiuk et al. 2018, Section 3.2).

Mask number j is a function of (seed, j) only -- stateless random ops --, so the same masks come back
for any grouping of the indices: a caller can generate and evaluate them group by group inside a
tf.while_loop and still get the result of one big batch.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from kernels.validation import check_int


def grid_mask_geometry(size, grid):
    """Cell size ceil(size / grid) and the upsampled size (grid + 1) * cell, per axis.

    ``size`` and ``grid`` are pairs (height, width) of ints >= 1 with grid <= size on each axis.
    """
    size, grid = _pair("size", size), _pair("grid", grid)
    for s, g in zip(size, grid):
        if g > s:
            raise ValueError(f"grid: expected at most the mask size {size} cells on every axis, got {grid}")
    cell = tuple(math.ceil(s / g) for s, g in zip(size, grid))
    return cell, tuple((g + 1) * c for g, c in zip(grid, cell))


def random_grid_masks(index, *, seed: int, size, grid, p: float = 0.5):
    """Masks number ``index`` (G,) -> (G, height, width) float32 in [0, 1], RISE's generator.

    Each mask: a grid[0] x grid[1] binary grid with P(cell = 1) = ``p``, upsampled bilinearly to
    (grid + 1) * cell pixels (cell = ceil(size / grid)), then cropped to ``size`` at a random offset in
    [0, cell) per axis -- the random shift that makes the masks smooth at every position rather than
    only at cell borders. The draws of mask j use the stateless seed (seed, j).

    Bilinear upsampling is tf.image.resize's (half-pixel centres, edge clamping); RISE's skimage
    ``resize(order=1, mode='reflect')`` mirrors at the border instead, which changes only the outer half
    cell of the upsampled grid -- mostly cropped away by the shift.
    """
    seed = check_int("seed", seed, minimum=0)
    p = check_probability("p", p)
    cell, upsampled = grid_mask_geometry(size, grid)
    size, grid = _pair("size", size), _pair("grid", grid)
    index = tf.cast(tf.convert_to_tensor(index), tf.int64)
    if index.shape.rank != 1:
        raise ValueError(f"index: expected a vector of mask numbers, got shape {tuple(index.shape)}")
    return _grid_masks(index, tf.constant(seed, tf.int64), size, grid, cell, upsampled, p)


def check_probability(name: str, p) -> float:
    """``p`` as a float after checking 0 < p <= 1 (a keep probability: 0 would keep nothing)."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) \
            or not 0.0 < p <= 1.0:
        raise ValueError(f"{name}: expected a probability in (0, 1], got {p!r}")
    return float(p)


def _pair(name, value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}: expected an int or a pair (height, width) of ints, got {value!r}")
    return tuple(check_int(name, v, minimum=1) for v in value)


@tf.function
def _grid_masks(index, seed, size, grid, cell, upsampled, p):
    n_cells = grid[0] * grid[1]

    # One stateless draw per mask: the grid cells, then the two shifts.
    uniforms = tf.map_fn(lambda j: tf.random.stateless_uniform([n_cells + 2], tf.stack([seed, j])), index,
                         fn_output_signature=tf.float32)
    cells = tf.cast(uniforms[:, :n_cells] < p, tf.float32)
    cells = tf.reshape(cells, [-1, grid[0], grid[1], 1])
    smooth = tf.image.resize(cells, upsampled, method="bilinear")[..., 0]  # (G, up_h, up_w)
    shift_y = tf.cast(uniforms[:, n_cells] * cell[0], tf.int32)
    shift_x = tf.cast(uniforms[:, n_cells + 1] * cell[1], tf.int32)
    rows = shift_y[:, None] + tf.range(size[0])[None, :]
    cols = shift_x[:, None] + tf.range(size[1])[None, :]
    smooth = tf.gather(smooth, rows, axis=1, batch_dims=1)  # (G, H, up_w)
    return tf.gather(smooth, cols, axis=2, batch_dims=1)  # (G, H, W)
