"""Square tile grids for the degradation and Sensitivity-n metrics (IBA, Section 4 and Appendix).

The image is split into tile x tile pixel tiles numbered row-major; when the tile size does not divide
the image, the tiles of the last row / column are smaller (partial tiles, never dropped).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels.validation import as_float_tensor


def _check_geometry(height, width, tile):
    for name, value in (("height", height), ("width", width), ("tile", tile)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


def n_tiles(height: int, width: int, tile: int) -> int:
    """Number of tiles covering a height x width image: ceil(H / tile) * ceil(W / tile)."""
    _check_geometry(height, width, tile)
    return int(-(-height // tile) * -(-width // tile))


def tile_grid(height: int, width: int, tile: int) -> np.ndarray:
    """int32 (H, W) array holding, for every pixel, the row-major id of its tile."""
    _check_geometry(height, width, tile)
    columns = -(-width // tile)
    rows = np.arange(height) // tile
    cols = np.arange(width) // tile
    return (rows[:, None] * columns + cols[None, :]).astype(np.int32)


def tile_scores(scores, tile):
    """Mean score of each tile: scores (N, H, W) -> (N, n_tiles), partial tiles averaged over their pixels.

    IBA's degradation ranks tiles by the attribution inside each tile (the mean ranks like the sum for
    full tiles and does not favour a partial tile for its size).
    """
    scores = as_float_tensor("scores", scores, rank=3)
    height, width = scores.shape[1], scores.shape[2]
    if height is None or width is None:
        raise ValueError(f"scores: expected a static height and width, got shape {tuple(scores.shape)}")
    grid = tile_grid(height, width, tile)
    return _tile_scores(scores, tf.constant(grid.reshape(-1)), n_tiles(height, width, tile))


@tf.function
def _tile_scores(scores, segment_ids, count):
    pixels = tf.transpose(tf.reshape(scores, [tf.shape(scores)[0], -1]))  # (H*W, N)
    return tf.transpose(tf.math.unsorted_segment_mean(pixels, segment_ids, count))


def tiles_to_pixels(tile_mask, height, width, tile):
    """Pixel mask (N, H, W) from a tile mask (N, n_tiles): every pixel takes its tile's value."""
    tile_mask = as_float_tensor("tile_mask", tile_mask, rank=2)
    count = n_tiles(height, width, tile)
    if tile_mask.shape[1] != count:
        raise ValueError(
            f"tile_mask: expected shape (N, {count}) for {height}x{width} images and tile {tile}, "
            f"got {tuple(tile_mask.shape)}"
        )
    return _tiles_to_pixels(tile_mask, tf.constant(tile_grid(height, width, tile)))


@tf.function
def _tiles_to_pixels(tile_mask, grid):
    return tf.gather(tile_mask, grid, axis=1)
