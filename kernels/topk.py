"""Hard top-k masks and the Gumbel-softmax top-k relaxation (L2X / MEED sampling layer).

Both work on the flattened non-batch axes of an (N, ...) array, so one function serves images (N, H, W),
token sequences (N, L) and tabular inputs (N, d). ``feature_count`` (features per sample) is shared by
the other kernels.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels.seeds import replica_draw, stateless_seed
from kernels.validation import as_float_tensor, check_k, check_positive

# Smallest positive normal float32: the lower end of the uniform draws, so that log(u) is finite.
_TINY = float(np.finfo(np.float32).tiny)


def feature_count(name: str, x) -> int:
    """Number of features per sample of ``x`` (N, ...): the product of its non-batch axes (static)."""
    dims = tuple(x.shape[1:])
    if any(d is None for d in dims):
        raise ValueError(f"{name}: expected static non-batch dimensions, got shape {tuple(x.shape)}")
    return int(np.prod(dims, dtype=np.int64))


def topk_mask(scores, k):
    """Binary mask of the ``k`` highest scores of each sample, over all non-batch axes.

    This is the hard selection T_s(m) used to evaluate every method (MEED's FS/FU metrics, the masking
    paper's base metric, VP's top-k curves). Among equal scores the lower flat (row-major) index wins, so
    the mask is deterministic. Returns float32 {0, 1} of the shape of ``scores`` (N, ...) with exactly k
    ones per sample.
    """
    scores = as_float_tensor("scores", scores, min_rank=2)
    k = check_k("k", k, feature_count("scores", scores))
    return _topk_mask(scores, tf.constant(k, tf.int32))


@tf.function
def _topk_mask(scores, k):
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    # tf.math.top_k returns the lower index first among equal values: the tie-breaking rule above.
    _, idx = tf.math.top_k(flat, k=k, sorted=True)
    rows = tf.broadcast_to(tf.range(tf.shape(flat)[0])[:, None], tf.shape(idx))
    mask = tf.scatter_nd(tf.stack([rows, idx], axis=-1), tf.ones_like(idx, tf.float32), tf.shape(flat))
    return tf.reshape(mask, tf.shape(scores))


def gumbel_topk(logits, k, tau, *, seed=None, legacy=False):
    """Gumbel-softmax relaxation of a k-hot selection (L2X, Chen et al. 2018; MEED eq. 5).

    For each of k independent draws, Gumbel noise g = -log(-log u), u ~ U[tiny, 1), is added to the
    logits and softmax((logits + g) / tau) is taken over all d features; the relaxed mask is the
    elementwise max over the k draws (values in [0, 1]). MEED's eq. 5 writes log z with z = softmax of
    the logits; softmax is shift-invariant, so feeding the logits is the same. Fresh noise at each call
    with ``seed=None``; an int or a shape-(2,) integer seed uses the stateless ops (same seed, same mask).

    ``legacy=True`` reproduces the bug of MEED's released image scripts: the softmax is discarded and the
    mask is the max over draws of (logits + g) / tau, unbounded reals.

    Under a tf.distribute strategy a seeded draw is this replica's share of the whole batch's draw
    (kernels.seeds.replica_draw), so a distributed training step samples the masks a single device would.
    """
    logits = as_float_tensor("logits", logits, min_rank=2)
    k = check_k("k", k, feature_count("logits", logits))
    check_positive("tau", tau)
    if not isinstance(legacy, (bool, np.bool_)):
        raise TypeError(f"legacy: expected a bool, got {legacy!r}")
    seed = stateless_seed(seed)
    flat = tf.reshape(logits, [tf.shape(logits)[0], -1])
    shape = tf.stack([tf.shape(flat)[0], k, tf.shape(flat)[1]])
    if seed is None:
        u = tf.random.uniform(shape, minval=_TINY, maxval=1.0)
    else:  # drawn here, in the caller's (replica) context: see kernels.seeds.replica_draw
        u = replica_draw(lambda s, sd: tf.random.stateless_uniform(s, sd, minval=_TINY, maxval=1.0), shape, seed)
    return _gumbel_topk(logits, u, tf.constant(tau, tf.float32), bool(legacy))


@tf.function
def _gumbel_topk(logits, u, tau, legacy):
    flat = tf.reshape(logits, [tf.shape(logits)[0], -1])
    noisy = (flat[:, None, :] - tf.math.log(-tf.math.log(u))) / tau
    draws = noisy if legacy else tf.nn.softmax(noisy, axis=-1)
    return tf.reshape(tf.reduce_max(draws, axis=1), tf.shape(logits))
