"""Control "explanations" that ignore the model: a seeded random map and a centred Gaussian bump.

Every paper reports a random control (IBA: "Random"; the masking paper: a random Gaussian mask; MEED's
chance level); the masking paper adds "Centered Gaussian", which scores the centre of the image highest
and does well on object-centred data sets. They take the model only to know the input shape, and follow
the same protocol (input checks, batch_size) as the real methods.
"""
from __future__ import annotations

import tensorflow as tf

from baselines.base import Baseline, check_seed, row_seeds, stateless_rows
from kernels.validation import check_choice, check_positive


class _Control(Baseline):
    """A control: the model only tells the input shape (no ``output``: the scores ignore the model).

    Args:
        batch_size: inputs per chunk when ``explain`` gets none.
        verbose: 0 silent; 1 a progress bar when the call is long; 2 always.
    """

    uses_targets = False
    uses_output = False

    def __init__(self, model, *, batch_size: int = 32, verbose: int = 1):
        super().__init__(model, batch_size=batch_size, verbose=verbose)

    def _dynamic_score_shape(self, x):
        return tf.shape(x)[1:3] if self.is_image else tf.shape(x)[1:]


class Random(_Control):
    """Independent scores per feature: U[0, 1) (default ``distribution``) or N(0, 1) with "normal" (the
    masking paper's random Gaussian mask). Seeded per input: the scores of an input depend on ``seed`` and
    its position in the call, not on the batch size."""

    name = "random"

    def __init__(self, model, *, seed: int = 0, distribution: str = "uniform", **kwargs):
        super().__init__(model, **kwargs)
        self.seed = check_seed(seed)
        self.distribution = check_choice("distribution", distribution, ("uniform", "normal"))
        self.hyper.update(seed=self.seed, distribution=self.distribution)

    def _explain_chunk(self, x, targets, index):
        seeds = row_seeds(self.seed, index, 1, tf.zeros([1], tf.int64))
        return stateless_rows(seeds, self._dynamic_score_shape(x), self.distribution)


class CenteredGaussian(_Control):
    """exp(-sum_a (i_a - c_a)^2 / (2 (sigma * size_a)^2)) over the score axes (H, W for images; L or d for
    sequences and rows), with c_a = (size_a - 1) / 2 the centre: 1 at the centre (exactly for odd sizes).
    ``sigma`` is a fraction of each axis' length (default 0.25; the masking paper gives no value).
    Deterministic and the same for every input."""

    name = "centered_gaussian"

    def __init__(self, model, *, sigma: float = 0.25, **kwargs):
        super().__init__(model, **kwargs)
        check_positive("sigma", sigma)
        self.sigma = float(sigma)
        self.hyper["sigma"] = self.sigma

    def _explain_chunk(self, x, targets, index):
        shape = self._dynamic_score_shape(x)
        rank = 2 if self.is_image else len(self.input_shape)
        exponent = 0.0
        for axis in range(rank):
            size = tf.cast(shape[axis], tf.float32)
            coords = tf.range(size) - (size - 1.0) / 2.0
            term = tf.square(coords / (self.sigma * size)) / 2.0
            exponent = exponent + tf.reshape(term, [-1 if a == axis else 1 for a in range(rank)])
        bump = tf.exp(-exponent)
        return tf.tile(bump[None], tf.concat([[tf.shape(x)[0]], tf.ones([rank], tf.int32)], axis=0))
