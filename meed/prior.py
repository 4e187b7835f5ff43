"""The prior / warm start of MEED (paper Section 3.4, eq. 11-13).

A cheap interpretation H (Gradient x Input, "GI") scores every feature; its softmax r is fused with the
explainer's distribution z in log space, weighting the explainer by the epoch number m (eq. 12):

    z~ = softmax( (m * log z + log r) / (m + 1) )

Since z = softmax(logits), ``m * logits`` differs from ``m * log z`` by a per-sample constant, which
softmax (and the Gumbel top-k sampling that follows) ignores, so the fusion works on logits directly,
as the released code does. L_e (eq. 13) pulls z towards the fused z~ with a weight that fades as 1/(m+1).
"""
from __future__ import annotations

import tensorflow as tf

from kernels.gradients import target_gradient


def gradient_input_scores(fn, x, y, *, channel_axis: int | None = -1, patch: int = 1):
    """|d p_c / d x * x| with c = argmax(y): the GI prior scores r before normalisation (ref., "Prior").

    ``fn`` maps x to class probabilities (the black box, or its tail after the embedding for text,
    where x is then the embedding output). Images (N, H, W, C): summed over channels, then max-pooled
    to the explainer's grid when ``patch`` > 1 (ImageNet setting); embeddings (N, L, E): summed over E.
    ``channel_axis=None`` keeps x's shape (tabular rows, time series).
    """
    onehot = tf.one_hot(tf.argmax(y, axis=-1), tf.shape(y)[-1])
    grads, _ = target_gradient(fn, x, onehot)
    scores = tf.abs(grads * x)
    if channel_axis is None:
        return scores
    scores = tf.reduce_sum(scores, axis=channel_axis)
    if patch > 1:
        scores = tf.nn.max_pool2d(scores[..., None], patch, patch, "VALID")[..., 0]
    return scores


def log_prior(scores, *, legacy_sign: bool = False):
    """log r = log softmax of the GI scores over all features of each sample (the paper's r >= 0, sum 1).

    ``legacy_sign`` reproduces the released code: log softmax of **minus** the scores, which favours the
    least salient features (docs/FIDELITY.md).
    """
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    flat = -flat if legacy_sign else flat
    return tf.reshape(tf.nn.log_softmax(flat, axis=-1), tf.shape(scores))


def fuse(logits, log_r, m):
    """Eq. 12 in log space: (m * logits + log r) / (m + 1), one value per feature (unnormalised)."""
    m = tf.cast(m, logits.dtype)
    return (m * logits + log_r) / (m + 1.0)


def prior_loss(fused, logits, m):
    """Eq. 13 with l_e = mean absolute error: mean |softmax(fused) - softmax(logits)| / (m + 1).

    The fused distribution is a target (no gradient through it), as in the released code.
    """
    n = tf.shape(logits)[0]
    z = tf.nn.softmax(tf.reshape(logits, [n, -1]), axis=-1)
    z_tilde = tf.stop_gradient(tf.nn.softmax(tf.reshape(fused, [n, -1]), axis=-1))
    return tf.reduce_mean(tf.abs(z_tilde - z)) / (tf.cast(m, logits.dtype) + 1.0)
