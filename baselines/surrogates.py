"""Local surrogate models: LIME (Ribeiro et al., KDD 2016) and Kernel SHAP (Lundberg & Lee, NeurIPS 2017).

Both explain an input by a linear model over binary interpretable features z in {0, 1}^F (feature i
present, or replaced by the reference, see baselines.masked), fitted by weighted least squares to the
target's class score on F-feature coalitions. They differ in the coalitions, the weights and the
constraints. The interpretable features:

- images: a square grid of ``patch`` x ``patch`` pixel tiles (kernels.tiles; the last row / column of
  tiles is smaller when ``patch`` does not divide the image). Both papers use superpixels (LIME:
  quickshift); a grid is deterministic, needs no segmentation library and is the same for every image,
  so one batch of masks serves the whole batch of inputs. The default patch, ceil(max(H, W) / 8), gives
  about 8 x 8 = 64 features -- the count of superpixels lime's quickshift typically yields on ImageNet.
  ``patch=1`` scores every pixel (exact known answers on small inputs);
- token sequences: words (one token per feature; ``patch`` groups consecutive tokens), removed by the
  token id ``baseline`` -- lime's text explainer with ``bow=False`` masks words by position too;
- rows: columns (``patch`` groups consecutive columns).

The F-feature coalitions are drawn inside the method's tf.function (stateless ops from ``seed``, shared
by every input of the call), evaluated in groups of at most ``internal_batch_size`` model rows, and the
regressions of a whole chunk are solved at once (kernels.regression). A feature's score is its
coefficient, given to every pixel / entry of its tile.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from baselines.base import check_seed
from baselines.masked import Masked
from kernels.regression import weighted_least_squares
from kernels.tiles import n_tiles, tile_grid
from kernels.validation import check_choice, check_int, check_positive

# Default grid of the image features: about GRID_CELLS x GRID_CELLS tiles.
GRID_CELLS = 8
# Kernel SHAP enumerates every coalition when 2^F - 2 <= n_samples and F <= this (2^F rows to hold).
MAX_ENUMERATED_FEATURES = 16


class _Surrogate(Masked):
    """Interpretable features, coalition evaluation and the per-feature output (module docstring).

    Args:
        patch: side of the interpretable features' tiles (images; default ceil(max(H, W) / 8)) or the
            number of consecutive tokens / columns per feature (default 1).
        seed: seeds the coalitions (shared by every input of a call).
        internal_batch_size: the most (input, coalition) rows per model call.
    """

    def __init__(self, model, *, patch=None, seed: int = 0, internal_batch_size: int = 256, **kwargs):
        super().__init__(model, **kwargs)
        height, width = self._grid_shape
        if patch is None:
            patch = math.ceil(max(height, width) / GRID_CELLS) if self.is_image else 1
        self.patch = check_int("patch", patch, minimum=1)
        limit = min(height, width) if len(self.score_shape) == 2 else width
        if self.patch > limit:
            raise ValueError(f"patch: expected at most {limit} (the input's size {self.score_shape}), "
                             f"got {self.patch}")
        self.n_features = n_tiles(height, width, self.patch)
        self._segments = tf.constant(tile_grid(height, width, self.patch).reshape(-1))
        self.seed = check_seed(seed)
        self.internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
        self.hyper.update(patch=self.patch, seed=self.seed, internal_batch_size=self.internal_batch_size)

    def _to_masks(self, z):
        """Masks (G, *score_shape) of coalitions z (G, F): every pixel / entry takes its tile's value."""
        return tf.reshape(tf.gather(z, self._segments, axis=1), [-1, *self.score_shape])

    def _evaluate(self, z, features, reference, x, onehot):
        """Target class scores (c, S) of the chunk under the S coalitions z (S, F)."""
        n = int(z.shape[0])
        chunk = tf.shape(x)[0]

        def body(j, valid, values):
            masks = self._to_masks(tf.gather(z, tf.minimum(j, n - 1)))
            scores = self._masked_scores(features, reference, x, onehot, masks) * tf.cast(valid, tf.float32)[None]
            return values + tf.matmul(scores, tf.one_hot(j, n, dtype=tf.float32))

        return self._grouped(n, chunk, body, tf.zeros(tf.stack([chunk, n]), tf.float32), self.internal_batch_size)

    def _explain_chunk(self, x, targets, index):
        features = self._features(x)
        reference = self._reference(x)
        onehot = self._onehot(targets)
        coefficients = self._fit(features, reference, x, onehot)  # (c, F)
        return tf.reshape(tf.gather(coefficients, self._segments, axis=1), tf.concat(
            [tf.shape(x)[:1], tf.constant(self.score_shape, tf.int32)], axis=0))

    def _fit(self, features, reference, x, onehot):  # pragma: no cover - abstract
        raise NotImplementedError


