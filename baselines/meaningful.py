"""Meaningful perturbation (Fong & Vedaldi, ICCV 2017): a mask learned per input by gradient descent.

The deletion game (Section 3, eqs. 3-4, with the artefact remedies of Section 4): find the smallest
region whose deletion drops the target's class score,

    min_m  l1 ||1 - m||_1 + tv sum_u ||grad m(u)||_beta^beta + f_c(Phi(x; m)),   m in [0, 1],

where m = 1 keeps a pixel and m = 0 deletes it: Phi(x; m) = m x + (1 - m) x_blur, x_blur a Gaussian
blur of x (the paper's "blur" perturbation). The mask is optimised at a lower resolution and upsampled
bilinearly (the remedy against adversarial, pixel-level masks), with Adam, projected back on [0, 1]
after each step. The preservation game keeps the smallest region that preserves the score:
min l1 ||m||_1 + tv TV_beta(m) - f_c(Phi(x; m)).

All inputs of a chunk are optimised together (independent masks, one Adam state per mask entry, the
summed objective has independent gradients) in a tf.while_loop inside the method's tf.function.
"""
from __future__ import annotations

import math

import tensorflow as tf

from baselines.masked import Masked
from kernels.image import gaussian_blur
from kernels.optim import adam_step
from kernels.validation import check_choice, check_int, check_positive

# The paper's ImageNet setting: a 28 x 28 mask for 224 x 224 images, blur sigma 10 pixels.
PAPER_UPSAMPLE = 8
PAPER_BLUR_SIGMA, PAPER_IMAGE_SIZE = 10.0, 224


