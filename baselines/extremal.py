"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019): for each requested area a, the smooth mask
of that area whose preserved region maximises the model's score for the target.

    m_a = argmax_m  Phi(m (x) x) - lambda R_a(m)                                   (paper, eq. 6-7)

- Smooth masks (Section 3.3): parameters on a grid of ceil(H / step) x ceil(W / step) cells, each cell
  spreads over its neighbourhood with the kernel k(z) = exp(-2 max(z - 1/2, 0)^2), z = distance / sigma
  (flat out to sigma / 2), pooled by a softmax-weighted max at temperature 1/20 ("smooth max-convolution").
  The mask is computed on a canvas with a margin of sigma pixels around the image and cropped.
- The area constraint (eq. 7) is the ranking loss R_a(m) = mean((sort(vec m) - r_a)^2), r_a = (1 - a) n
  zeros then a n ones, on the padded canvas (TorchRay's choice: margin pixels count towards the area).
- The perturbation is a blur pyramid of L = 8 levels, level l the input blurred with sigma_l = (1 - l /
  (L - 1)) max_blur (zero padding, TorchRay's ``imsmooth``); a mask value m picks level m (L - 1),
  interpolated linearly between the two neighbours (level L - 1 = the input itself).
- Variants: "preserve" (the model sees the kept region), "delete" (it sees the complement; the reward is
  negated) and "dual" (both; reward kept - deleted).
- Optimisation as TorchRay 1.0 does it: 800 SGD steps, lr 0.01, momentum 0.9 with dampening 0.9 (the
  first step takes the raw gradient), parameters clamped to [0, 1] after each step, starting from 1
  (the whole image), lambda = 300 x 1.0035^t, the perturbed batch flipped horizontally on even steps
  (jitter), the reward the model's pre-softmax score of the target (``output="logit"``; "contrastive":
  minus the largest other class). The masks returned are those of the last forward pass.

All images of a call and all their areas are optimised together in one tf.while_loop inside the method's
tf.function: the energy is a sum of independent per-(image, area) terms, so one gradient step updates
every mask exactly as separate runs would. Scores: the sum of the masks over the areas (TorchRay's
attribution benchmark's saliency map); ``area_masks`` returns them one by one.

TorchRay's defaults (step 7, sigma 21, max_blur 20) are for 224-pixel images; on small inputs they make a
5 x 5 grid on a canvas 5 times the image and a blur that wipes it, so by default all three scale with the
image side S: step = max(1, round(7 S / 224)), sigma = 3 step, max_blur = 20 S / 224 (exactly TorchRay's
values at S = 224).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from baselines.base import Baseline
from kernels.image import blur_matrix
from kernels.validation import check_bool, check_choice, check_int, check_positive

#: TorchRay's settings for 224-pixel images and the side they are meant for.
TORCHRAY_STEP, TORCHRAY_SIGMA, TORCHRAY_MAX_BLUR, TORCHRAY_SIDE = 7, 21.0, 20.0, 224
#: Temperature of the smooth max-pooling, the area weight's start and growth, SGD's settings (TorchRay 1.0).
COLDNESS = 20.0
LAMBDA_START, LAMBDA_GROWTH = 300.0, 1.0035
LEARNING_RATE, MOMENTUM = 0.01, 0.9
VARIANTS = ("preserve", "delete", "dual")
REWARDS = ("simple", "contrastive")


class SmoothMask:
    """The smooth mask generator (paper Section 3.3; TorchRay's ``MaskGenerator`` geometry, pixel for pixel).

    ``mask(params)`` maps parameters (K, *grid) in [0, 1] to (cropped (K, H, W), padded (K, *padded_shape)).
    The weight of cell v at output pixel u is k(|u - (margin + step v)| / sigma) for the (2 radius + 1)^2
    cells around u; padding cells outside the grid hold 0.
    """

    def __init__(self, shape, step: int, sigma: float):
        self.shape, self.step, self.sigma = tuple(int(s) for s in shape), int(step), float(sigma)
        self.margin = self.sigma
        self.padding = 1 + math.ceil((self.margin + self.sigma) / self.step)
        self.radius = 1 + math.ceil(self.sigma / self.step)
        taps = 2 * self.radius + 1
        self.grid = tuple(math.ceil(s / self.step) for s in self.shape)
        self.middle = tuple(g + 2 * self.padding - taps + 1 for g in self.grid)
        upsampled = tuple(self.step * m for m in self.middle)
        self.padded_shape = tuple(u - self.step + 1 for u in upsampled)
        self.crop = round(self.margin)
        self.weight = tf.constant(self._weights(taps, upsampled))

    def _weights(self, taps: int, upsampled) -> np.ndarray:
        """(padded H, padded W, taps^2) kernel weights, in float32 as TorchRay computes them."""
        inverse = [np.float32(m) / np.float32(u) for m, u in zip(self.middle, upsampled)]
        uy, ux = np.meshgrid(np.arange(self.padded_shape[0], dtype=np.float32),
                             np.arange(self.padded_shape[1], dtype=np.float32), indexing="ij")
        ky, kx = np.meshgrid(np.arange(taps, dtype=np.float32), np.arange(taps, dtype=np.float32), indexing="ij")
        iy = np.floor(inverse[0] * uy)[..., None] + ky.reshape(-1) - self.padding
        ix = np.floor(inverse[1] * ux)[..., None] + kx.reshape(-1) - self.padding
        delta = np.sqrt((uy[..., None] - (self.margin + self.step * iy)) ** 2
                        + (ux[..., None] - (self.margin + self.step * ix)) ** 2)
        return np.exp(-2.0 * np.maximum(delta / self.sigma - 0.5, 0.0) ** 2).astype(np.float32)

    def __call__(self, params):
        taps = 2 * self.radius + 1
        padded = tf.pad(params[..., None], [[0, 0], [self.padding] * 2, [self.padding] * 2, [0, 0]])
        cells = tf.image.extract_patches(padded, sizes=[1, taps, taps, 1], strides=[1, 1, 1, 1],
                                         rates=[1, 1, 1, 1], padding="VALID")  # (K, *middle, taps^2)
        cells = tf.repeat(tf.repeat(cells, self.step, axis=1), self.step, axis=2)
        weighted = cells[:, :self.padded_shape[0], :self.padded_shape[1]] * self.weight
        mask = tf.reduce_sum(weighted * tf.nn.softmax(COLDNESS * weighted, axis=-1), axis=-1)
        mask = tf.clip_by_value(mask, 0.0, 1.0)
        top, left = self.crop, self.crop
        return mask[:, top:top + self.shape[0], left:left + self.shape[1]], mask


class ExtremalPerturbation(Baseline):
    """Fong, Patrick & Vedaldi's extremal perturbations (module docstring): masks of fixed areas that keep
    (or delete) what the model needs most. Images only.

    Args:
        areas: the mask areas a in (0, 1), a float or a list (default 0.1, TorchRay's; its pointing
            benchmark uses 0.025, 0.05, 0.1, 0.2). Scores are the sum of the areas' masks.
        variant: "preserve" (default), "delete" or "dual".
        steps: SGD iterations (800).
        step, sigma: cell size (pixels, int) and kernel size of the smooth mask; default scaled with the
            image (module docstring; 7 and 21 at 224 px).
        max_blur: the strongest blur's sigma in pixels (default 20 x side / 224); levels: the pyramid's L (8).
        reward: "simple" (the target's score, default) or "contrastive" (minus the largest other score).
        jitter: flip the perturbed batch horizontally on even iterations (default True).
        smooth: blur the returned masks with sigma = smooth x min(H, W) pixels, zero padding (default 0;
            TorchRay's benchmark uses 0.09).
        output: "logit" (default: TorchRay's reward is the network's raw class score) or "probability".
    """

    name = "extremal_perturbation"

    def __init__(self, model, *, areas=0.1, variant: str = "preserve", steps: int = 800, step=None, sigma=None,
                 max_blur=None, levels: int = 8, reward: str = "simple", jitter: bool = True, smooth: float = 0.0,
                 output: str = "logit", **kwargs):
        super().__init__(model, output=output, **kwargs)
        if not self.is_image or len(self.input_shape) != 3:
            raise ValueError(f"model: extremal perturbations need an image model (N, H, W, C), "
                             f"got inputs (N, {self.input_shape})")
        self.areas = check_areas(areas)
        self.variant = check_choice("variant", variant, VARIANTS)
        self.reward = check_choice("reward", reward, REWARDS)
        self.steps = check_int("steps", steps, minimum=1)
        self.levels = check_int("levels", levels, minimum=2)
        self.jitter = check_bool("jitter", jitter)
        check_positive("smooth", smooth, allow_zero=True)
        self.smooth = float(smooth)
        side = max(self.score_shape)
        default_step = max(1, round(TORCHRAY_STEP * side / TORCHRAY_SIDE))
        self.step = check_int("step", default_step if step is None else step, minimum=1)
        if self.step > min(self.score_shape):
            raise ValueError(f"step: expected at most the image side {min(self.score_shape)}, got {self.step}")
        sigma = 3.0 * self.step if sigma is None else sigma
        max_blur = TORCHRAY_MAX_BLUR * side / TORCHRAY_SIDE if max_blur is None else max_blur
        for name, value in (("sigma", sigma), ("max_blur", max_blur)):
            check_positive(name, value)
        self.sigma, self.max_blur = float(sigma), float(max_blur)
        self.generator = SmoothMask(self.score_shape, self.step, self.sigma)
        self._pyramid_rows, self._pyramid_columns = (
            tf.constant(pyramid_matrices(size, self.max_blur, self.levels)) for size in self.score_shape)
        padded = int(np.prod(self.generator.padded_shape))
        self._reference = tf.constant(np.stack([reference_vector(padded, a) for a in self.areas]))
        self.hyper.update(areas=list(self.areas), variant=self.variant, steps=self.steps, step=self.step,
                          sigma=self.sigma, max_blur=self.max_blur, levels=self.levels, reward=self.reward,
                          jitter=self.jitter, smooth=self.smooth)

    def area_masks(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """The masks (N, A, H, W) in [0, 1], one per requested area (``areas`` order)."""
        return self._chunked("_masks_chunk", x, targets, batch_size)

    def _explain_chunk(self, x, targets, index):
        return tf.reduce_sum(self._masks_chunk(x, targets, index), axis=1)

    def _masks_chunk(self, x, targets, index):
        """(c, A, H, W) masks of a chunk: one tf.while_loop of SGD steps over all images and areas."""
        del index  # deterministic: nothing is drawn
        pyramid = self.pyramid(x)
        onehot = self._onehot(targets)
        n_areas = len(self.areas)
        chunk = tf.shape(x)[0]
        params = tf.ones(tf.concat([[chunk * n_areas], self.generator.grid], axis=0), tf.float32)
        cropped = tf.zeros(tf.concat([[chunk * n_areas], self.score_shape], axis=0), tf.float32)

        def step(t, params, velocity, cropped):
            weight = tf.cast(LAMBDA_START * tf.pow(tf.constant(LAMBDA_GROWTH, tf.float64), tf.cast(t, tf.float64)),
                             tf.float32)
            with tf.GradientTape() as tape:
                tape.watch(params)
                cropped, padded = self.generator(params)
                reward = self._reward(pyramid, tf.reshape(cropped, [chunk, n_areas, *self.score_shape]), onehot, t)
                area = ranking_loss(tf.reshape(padded, [chunk, n_areas, -1]), self._reference)
                energy = tf.reduce_sum(reward - weight * area)
            grad = -tape.gradient(energy, params)
            # torch.optim.SGD with dampening: the first step's buffer is the raw gradient.
            velocity = tf.cond(t == 0, lambda: grad, lambda: MOMENTUM * velocity + (1.0 - MOMENTUM) * grad)
            params = tf.clip_by_value(params - LEARNING_RATE * velocity, 0.0, 1.0)
            return t + 1, params, velocity, cropped

        _, _, _, cropped = tf.while_loop(lambda t, *_: t < self.steps, step,
                                         (tf.constant(0), params, tf.zeros_like(params), cropped))
        masks = tf.reshape(cropped, [chunk, n_areas, *self.score_shape])
        if self.smooth > 0:
            sigma = self.smooth * min(self.score_shape)
            rows, columns = (tf.constant(zero_padded_blur(size, sigma)) for size in self.score_shape)
            masks = tf.einsum("ij,cajw,vw->caiv", rows, masks, columns)
        return masks

    def pyramid(self, x):
        """The blur pyramid (c, L, H, W, C) of images x: level 0 the strongest blur, level L - 1 = x."""
        x = tf.cast(x, tf.float32)
        blurred = tf.einsum("lij,cjwk->cliwk", self._pyramid_rows, x)
        return tf.einsum("lvw,cliwk->clivk", self._pyramid_columns, blurred)

    def perturbed(self, pyramid, masks):
        """The images (c, A, H, W, C) that masks (c, A, H, W) pick from the pyramid (linear between levels)."""
        level = masks * (self.levels - 1)
        lower = tf.floor(level)
        fraction = (level - lower)[..., None]
        lower = tf.cast(lower, tf.int32)
        upper = tf.minimum(lower + 1, self.levels - 1)
        pick = ((1.0 - fraction) * tf.one_hot(lower, self.levels) + fraction * tf.one_hot(upper, self.levels))
        return tf.einsum("cahwl,clhwk->cahwk", pick, pyramid)

    def _reward(self, pyramid, masks, onehot, t):
        """The per-(image, area) reward (c, A) of the variant at iteration t."""
        shown = {"preserve": [masks], "delete": [1.0 - masks], "dual": [masks, 1.0 - masks]}[self.variant]
        chunk, n_areas = tf.shape(masks)[0], tf.shape(masks)[1]
        images = tf.stack([self.perturbed(pyramid, m) for m in shown], axis=0)  # (V, c, A, H, W, C)
        rows = tf.reshape(images, [-1, *self.input_shape])
        if self.jitter:
            rows = tf.cond(t % 2 == 0, lambda: tf.reverse(rows, axis=[2]), lambda: rows)
        scores = self._forward(rows)
        targets = tf.reshape(tf.tile(onehot[None, :, None], [len(shown), 1, n_areas, 1]), tf.shape(scores))
        value = tf.reduce_sum(scores * targets, axis=-1)
        if self.reward == "contrastive":
            value -= tf.reduce_max(scores - 1e9 * targets, axis=-1)
        value = tf.reshape(value, [len(shown), chunk, n_areas])
        if self.variant == "delete":
            return -value[0]
        return value[0] - value[1] if self.variant == "dual" else value[0]


def reference_vector(n: int, area: float) -> np.ndarray:
    """r_a of eq. 7 for a mask of n pixels: the first int(n (1 - a)) entries 0, the rest 1 (TorchRay's)."""
    return (np.arange(n) >= int(n * (1 - area))).astype(np.float32)


def ranking_loss(masks, reference):
    """R_a(m) = mean((sort(m) - r_a)^2) (eq. 7, TorchRay's mean) for masks (..., n) and r_a (..., n)."""
    return tf.reduce_mean(tf.square(tf.sort(masks, axis=-1) - reference), axis=-1)


def check_areas(areas) -> tuple[float, ...]:
    """``areas``: a float or a non-empty list of floats, each strictly between 0 and 1."""
    values = [areas] if isinstance(areas, (int, float, np.floating)) and not isinstance(areas, bool) else areas
    try:
        values = [float(a) for a in values]
    except (TypeError, ValueError):
        raise ValueError(f"areas: expected a float or a list of floats in (0, 1), got {areas!r}") from None
    if not values or any(not 0.0 < a < 1.0 for a in values):
        raise ValueError(f"areas: expected a float or a non-empty list of floats in (0, 1), got {areas!r}")
    return tuple(values)


def zero_padded_blur(size: int, sigma: float) -> np.ndarray:
    """TorchRay's ``imsmooth`` along one axis as a matrix: half-width ceil(4 sigma), zero padding."""
    return blur_matrix(size, sigma, 2 * math.ceil(4 * sigma) + 1, padding="zeros")


def pyramid_matrices(size: int, max_blur: float, levels: int) -> np.ndarray:
    """(L, size, size) blur matrices of the pyramid's levels: sigma_l = (1 - l / (L - 1)) max_blur."""
    fractions = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    return np.stack([zero_padded_blur(size, float((1 - f) * max_blur)) if f < 1 else np.eye(size, dtype=np.float32)
                     for f in fractions])

