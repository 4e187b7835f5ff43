"""SOFT top-k: a differentiable top-k mask by entropic optimal transport (Xie et al., NeurIPS 2020).

VP (Section 3, Appendix A) uses it instead of the Gumbel top-k because it selects (almost exactly) k
features, so the training mask matches the hard top-k mask used at test time.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels.topk import feature_count
from kernels.validation import as_float_tensor, check_k, check_positive

_TINY = float(np.finfo(np.float32).tiny)


def soft_topk(scores, k, *, epsilon=0.1, iterations=200):
    """Relaxed mask of the ``k`` largest scores of each sample, over all non-batch axes.

    Xie et al.'s construction: the n scores of a sample are sources of mass 1/n, two anchors 0 and 1 are
    targets; the cost C_ij = (x_i - anchor_j)^2 is divided by its max over the sample (a constant in the
    backward pass, as in the reference code). The entropic transport plan
    Gamma = exp((f + g - C) / epsilon) comes from ``iterations`` log-domain Sinkhorn updates
    f <- -eps * logsumexp((g - C) / eps over anchors) + eps * log mu,
    g <- -eps * logsumexp((f - C) / eps over scores) + eps * log nu.
    To select the k LARGEST scores, anchor 1 gets mass k/n and anchor 0 mass (n - k)/n (the reference
    gives anchor 0 mass k/n and reads its column, which selects the k smallest); the mask is
    n * Gamma[:, anchor 1], in [0, 1] and summing to k per sample (the last update fixes the column sums).

    ``k``: an int in [1, n] or a scalar tensor (possibly fractional, e.g. a sampled ratio times n inside
    a training step). k = n gives all ones (the empty anchor's mass is floored at the smallest float32).
    Gradients come from unrolled autodiff through the Sinkhorn loop (the reference uses implicit
    differentiation); memory grows as iterations * N * n.
    """
    scores = as_float_tensor("scores", scores, min_rank=2)
    n = feature_count("scores", scores)
    k = _check_k_value(k, n)
    check_positive("epsilon", epsilon)
    if (isinstance(iterations, (bool, np.bool_)) or not isinstance(iterations, (int, np.integer))
            or iterations < 1):
        raise ValueError(f"iterations: expected an int >= 1, got {iterations!r}")
    return _soft_topk(scores, k, tf.constant(epsilon, tf.float32), tf.constant(int(iterations), tf.int32))


def _check_k_value(k, n: int) -> tf.Tensor:
    """``k`` as a float32 scalar: an int checked by check_k, or a scalar tensor (value checked if eager)."""
    if not tf.is_tensor(k):
        return tf.constant(check_k("k", k, n), tf.float32)
    if k.shape.rank != 0 or not (k.dtype.is_integer or k.dtype.is_floating):
        raise TypeError(f"k: expected an int or a numeric scalar tensor, got a tensor of shape {k.shape} "
                        f"and dtype {k.dtype.name}")
    if hasattr(k, "numpy") and not 1 <= float(k.numpy()) <= n:
        raise ValueError(f"k: expected 1 <= k <= {n} (the number of features), got {float(k.numpy())}")
    return tf.cast(k, tf.float32)


@tf.function
def _soft_topk(scores, k, epsilon, iterations):
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    n = tf.cast(tf.shape(flat)[1], tf.float32)
    cost = tf.square(flat[:, :, None] - tf.constant([0.0, 1.0]))  # (N, n, 2)
    cost = cost / tf.stop_gradient(tf.reduce_max(cost, axis=[1, 2], keepdims=True))
    eps_log_mu = epsilon * -tf.math.log(n)
    eps_log_nu = epsilon * tf.math.log(tf.maximum(tf.stack([n - k, k]) / n, _TINY))  # (2,)
    f = tf.zeros_like(flat)
    g = tf.zeros_like(cost[:, 0, :])
    for _ in tf.range(iterations):
        f = -epsilon * tf.reduce_logsumexp((g[:, None, :] - cost) / epsilon, axis=2) + eps_log_mu
        g = -epsilon * tf.reduce_logsumexp((f[:, :, None] - cost) / epsilon, axis=1) + eps_log_nu
    plan = tf.exp((f + g[:, 1:] - cost[:, :, 1]) / epsilon)
    return tf.reshape(n * plan, tf.shape(scores))
