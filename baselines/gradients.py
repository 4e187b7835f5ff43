"""Gradient-based baselines: Grad, saliency, Gradient x Input, Integrated Gradients, SmoothGrad, VarGrad,
guided backpropagation.

All differentiate the target's class score (probability, or logit with ``output="logit"``) with
kernels.gradients.target_gradient, with respect to the input -- or, for token models, the embedding
output. One score per feature: the channel axis of images and the embedding axis of tokens are reduced
as each method's source does (see each class); tabular rows keep one value per entry.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from baselines.base import Baseline, check_seed, row_seeds, stateless_rows

from kernels.validation import check_choice, check_int, check_positive


class Gradient(Baseline):
    """MEED's "Grad" (paper, Appendix B.2): |d y_c / d x|, summed over channels / embedding dimensions."""

    name = "gradient"
    reduction = "sum_abs"
    guided = False

    def _explain_chunk(self, x, targets, index):
        grads = self._gradients(self._features(x), x, self._onehot(targets), guided=self.guided)
        return self._reduce(grads, self.reduction)


class Saliency(Gradient):
    """Simonyan et al. (2014) saliency map: max over channels of |d y_c / d x| (embedding axis for tokens)."""

    name = "saliency"
    reduction = "max_abs"


class GuidedBackprop(Gradient):
    """Springenberg et al. (2015): the gradient with every ReLU back-propagating only positive signals
    where its input was positive; reduced as Grad (sum of absolute values over channels).

    The ReLUs (``activation="relu"`` of any layer, ``ReLU`` layers) are swapped for a tf.custom_gradient
    version while tracing (kernels.hooks.guided_relu); a ReLU-free model gives the plain gradient.
    """

    name = "guided_backprop"
    guided = True


class GradientInput(Baseline):
    """MEED's "GI" (Appendix B.2): |d y_c / d x * x| summed over channels / embedding dims.

    Args:
        signed: the plain Gradient x Input of Shrikumar et al. and the libraries (sum over channels of
            d y_c / d x * x, no absolute value), exact w * x on a linear model.
    """

    name = "gradient_input"

    def __init__(self, model, *, signed: bool = False, **kwargs):
        super().__init__(model, **kwargs)
        if not isinstance(signed, (bool, np.bool_)):
            raise TypeError(f"signed: expected a bool, got {signed!r}")
        self.signed = bool(signed)
        self.hyper["signed"] = self.signed

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        grads = self._gradients(features, x, self._onehot(targets))
        return self._reduce(grads * features, "sum" if self.signed else "sum_abs")


class _Sampled(Baseline):
    """Gradients at many points per input, evaluated in bounded groups (see Baseline._grouped).

    Args:
        internal_batch_size: the most (input, point) rows per batched forward / backward pass.
    """

    def __init__(self, model, *, internal_batch_size: int = 256, **kwargs):
        super().__init__(model, **kwargs)
        self.internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
        self.hyper["internal_batch_size"] = self.internal_batch_size

    def _group_gradients(self, points, x, onehot, size):
        """Gradients at points (c * size, ...) of the chunk x (c, ...), reshaped to (c, size, ...)."""
        rows_x = tf.repeat(x, size, axis=0)
        grads = self._gradients(points, rows_x, tf.repeat(onehot, size, axis=0))
        return tf.reshape(grads, tf.concat([[-1, size], tf.shape(grads)[1:]], axis=0))


class IntegratedGradients(_Sampled):
    """Sundararajan et al. (2017): (x - x') * mean over the path x' + a (x - x') of the gradient.

    ``steps`` points on the straight path from ``baseline`` x' (default zeros; a number or an array
    broadcastable to one input -- for token models, to one embedded sequence (L, E)) to x, combined with
    ``rule``: "midpoint" (default; a = (k + 1/2) / steps, equal weights -- never evaluates the end points)
    or "trapezoid" (a = k / (steps - 1), end points weighted 1/2). Scores are signed and summed over
    channels / embedding dimensions, so they keep completeness: they add up to y_c(x) - y_c(x') up to the
    quadrature error -- exactly on a model linear in x (use ``output="logit"`` for a linear logit).
    """

    name = "integrated_gradients"

    def __init__(self, model, *, steps: int = 50, baseline=0.0, rule: str = "midpoint", **kwargs):
        super().__init__(model, **kwargs)
        self.rule = check_choice("rule", rule, ("midpoint", "trapezoid"))
        self.steps = check_int("steps", steps, minimum=2 if self.rule == "trapezoid" else 1)
        self.baseline = _check_baseline(baseline, self._feature_shape())
        self.hyper.update(steps=self.steps, rule=self.rule,
                          baseline=baseline if np.ndim(baseline) == 0 else "array")

    def _feature_shape(self):
        if self.embedding is None:
            return self.input_shape
        return self.input_shape + (int(self.embedding.output_dim),)

    def _alphas(self, j):
        j = tf.cast(j, tf.float32)
        if self.rule == "midpoint":
            return (j + 0.5) / self.steps, tf.fill(tf.shape(j), 1.0 / self.steps)
        last = float(self.steps - 1)
        ends = tf.logical_or(tf.equal(j, 0.0), tf.equal(j, last))
        return j / last, tf.where(ends, 0.5 / last, 1.0 / last)

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        baseline = tf.broadcast_to(tf.constant(self.baseline), tf.shape(features))
        delta = features - baseline
        onehot = self._onehot(targets)
        expand = [-1] + [1] * (len(features.shape) - 1)

        def body(j, valid, total):
            alphas, weights = self._alphas(j)
            size = tf.shape(j)[0]
            points = tf.repeat(baseline, size, axis=0) + tf.reshape(tf.tile(alphas, [tf.shape(x)[0]]), expand) \
                * tf.repeat(delta, size, axis=0)
            grads = self._group_gradients(points, x, onehot, size)
            weights = tf.where(valid, weights, 0.0)
            return total + tf.einsum("cg...,g->c...", grads, weights)

        mean_grad = self._grouped(self.steps, tf.shape(x)[0], body, tf.zeros_like(features),
                                  self.internal_batch_size)
        return self._reduce(delta * mean_grad, "sum")


