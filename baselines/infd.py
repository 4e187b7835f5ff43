"""INFD: the infidelity-optimal explanation (Yeh et al., NeurIPS 2019), with the noisy baseline.

Infidelity of an explanation phi at x for perturbations I ~ mu (Yeh et al., Definition 2.1):

    INFD(phi, f, x) = E_I [ (I^T phi - (f(x) - f(x - I)))^2 ]

It is a least-squares objective in phi, so its minimiser (Proposition 2.1) is

    phi* = (E[I I^T])^{-1} E[I I^T IG(f, x, I)] = (E[I I^T])^{-1} E[I (f(x) - f(x - I))],

the second form because I^T IG(f, x, I) = f(x) - f(x - I) (the path integral of the gradient from x - I
to x). With the "noisy baseline" (the variant MEED compares with, Appendix B.2) the perturbed point is a
noisy reference, x - I = x0 + eps with eps ~ N(0, sigma^2 Id).

Estimator (the authors' code, ``optimal_nb`` of chihkuanyeh/saliency_evaluation): draw n perturbations,
evaluate f(x) - f(x - I_k), and solve the empirical normal equations
(sum_k I_k I_k^T) phi = sum_k I_k (f(x) - f(x - I_k)) -- the least-squares fit of the sampled infidelity.
On a model that is linear in its features, f(x) - f(x - I) = w^T I for every I, so the estimate is w
exactly (any sigma, any reference) once the perturbations span the features (n >= d); in general it
converges to phi* as n grows. The Gram matrices (d x d per input) are accumulated in float64 over groups
of perturbations in a tf.while_loop and solved by one batched Cholesky factorisation
(kernels.regression); a small ridge relative to their mean diagonal keeps n < d solvable, close to the
authors' pseudo-inverse.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from baselines.base import Baseline, check_seed, row_seeds, stateless_rows
from kernels.regression import normal_equations, solve_normal_equations
from kernels.validation import check_int, check_positive

# INFD solves a d x d system per input (d = input entries, or L x E embedding values for token models):
# beyond this many features the Gram matrices alone would take gigabytes per chunk.
MAX_FEATURES = 8192
#: Bytes of float64 Gram matrices per chunk: ``explain`` splits a larger batch_size into chunks of at most
#: GRAM_BUDGET / (8 d^2) inputs (27 for 784 pixels). Without it a batch of 256 MNIST images held 1.3 GB of
#: Gram matrices per loop iteration, and the while loop's overlapping iterations exhausted 24 GB.
GRAM_BUDGET = 128 * 2 ** 20


class INFD(Baseline):
    """The infidelity-optimal explanation under the noisy baseline (module docstring).

    Args:
        n_samples: perturbations per input (default 20000, the authors' code for MNIST's 784 pixels; use
            several times the feature count d).
        sigma: standard deviation of the noise around the reference (default 0.2, the authors' code).
        baseline: the reference x0: a number (default 0: the zero image with noise, the authors' noisy
            baseline), or "input" (x0 = x: Gaussian perturbations of x itself, whose optimum tends to
            the gradient as sigma -> 0). For token models x0 lives in the embedding space.
        clip: None (default) or (low, high): clip the noisy reference x0 + eps to this range. The
            authors clip to [0, 1], their pixel range.
        ridge: Tikhonov term added to the Gram matrix, relative to its mean diagonal (default 1e-6).
        seed: the noise of each input depends on ``seed`` and its position in the call only.
        internal_batch_size: the most chunk x perturbations rows per model call.

    Scores: phi (one value per input entry, a gradient-like quantity: w on a linear model), summed over
    the channels of an image / the embedding axis of a token (signed, so on a linear model an image
    pixel scores sum_channels w).
    """

    name = "infd"

    def __init__(self, model, *, n_samples: int = 20000, sigma: float = 0.2, baseline=0.0, clip=None,
                 ridge: float = 1e-6, seed: int = 0, internal_batch_size: int = 256, **kwargs):
        super().__init__(model, **kwargs)
        shape = self.input_shape if self.embedding is None else self.input_shape + (int(self.embedding.output_dim),)
        if any(s is None for s in shape):
            raise ValueError(f"model: infd needs a static input shape, got (N, {self.input_shape})")
        self.feature_shape = tuple(int(s) for s in shape)
        self.n_features = int(np.prod(self.feature_shape))
        if self.n_features > MAX_FEATURES:
            raise ValueError(f"model: infd solves a d x d system per input and supports d <= {MAX_FEATURES} "
                             f"features, got d = {self.n_features} (features of shape {self.feature_shape})")
        self.n_samples = check_int("n_samples", n_samples, minimum=1)
        check_positive("sigma", sigma)
        self.sigma = float(sigma)
        self.baseline = _check_reference(baseline)
        self.clip = _check_clip(clip)
        check_positive("ridge", ridge, allow_zero=True)
        self.ridge = float(ridge)
        self.seed = check_seed(seed)
        self.internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
        self.max_chunk = max(1, GRAM_BUDGET // (8 * self.n_features ** 2))
        self.hyper.update(n_samples=self.n_samples, sigma=self.sigma, baseline=self.baseline, clip=self.clip,
                          ridge=self.ridge, seed=self.seed, internal_batch_size=self.internal_batch_size)

    def _target(self, features, x, onehot):
        return tf.reduce_sum(self._class_scores(features, x) * onehot, axis=-1)

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        onehot = self._onehot(targets)
        chunk = tf.shape(x)[0]
        d, n = self.n_features, self.n_samples
        flat = tf.reshape(features, [-1, d])
        center = flat if self.baseline == "input" else tf.fill(tf.shape(flat), tf.constant(self.baseline, tf.float32))
        reference = self._target(features, x, onehot)

        def body(j, valid, state):
            size = tf.shape(j)[0]
            noise = stateless_rows(row_seeds(self.seed, index, n, j), [d])  # (c * G, d)
            points = tf.repeat(center, size, axis=0) + self.sigma * noise
            if self.clip is not None:
                points = tf.clip_by_value(points, *self.clip)
            perturbation = tf.repeat(flat, size, axis=0) - points
            scores = self._target(tf.reshape(points, [-1, *self.feature_shape]), tf.repeat(x, size, axis=0),
                                  tf.repeat(onehot, size, axis=0))
            drops = tf.reshape(tf.repeat(reference, size, axis=0) - scores, [chunk, size])
            weights = tf.broadcast_to(tf.cast(valid, tf.float32)[None], [chunk, size])
            gram, moment = normal_equations(tf.reshape(perturbation, [chunk, size, d]), drops, weights)
            # ensure_shape: the sums keep the loop variables' static shapes (a traced chunk size).
            return tuple(tf.ensure_shape(total + part, total.shape) for total, part in zip(state, (gram, moment)))

        zeros = (tf.zeros(tf.stack([chunk, d, d]), tf.float64), tf.zeros(tf.stack([chunk, d]), tf.float64))
        gram, moment = self._grouped(n, chunk, body, zeros, self.internal_batch_size)
        ridge = self.ridge * tf.linalg.trace(gram) / d
        phi = solve_normal_equations(gram, moment, ridge=ridge)
        return self._reduce(tf.reshape(phi, [-1, *self.feature_shape]), "sum")


def _check_reference(baseline):
    if isinstance(baseline, str):
        if baseline != "input":
            raise ValueError(f"baseline: expected a finite number or 'input', got {baseline!r}")
        return baseline
    if isinstance(baseline, (bool, np.bool_)) or not isinstance(baseline, (int, float, np.integer, np.floating)) \
            or not np.isfinite(baseline):
        raise ValueError(f"baseline: expected a finite number or 'input', got {baseline!r}")
    return float(baseline)


def _check_clip(clip):
    if clip is None:
        return None
    if (not isinstance(clip, (tuple, list)) or len(clip) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in clip)
            or not np.all(np.isfinite(clip)) or not clip[0] < clip[1]):
        raise ValueError(f"clip: expected None or a pair (low, high) of finite numbers with low < high, got {clip!r}")
    return (float(clip[0]), float(clip[1]))
