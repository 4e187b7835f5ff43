"""Perturbation baselines: occlusion (Zeiler & Fergus, 2014), as the IBA paper runs it (8x8 and 14x14).

The other perturbation methods live in modules of their own: baselines.rise (RISE), baselines.surrogates
(LIME, Kernel SHAP), baselines.meaningful (meaningful perturbation) and baselines.infd (INFD).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from baselines.base import Baseline
from kernels.perturb import blend
from kernels.validation import check_int


class Occlusion(Baseline):
    """The drop of the target's class score when a patch of the input is replaced by ``baseline``.

    Patches of ``patch_size`` (int or one int per spatial axis; default 8x8 for images -- the IBA paper's
    Occlusion-8x8 --, 1 entry for sequences and rows) slide with ``stride`` (default: the patch size, i.e.
    non-overlapping tiles). Corners are 0, stride, 2 stride, ... up to the first patch that reaches the
    border, which is clipped there (no pixel is left uncovered, as kernels.tiles' partial tiles). Each
    feature scores the mean drop y_c(x) - y_c(x with the patch occluded) over the patches covering it.
    An image patch covers all channels. Token models: occluded tokens become the id ``baseline`` (default
    0, the padding id of data.load's text sets).

    The occluded copies of a chunk are built by broadcasting (chunk x patches rows, the patch masks
    computed from the patch indices) and run in groups of at most ``internal_batch_size`` rows inside
    the method's tf.function. The IBA paper scores logits ("the drop in logits per 8x8 tile"): pass
    ``output="logit"`` for that; the default scores the probability.
    """

    name = "occlusion"

    def __init__(self, model, *, patch_size=None, stride=None, baseline=0.0, internal_batch_size: int = 256,
                 **kwargs):
        super().__init__(model, **kwargs)
        if self.score_shape is None:
            raise ValueError(f"model: occlusion needs a static input shape, got (N, {self.input_shape})")
        shape = self.score_shape
        default = 8 if self.is_image else 1
        self.patch_size = _per_axis("patch_size", default if patch_size is None else patch_size, shape)
        self.stride = _per_axis("stride", self.patch_size if stride is None else stride, shape)
        for axis, (p, size) in enumerate(zip(self.patch_size, shape)):
            if p > size:
                raise ValueError(f"patch_size: expected at most the input size {shape} on every axis, "
                                 f"got {self.patch_size}")
        self.grid = tuple(math.ceil((size - p) / s) + 1 for size, p, s in zip(shape, self.patch_size, self.stride))
        self.n_patches = int(np.prod(self.grid))
        self.baseline = check_baseline_value(baseline, self.embedding)
        self.internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
        self._coverage = tf.constant(self._count_coverage())
        self.hyper.update(patch_size=self.patch_size, stride=self.stride, baseline=self.baseline,
                          internal_batch_size=self.internal_batch_size)

    def _count_coverage(self) -> np.ndarray:
        count = np.zeros(self.score_shape, np.float32)
        for corner in np.ndindex(*self.grid):
            window = tuple(slice(c * s, c * s + p) for c, s, p in zip(corner, self.stride, self.patch_size))
            count[window] += 1.0
        return count

    def _masks(self, j):
        """Float masks (G, *score_shape): 1 inside patch j (row-major over the patch grid)."""
        j = tf.cast(j, tf.int32)
        inside = None
        rest = j
        for axis in reversed(range(len(self.score_shape))):
            position = rest % self.grid[axis]
            rest = rest // self.grid[axis]
            start = position * self.stride[axis]
            coords = tf.range(self.score_shape[axis])
            hit = (coords[None, :] >= start[:, None]) & (coords[None, :] < start[:, None] + self.patch_size[axis])
            shape = [-1] + [1] * len(self.score_shape)
            shape[axis + 1] = self.score_shape[axis]
            hit = tf.reshape(hit, shape)
            inside = hit if inside is None else inside & hit
        return tf.cast(inside, tf.float32)

    def _target_scores(self, rows, onehot):
        return tf.reduce_sum(self._forward(rows) * onehot, axis=-1)

    def _explain_chunk(self, x, targets, index):
        onehot = self._onehot(targets)
        reference = self._target_scores(x, onehot)
        chunk = tf.shape(x)[0]

        def body(j, valid, total):
            size = tf.shape(j)[0]
            masks = self._masks(j) * tf.reshape(tf.cast(valid, tf.float32), [-1] + [1] * len(self.score_shape))
            keep = 1.0 - masks[None]  # occluded entries take the baseline (a token id for token models)
            occluded = blend(x[:, None], keep[..., None] if self.is_image else keep, self.baseline)
            rows = tf.reshape(occluded, tf.concat([[-1], tf.shape(x)[1:]], axis=0))
            scores = tf.reshape(self._target_scores(rows, tf.repeat(onehot, size, axis=0)), [chunk, size])
            drops = (reference[:, None] - scores) * tf.cast(valid, tf.float32)[None]
            return total + tf.einsum("cg,g...->c...", drops, masks)

        total = tf.zeros(tf.concat([[chunk], tf.constant(self.score_shape, tf.int32)], axis=0), tf.float32)
        total = self._grouped(self.n_patches, chunk, body, total, self.internal_batch_size)
        return tf.math.divide_no_nan(total, self._coverage)


def _per_axis(name: str, value, shape) -> tuple:
    values = (value,) * len(shape) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        else value
    if not isinstance(values, (tuple, list)) or len(values) != len(shape):
        raise ValueError(f"{name}: expected an int or {len(shape)} ints (one per axis of {shape}), got {value!r}")
    return tuple(check_int(name, int(v) if isinstance(v, np.integer) else v, minimum=1) for v in values)


def check_baseline_value(baseline, embedding):
    if isinstance(baseline, (bool, np.bool_)) or not isinstance(baseline, (int, float, np.integer, np.floating)):
        raise TypeError(f"baseline: expected a number (the value of occluded features), got {baseline!r}")
    if not np.isfinite(baseline):
        raise ValueError(f"baseline: expected a finite number, got {baseline!r}")
    if embedding is None:
        return float(baseline)
    if float(baseline) != int(baseline) or not 0 <= int(baseline) < int(embedding.input_dim):
        raise ValueError(f"baseline: expected a token id in [0, {int(embedding.input_dim) - 1}] for a token model, "
                         f"got {baseline!r}")
    return int(baseline)