class LIME(_Surrogate):
    """LIME (Ribeiro et al. 2016, Section 3.3-3.4) with lime_image's defaults.

    ``n_samples`` coalitions (default 1000): the first keeps every feature, the others keep each one with
    probability 1/2 (lime's ``randint(0, 2)``). Each is weighted by the exponential kernel
    sqrt(exp(-D^2 / kernel_width^2)) of its distance D to the all-ones coalition: ``distance`` "cosine"
    (default; lime's image and text explainers -- the text one's 100 x cosine with width 25 is the same
    kernel) with ``kernel_width`` 0.25, or ``"euclidean"`` (sqrt of the number of removed features) with
    lime tabular's default width 0.75 sqrt(F). The surrogate is lime's default regressor, a ridge
    regression with an unpenalised intercept (``ridge`` alpha = 1, scikit-learn's Ridge), over all
    features (lime_image's ``num_features=100000`` keeps them all). Scores: its coefficients.
    """

    name = "lime"

    def __init__(self, model, *, n_samples: int = 1000, distance: str = "cosine", kernel_width=None,
                 ridge: float = 1.0, **kwargs):
        super().__init__(model, **kwargs)
        self.n_samples = check_int("n_samples", n_samples, minimum=1)
        self.distance = check_choice("distance", distance, ("cosine", "euclidean"))
        if kernel_width is None:
            kernel_width = 0.25 if self.distance == "cosine" else 0.75 * math.sqrt(self.n_features)
        check_positive("kernel_width", kernel_width)
        self.kernel_width = float(kernel_width)
        check_positive("ridge", ridge, allow_zero=True)
        self.ridge = float(ridge)
        self.hyper.update(n_samples=self.n_samples, distance=self.distance, kernel_width=self.kernel_width,
                          ridge=self.ridge)

    def _coalitions(self):
        u = tf.random.stateless_uniform([self.n_samples, self.n_features], tf.constant([self.seed, 0], tf.int64))
        z = tf.cast(u < 0.5, tf.float32)
        return tf.concat([tf.ones([1, self.n_features]), z[1:]], axis=0)

    def coalition_weights(self, z):
        """The kernel weights (S,) of coalitions z (S, F) of 0/1 entries: sqrt(exp(-D^2 / kernel_width^2))."""
        kept = tf.reduce_sum(z, axis=1)
        if self.distance == "cosine":
            # Cosine distance to the all-ones vector; an empty coalition (zero vector) is at distance 1.
            d = tf.where(kept > 0, 1.0 - tf.sqrt(kept / self.n_features), 1.0)
        else:
            d = tf.sqrt(self.n_features - kept)
        return tf.sqrt(tf.exp(-tf.square(d) / self.kernel_width ** 2))

    def _fit(self, features, reference, x, onehot):
        z = self._coalitions()
        values = self._evaluate(z, features, reference, x, onehot)
        coefficients, _ = weighted_least_squares(z, values, self.coalition_weights(z), ridge=self.ridge,
                                                 intercept=True)
        return coefficients


