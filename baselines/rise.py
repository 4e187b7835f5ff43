"""RISE, randomized input sampling for explanation (Petsiuk et al., BMVC 2018).

Saliency of pixel u for class c (Section 3.1, eq. 6, Monte Carlo form):

    S(u) = 1 / (N p) * sum_j f_c(x * M_j) M_j(u)

with N random masks M_j from kernels.masks.random_grid_masks: a coarse grid of cells kept with
probability p, upsampled bilinearly and shifted at random (Section 3.2). The paper's ImageNet setting
is N = 4000, a 7 x 7 grid and p = 0.5 -- the defaults here. Scores are the model's probability by
default (RISE uses the softmax output).
"""
from __future__ import annotations

import tensorflow as tf

from baselines.base import check_seed
from baselines.masked import Masked
from kernels.masks import check_probability, grid_mask_geometry, random_grid_masks
from kernels.validation import check_int


class RISE(Masked):
    """RISE (module docstring): ``n_masks`` masks from a ``grid`` x ``grid`` binary grid (images; sequences
    and rows: ``grid`` cells along the axis), kept with probability ``p``.

    Masked-out features take ``baseline`` (default 0, RISE's black image; for token models the token id,
    see baselines.masked). The masks depend on ``seed`` and the mask number only and are shared by every
    input of a call -- as in the paper, where one set of masks explains every image -- so the scores do not
    depend on batch_size or ``internal_batch_size`` (the most chunk x masks rows per model call).
    """

    name = "rise"

    def __init__(self, model, *, n_masks: int = 4000, grid: int = 7, p: float = 0.5, seed: int = 0,
                 internal_batch_size: int = 256, **kwargs):
        super().__init__(model, **kwargs)
        self.n_masks = check_int("n_masks", n_masks, minimum=1)
        self.grid = check_int("grid", grid, minimum=1)
        cells = (self.grid, self.grid) if len(self.score_shape) == 2 else (1, self.grid)
        grid_mask_geometry(self._grid_shape, cells)  # grid larger than the input: a clear error now
        self._cells = cells
        self.p = check_probability("p", p)
        self.seed = check_seed(seed)
        self.internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
        self.hyper.update(n_masks=self.n_masks, grid=self.grid, p=self.p, seed=self.seed,
                          internal_batch_size=self.internal_batch_size)

    def _masks(self, j):
        masks = random_grid_masks(j, seed=self.seed, size=self._grid_shape, grid=self._cells, p=self.p)
        return tf.reshape(masks, [-1, *self.score_shape])

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        reference = self._reference(x)
        onehot = self._onehot(targets)
        chunk = tf.shape(x)[0]

        def body(j, valid, total):
            masks = self._masks(j)
            scores = self._masked_scores(features, reference, x, onehot, masks)
            scores = scores * tf.cast(valid, tf.float32)[None]
            return total + tf.einsum("cg,g...->c...", scores, masks)

        total = tf.zeros(tf.concat([[chunk], tf.constant(self.score_shape, tf.int32)], axis=0), tf.float32)
        total = self._grouped(self.n_masks, chunk, body, total, self.internal_batch_size)
        return total / (self.n_masks * self.p)
