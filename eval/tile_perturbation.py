"""Model scores on images whose tiles are replaced by a baseline: the engine of IBA's perturbation metrics.

Degradation (MoRF / LeRF, IBA Section 4.6) and Sensitivity-n (IBA Section 4.4, Ancona et al. 2018) both
ask the same question many times: what does the model say about image i when the tiles in a set T are
replaced by a baseline? Both metrics describe each query as a *row* (image index, tiles kept, target
class); :class:`TileScorer` evaluates rows in chunks of ``batch_size``, each chunk one call of a
``tf.function`` that builds the perturbed images x * m + b * (1 - m) (``kernels.perturb``) from the
tile mask (``kernels.tiles``) and runs the model on all of them at once.

The baseline images b are computed once per image by ``kernels.perturb`` (e.g. ``"mean"``: every pixel
set to the image's per-channel mean, as in IBA's degradation; ``"zeros"``: Sensitivity-n's x_T = 0), so
a random baseline (``"noise"``) is the same draw for every row of one image.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from eval.progress import Progress
from eval.protocol import as_inputs, as_scores, as_targets, check_output
from kernels.hooks import check_model, class_logits, find_logits
from kernels.perturb import perturb
from kernels.tiles import n_tiles, tile_grid, tiles_to_pixels
from kernels.validation import check_int

# rows(start, stop) -> (image index (B,), tiles kept (B, n_tiles) in {0, 1}, target class (B,)).
RowFn = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def check_images(x) -> np.ndarray:
    """``x`` as float32 images (N, H, W, C) with N >= 1 (tiles need a 2-D layout)."""
    x = as_inputs("x", x)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"x: expected a non-empty batch of images (N, H, W, C), got shape {x.shape}")
    return x.astype(np.float32)


def check_tile(tile, height: int, width: int, *, min_tiles: int = 2) -> int:
    """``tile`` as an int in [1, min(H, W)] that splits the image into at least ``min_tiles`` tiles."""
    tile = check_int("tile", tile, minimum=1)
    if tile > min(height, width):
        raise ValueError(f"tile: expected a tile size <= the image side min(H, W) = {min(height, width)}, "
                         f"got {tile}")
    count = n_tiles(height, width, tile)
    if count < min_tiles:
        raise ValueError(f"tile: expected at least {min_tiles} tiles on a {height}x{width} image, got {count} "
                         f"with tile {tile}")
    return tile


def image_scores(scores, x: np.ndarray, targets, batch_size: int) -> np.ndarray:
    """Per-pixel scores (N, H, W) for images x, from an array or an Explainer (eval.protocol.as_scores)."""
    return as_scores(scores, x, targets=targets, batch_size=batch_size).astype(np.float64)


class TileScorer:
    """The model's score of a target class on images with some tiles replaced by a baseline, batched.

    ``output="probability"`` reads the model's output as it is (class probabilities for a softmax
    model); ``output="logit"`` reads the pre-softmax scores found by ``kernels.hooks.find_logits``.
    """

    def __init__(self, model, x: np.ndarray, *, tile: int, baseline, baseline_value: float, output: str,
                 batch_size: int, seed: int | None):
        self.model = check_model("model", model)
        self.output = check_output(output)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.tile = tile
        self.height, self.width = x.shape[1], x.shape[2]
        self.n_tiles = n_tiles(self.height, self.width, tile)
        self._logits = find_logits(model) if output == "logit" else None
        self._x = tf.constant(x)
        # The fully replaced image of each sample (mask 0 everywhere): validates and computes the baseline.
        blank = np.zeros(x.shape[:3], np.float32)
        self._baseline = tf.constant(perturb(x, blank, baseline, value=baseline_value, seed=seed))
        image_spec = tf.TensorSpec([None, *x.shape[1:]], tf.float32)
        self._forward = tf.function(self._outputs, input_signature=[image_spec])
        self._rows = tf.function(self._row_scores, input_signature=[
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, self.n_tiles], tf.float32),
            tf.TensorSpec([None], tf.int32)])

    @property
    def pixel_counts(self) -> np.ndarray:
        """Number of pixels in each tile (n_tiles,): tiles of the last row / column may be smaller."""
        return np.bincount(tile_grid(self.height, self.width, self.tile).ravel(), minlength=self.n_tiles)

    def _outputs(self, images):
        if self._logits is None:
            return self.model(images, training=False)
        return class_logits(self.model, images, self._logits, training=False)

    def _row_scores(self, image_index, keep, targets):
        images = tf.gather(self._x, image_index)
        baseline = tf.gather(self._baseline, image_index)
        mask = tiles_to_pixels(keep, self.height, self.width, self.tile)
        outputs = self._outputs(perturb(images, mask, baseline))
        return tf.gather(outputs, targets, axis=1, batch_dims=1)

    def clean_outputs(self) -> np.ndarray:
        """The model's outputs (N, n_classes) on the unperturbed images, in batches."""
        parts = [self._forward(self._x[i:i + self.batch_size]).numpy()
                 for i in range(0, int(self._x.shape[0]), self.batch_size)]
        outputs = np.concatenate(parts, axis=0)
        if outputs.ndim != 2:
            raise ValueError(f"model: expected outputs of shape (N, n_classes), got {outputs.shape}")
        return outputs.astype(np.float64)

    def targets(self, targets, clean: np.ndarray) -> np.ndarray:
        """Integer targets (N,): the given labels / one-hot rows, or the model's prediction when None."""
        checked = as_targets(targets, len(clean), clean.shape[1])
        return clean.argmax(axis=1) if checked is None else checked

    def run(self, n_rows: int, rows: RowFn, *, verbose: int = 0) -> np.ndarray:
        """Target scores (n_rows,) of all rows, ``batch_size`` rows per batched model call."""
        progress = Progress(n_rows, verbose, "model call")
        out = np.empty(n_rows, np.float64)
        for start in range(0, n_rows, self.batch_size):
            stop = min(start + self.batch_size, n_rows)
            image_index, keep, targets = rows(start, stop)
            out[start:stop] = self._rows(tf.constant(image_index, tf.int32), tf.constant(keep, tf.float32),
                                         tf.constant(targets, tf.int32)).numpy()
            progress.update(stop)
        return out