class MeaningfulPerturbation(Masked):
    """Fong & Vedaldi's mask optimisation (module docstring). Scores: 1 - mask, the deletion amount, for
    the deletion game (default); the mask itself for ``game="preservation"``.

    Args:
        steps, learning_rate: Adam iterations and step size (default 500 and 0.1).
        l1, tv, tv_beta: the weights lambda_1 = 1e-4 of the area term and lambda_2 = 1e-2 of the total
            variation with exponent beta = 3, the paper's values. Both regularisers act on the
            low-resolution mask (the optimised parameters), summed over its entries.
        upsample: the mask has ceil(size / upsample) cells per axis, upsampled bilinearly (default 8 for
            images, the paper's 28 x 28 mask on 224 x 224 images; 1 for sequences and rows).
        perturbation: "blur" (images only, default for them) or "constant" (the deleted features take
            ``baseline``, default 0; default for sequences and rows, for token models the id ``baseline``).
            ``baseline`` is not used by the blur.
        blur_sigma: the blur's sigma in pixels (default: the paper's 10 on 224-pixel images, scaled to
            the image size: 10 * max(H, W) / 224).
        game: "deletion" (default) or "preservation".
    """

    name = "meaningful_perturbation"

    def __init__(self, model, *, steps: int = 500, learning_rate: float = 0.1, l1: float = 1e-4, tv: float = 1e-2,
                 tv_beta: float = 3.0, upsample=None, perturbation=None, blur_sigma=None, game: str = "deletion",
                 **kwargs):
        super().__init__(model, **kwargs)
        self.steps = check_int("steps", steps, minimum=1)
        for name, value in (("learning_rate", learning_rate), ("tv_beta", tv_beta)):
            check_positive(name, value)
        for name, value in (("l1", l1), ("tv", tv)):
            check_positive(name, value, allow_zero=True)
        self.learning_rate, self.l1, self.tv, self.tv_beta = float(learning_rate), float(l1), float(tv), float(tv_beta)
        size = self._grid_shape
        default_upsample = PAPER_UPSAMPLE if self.is_image else 1
        self.upsample = check_int("upsample", default_upsample if upsample is None else upsample, minimum=1)
        if self.upsample > max(size):
            raise ValueError(f"upsample: expected at most the input size {self.score_shape}, got {self.upsample}")
        self.mask_shape = tuple(math.ceil(s / self.upsample) for s in size)
        choices = ("blur", "constant") if self.is_image else ("constant",)
        self.perturbation = check_choice("perturbation", choices[0] if perturbation is None else perturbation, choices)
        if self.perturbation == "blur":
            if blur_sigma is None:
                blur_sigma = PAPER_BLUR_SIGMA * max(size) / PAPER_IMAGE_SIZE
            check_positive("blur_sigma", blur_sigma)
            radius = round(2 * float(blur_sigma))
            if radius >= min(size):
                raise ValueError(f"blur_sigma: the blur kernel (radius {radius}) must be smaller than the image "
                                 f"{size}, got blur_sigma {blur_sigma!r}")
            self.blur_sigma = float(blur_sigma)
        elif blur_sigma is not None:
            raise ValueError(f"blur_sigma: only used with perturbation='blur', got perturbation {self.perturbation!r}")
        else:
            self.blur_sigma = None
        self.game = check_choice("game", game, ("deletion", "preservation"))
        self.hyper.update(steps=self.steps, learning_rate=self.learning_rate, l1=self.l1, tv=self.tv,
                          tv_beta=self.tv_beta, upsample=self.upsample, perturbation=self.perturbation,
                          blur_sigma=self.blur_sigma, game=self.game)

    def _upsampled(self, mask):
        """(c, h, w) low-resolution masks -> (c, *score_shape)."""
        up = tf.image.resize(mask[..., None], self._grid_shape, method="bilinear")[..., 0]
        return tf.reshape(up, [-1, *self.score_shape])

    def _objective(self, mask, features, reference, x, onehot):
        """Per-input objective (c,) of the game for low-resolution masks (c, h, w)."""
        mixed = self._mix(features, reference, self._upsampled(mask))
        score = tf.reduce_sum(self._class_scores(mixed, x) * onehot, axis=-1)
        area = tf.reduce_sum(tf.abs(1.0 - mask if self.game == "deletion" else mask), axis=[1, 2])
        return self.l1 * area + self.tv * total_variation_beta(mask, self.tv_beta) + (
            score if self.game == "deletion" else -score)

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        if self.perturbation == "blur":
            reference = gaussian_blur(features, self.blur_sigma)
        else:
            reference = self._reference(x)
        onehot = self._onehot(targets)
        start = tf.ones(tf.concat([tf.shape(x)[:1], tf.constant(self.mask_shape, tf.int32)], axis=0), tf.float32)

        def step(t, mask, first, second):
            with tf.GradientTape() as tape:
                tape.watch(mask)
                loss = tf.reduce_sum(self._objective(mask, features, reference, x, onehot))
            grad = tape.gradient(loss, mask)
            mask, first, second = adam_step(mask, grad, first, second, t + 1, self.learning_rate)
            return t + 1, tf.clip_by_value(mask, 0.0, 1.0), first, second

        _, mask, _, _ = tf.while_loop(lambda t, *_: t < self.steps, step,
                                      (tf.constant(0), start, tf.zeros_like(start), tf.zeros_like(start)))
        up = self._upsampled(mask)
        return 1.0 - up if self.game == "deletion" else up


def total_variation_beta(masks, beta: float):
    """sum_u |m(u) - m(u + e_y)|^beta + |m(u) - m(u + e_x)|^beta of masks (c, h, w) -> (c,).

    Fong & Vedaldi's TV_beta regulariser (eq. 3's second term, beta = 3 in the paper); every vertical and
    horizontal neighbour pair counts once. (kernels.image.total_variation is the masking paper's beta = 2
    variant, which leaves out the last row and column.)
    """
    vertical = tf.reduce_sum(tf.abs(masks[:, 1:] - masks[:, :-1]) ** beta, axis=[1, 2])
    horizontal = tf.reduce_sum(tf.abs(masks[:, :, 1:] - masks[:, :, :-1]) ** beta, axis=[1, 2])
    return vertical + horizontal
