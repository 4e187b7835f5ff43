"""Sliced Wasserstein distance between two batches (MEED's L_u for Fashion-MNIST and ImageNet).

MEED (Section 4.0.3, Appendix B) follows Lee et al. 2019 (sliced Wasserstein discrepancy): both batches
are seen as empirical distributions over the batch, projected onto random unit directions, and the 1-D
Wasserstein-1 distance of each projection (sorted samples, mean absolute difference) is averaged.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from kernels.seeds import stateless_seed
from kernels.validation import as_float_tensor, check_same_shape


def projection_directions(n_features: int, n_projections: int, *, seed=None) -> tf.Tensor:
    """Unit directions (n_features, n_projections) on which the batches are projected.

    For two features (MEED's two-class outputs, as in the original code): ``n_projections`` angles evenly
    spaced on the half circle [0, pi), rotated by one uniform random angle (a random 2-D rotation). A
    direction and its opposite give the same 1-D distance, so the half circle covers every direction.
    Otherwise: Gaussian vectors normalised to unit length (uniform on the sphere). Fresh directions at
    each call with ``seed=None``; the same int or shape-(2,) seed gives the same directions.
    """
    _check_count("n_features", n_features)
    _check_count("n_projections", n_projections)
    return _directions(int(n_features), int(n_projections), stateless_seed(seed))


def sliced_wasserstein(p, q, n_projections, *, seed=None):
    """Scalar sliced Wasserstein-1 distance between the batches ``p`` and ``q``, both (B, C).

    The distance is between the two batch distributions (not per sample): it is 0 for identical
    batches, symmetric, and unchanged by reordering either batch. Directions come from
    :func:`projection_directions` with the same ``seed``.
    """
    p = as_float_tensor("p", p, rank=2)
    q = as_float_tensor("q", q, rank=2)
    check_same_shape("p", p, "q", q)
    if p.shape[1] is None:
        raise ValueError(f"p: expected a static number of columns, got shape {tuple(p.shape)}")
    directions = projection_directions(p.shape[1], n_projections, seed=seed)
    return _sliced_wasserstein(p, q, directions)


def _check_count(name: str, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


@tf.function
def _directions(n_features, n_projections, seed):
    if n_features == 2:
        if seed is None:
            offset = tf.random.uniform([], maxval=2.0 * math.pi)
        else:
            offset = tf.random.stateless_uniform([], seed, maxval=2.0 * math.pi)
        angles = offset + tf.range(n_projections, dtype=tf.float32) * (math.pi / n_projections)
        return tf.stack([tf.cos(angles), tf.sin(angles)])
    shape = [n_features, n_projections]
    gauss = tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed)
    return gauss / tf.norm(gauss, axis=0, keepdims=True)


@tf.function
def _sliced_wasserstein(p, q, directions):
    proj_p = tf.sort(tf.matmul(p, directions), axis=0)
    proj_q = tf.sort(tf.matmul(q, directions), axis=0)
    return tf.reduce_mean(tf.abs(proj_p - proj_q))
