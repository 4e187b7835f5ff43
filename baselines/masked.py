"""The class scores of masked inputs, shared by RISE, LIME, Kernel SHAP and meaningful perturbation.

A mask m has one value in [0, 1] per scored feature (a pixel of an image -- all its channels --, a token,
a column) and the model sees features * m + reference * (1 - m). The reference is the constant
``baseline`` for images and rows; for token models it is the embedding of the token id ``baseline``
(default 0, the padding id of data.load's text sets), mixed at the embedding output, so a 0/1 mask is
exactly the replacement of tokens by that id and a soft mask interpolates between the two embeddings.
"""
from __future__ import annotations

import tensorflow as tf

from baselines.base import Baseline
from baselines.perturbation import check_baseline_value
from kernels.perturb import blend


class Masked(Baseline):
    """A baseline that evaluates the model on masked copies of its inputs (see the module docstring).

    Args:
        baseline: the value masked-out features take (images, rows), or the token id (token models).
    """

    def __init__(self, model, *, baseline=0.0, **kwargs):
        super().__init__(model, **kwargs)
        if self.score_shape is None or len(self.score_shape) not in (1, 2):
            raise ValueError(f"model: {self.name} needs a static input shape scored per entry of one or two "
                             f"axes (images (H, W, C), sequences (L,), rows (d,)), got (N, {self.input_shape})")
        self.baseline = check_baseline_value(baseline, self.embedding)
        self.hyper["baseline"] = self.baseline

    @property
    def _grid_shape(self) -> tuple[int, int]:
        """The score shape as two axes (1, L) for sequences and rows: one mask generator for all."""
        return tuple(self.score_shape) if len(self.score_shape) == 2 else (1, self.score_shape[0])

    def _reference(self, x):
        """Features of the reference input (same shape as self._features(x))."""
        if self.embedding is None:
            return tf.fill(tf.shape(x), tf.constant(self.baseline, tf.float32))
        return self._features(tf.fill(tf.shape(x), tf.cast(self.baseline, x.dtype)))

    def _mix(self, features, reference, masks):
        """features * m + reference * (1 - m) for masks of the score shape (extra leading axes broadcast)."""
        return blend(features, masks[..., None] if self._has_feature_axis else masks, reference)

    def _masked_scores(self, features, reference, x, onehot, masks):
        """Target class scores (c, G) of the chunk's c inputs under masks (G, *score) or (c, G, *score)."""
        chunk = tf.shape(x)[0]
        if masks.shape.rank == len(self.score_shape) + 1:
            masks = masks[None]
        size = tf.shape(masks)[1]
        mixed = self._mix(features[:, None], reference[:, None], masks)
        rows = tf.reshape(mixed, tf.concat([[-1], tf.shape(features)[1:]], axis=0))
        out = self._class_scores(rows, tf.repeat(x, size, axis=0))
        scores = tf.reduce_sum(out * tf.repeat(onehot, size, axis=0), axis=-1)
        return tf.reshape(scores, [chunk, size])