class KernelSHAP(_Surrogate):
    """Kernel SHAP (Lundberg & Lee 2017, Theorem 2): Shapley values of the interpretable features.

    The regression uses the Shapley kernel pi(z) = (F - 1) / (C(F, |z|) |z| (F - |z|)); its infinite
    weights on the empty and full coalitions become exact constraints, as in shap's KernelExplainer: the
    empty coalition fixes the intercept phi_0 = f(reference) (f(reference) is subtracted), the full one
    the efficiency sum_i phi_i = f(x) - f(reference), enforced by eliminating the last feature
    (phi_F = f(x) - f(reference) - sum_{i<F} phi_i), so both hold exactly.

    Coalitions: when 2^F - 2 <= ``n_samples`` (default 2F + 2048, shap's "auto") every non-trivial
    coalition is enumerated with its kernel weight -- exact Shapley values up to float error. Otherwise
    ``n_samples`` coalitions are sampled from the Shapley kernel itself (the size |z| = s with probability
    proportional to (F - 1) / (s (F - s)), then a uniform subset of that size) in complementary pairs
    (z, 1 - z), like shap's paired sampling, and weighted equally (Covert & Lee 2021's estimator). Any
    model additive in the features is recovered exactly either way. ``exact`` says which one runs.
    """

    name = "kernel_shap"

    def __init__(self, model, *, n_samples=None, **kwargs):
        super().__init__(model, **kwargs)
        size = self.n_features
        self.n_samples = 2 * size + 2048 if n_samples is None else check_int("n_samples", n_samples, minimum=1)
        self.exact = size <= MAX_ENUMERATED_FEATURES and 2 ** size - 2 <= self.n_samples
        if self.exact:
            self._enumerated = _all_coalitions(size)
        self.hyper.update(n_samples=self.n_samples)

    def _coalitions(self):
        """Coalitions (S, F) and their regression weights (S,)."""
        size = self.n_features
        if self.exact:
            return tf.constant(self._enumerated[0]), tf.constant(self._enumerated[1])
        pairs = (self.n_samples + 1) // 2
        sizes = np.arange(1, size)
        logits = tf.constant(np.log((size - 1) / (sizes * (size - sizes)))[None], tf.float32)
        s = tf.random.stateless_categorical(logits, pairs, tf.constant([self.seed, 0], tf.int64))[0] + 1
        noise = tf.random.stateless_uniform([pairs, size], tf.constant([self.seed, 1], tf.int64))
        rank = tf.argsort(tf.argsort(noise, axis=1), axis=1)
        z = tf.cast(rank < tf.cast(s[:, None], tf.int32), tf.float32)
        z = tf.reshape(tf.stack([z, 1.0 - z], axis=1), [2 * pairs, size])[:self.n_samples]
        return z, tf.ones([self.n_samples])

    def _fit(self, features, reference, x, onehot):
        ends = self._masked_scores(features, reference, x, onehot, tf.stack(
            [tf.ones(self.score_shape), tf.zeros(self.score_shape)]))
        null = ends[:, 1:]
        total = ends[:, 0] - ends[:, 1]  # f(x) - f(reference): the efficiency constraint
        if self.n_features == 1:
            return total[:, None]
        z, weights = self._coalitions()
        values = self._evaluate(z, features, reference, x, onehot) - null
        design = z[:, :-1] - z[:, -1:]
        adjusted = values - z[None, :, -1] * total[:, None]
        head, _ = weighted_least_squares(design, adjusted, weights)
        return tf.concat([head, (total - tf.reduce_sum(head, axis=1))[:, None]], axis=1)


def _all_coalitions(size: int):
    """Every coalition but the empty and the full one, (2^F - 2, F) float32, and its Shapley kernel weight."""
    codes = np.arange(1, 2 ** size - 1)
    z = ((codes[:, None] >> np.arange(size)[None, :]) & 1).astype(np.float32)
    kept = z.sum(axis=1).astype(int)
    binomial = np.array([math.comb(size, int(k)) for k in range(size + 1)], np.float64)
    weights = (size - 1) / (binomial[kept] * kept * (size - kept))
    return z, weights.astype(np.float32)