class SmoothGrad(_Sampled):
    """Smilkov et al. (2017): the mean gradient over ``n_samples`` noisy copies x + N(0, sigma^2).

    sigma = ``noise_level`` * (max(x) - min(x)) of each input (the paper's "noise level" of 10-20%; for
    token models, of the embedded sequence). The mean gradient is reduced by the sum over channels of its
    absolute value (the authors' saliency library, VisualizeImageGrayscale). Seeded per input: the noise
    of an input depends on ``seed`` and its position in the call, not on batch sizes.
    """

    name = "smoothgrad"
    statistic = "mean"

    def __init__(self, model, *, n_samples: int = 50, noise_level: float = 0.15, seed: int = 0, **kwargs):
        super().__init__(model, **kwargs)
        self.n_samples = check_int("n_samples", n_samples, minimum=1)
        check_positive("noise_level", noise_level, allow_zero=True)
        self.noise_level = float(noise_level)
        self.seed = check_seed(seed)
        self.hyper.update(n_samples=self.n_samples, noise_level=self.noise_level, seed=self.seed)

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        onehot = self._onehot(targets)
        rank = len(features.shape)
        axes = list(range(1, rank))
        sigma = self.noise_level * (tf.reduce_max(features, axis=axes) - tf.reduce_min(features, axis=axes))
        sigma = tf.reshape(sigma, [-1] + [1] * (rank - 1))
        n = self.n_samples

        def body(j, valid, state):
            count, mean, m2 = state
            size = tf.shape(j)[0]
            noise = stateless_rows(row_seeds(self.seed, index, n, j), tf.shape(features)[1:])
            points = tf.repeat(features, size, axis=0) + tf.repeat(sigma, size, axis=0) * noise
            grads = self._group_gradients(points, x, onehot, size)
            # Chan et al.'s parallel update of the running mean and sum of squared deviations.
            w = tf.cast(valid, tf.float32)
            k = tf.reduce_sum(w)
            group_mean = tf.einsum("cg...,g->c...", grads, w) / k
            dev = grads - group_mean[:, None]
            group_m2 = tf.einsum("cg...,g->c...", dev * dev, w)
            total = count + k
            delta = group_mean - mean
            return total, mean + delta * (k / total), m2 + group_m2 + delta * delta * (count * k / total)

        zeros = tf.zeros_like(features)
        _, mean, m2 = self._grouped(n, tf.shape(x)[0], body, (tf.constant(0.0), zeros, zeros),
                                    self.internal_batch_size)
        if self.statistic == "mean":
            return self._reduce(mean, "sum_abs")
        return self._reduce(tf.maximum(m2 / n, 0.0), "sum")


class VarGrad(SmoothGrad):
    """Adebayo et al. (2018): the variance (1/n, population) of the noisy gradients of SmoothGrad's
    sampling, per input entry, summed over channels / embedding dimensions."""

    name = "vargrad"
    statistic = "variance"


def _check_baseline(baseline, feature_shape):
    """IG's baseline as a float32 array broadcastable to one input's (static) feature shape."""
    if baseline is None:
        baseline = 0.0
    arr = np.asarray(baseline)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"baseline: expected a number or a numeric array, got {baseline!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("baseline: expected finite values")
    arr = arr.astype(np.float32)
    try:
        if np.broadcast_shapes(arr.shape, tuple(1 if d is None else d for d in feature_shape)) != tuple(
                1 if d is None else d for d in feature_shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"baseline: expected a number or an array broadcastable to one input's shape "
                         f"{tuple(feature_shape)}, got shape {arr.shape}") from None
    return arr
