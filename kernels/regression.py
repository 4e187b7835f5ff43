"""Batched weighted least squares (with an optional ridge) by the normal equations.

The surrogate explanations are weighted least-squares fits, one per explained input: LIME (Ribeiro et
al. 2016, eq. 2 with the square loss and an exponential kernel), Kernel SHAP (Lundberg & Lee 2017,
Theorem 2, the Shapley kernel) and the infidelity-optimal explanation (Yeh et al. 2019, Proposition 2.1).
A whole batch is fitted at once: the Gram matrices X^T W X (N, F, F) and the moments X^T W y (N, F)
come from one einsum and are solved with one batched Cholesky factorisation.

The solve runs in float64: the Gram matrix squares the condition number of the design, and float32
would lose the known answers (exact recovery of a linear model) on larger feature counts.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels.validation import as_float_tensor, check_positive

# Added to the diagonal relative to its largest entry, so a rank-deficient Gram matrix (fewer distinct
# samples than features) still factorises; far below float32 resolution, so it never shows in results.
_JITTER = 1e-10


def normal_equations(features, targets, weights=None):
    """Gram matrices X^T W X (N, F, F) and moments X^T W y (N, F), float64.

    features: the designs X, (S, F) shared by all N fits or (N, S, F); targets: y (N, S); weights: None
    (all 1), (S,) shared or (N, S). Sums of several calls are the normal equations of the union of
    their samples, which lets a caller accumulate them over groups of samples in bounded memory.
    """
    x, y, w = _check(features, targets, weights)
    return _normal_equations(x, y, w)


def solve_normal_equations(gram, moment, *, ridge=0.0, penalized=None):
    """The coefficients b (N, F) of (gram + ridge * diag(penalized)) b = moment, float32.

    ridge: a number >= 0, or a tensor (N,) of per-fit ridges; penalized: None (every coefficient) or a
    bool/0-1 vector (F,) saying which coefficients the ridge shrinks (an intercept is usually not).
    """
    gram = tf.convert_to_tensor(gram)
    moment = tf.convert_to_tensor(moment)
    if gram.shape.rank != 3 or moment.shape.rank != 2 or gram.shape[-1] != moment.shape[-1]:
        raise ValueError(f"gram, moment: expected shapes (N, F, F) and (N, F), got {tuple(gram.shape)} "
                         f"and {tuple(moment.shape)}")
    if not tf.is_tensor(ridge):
        check_positive("ridge", ridge, allow_zero=True)
    size = gram.shape[-1]
    penalized = tf.ones([size], tf.float64) if penalized is None else tf.cast(penalized, tf.float64)
    return _solve(tf.cast(gram, tf.float64), tf.cast(moment, tf.float64), tf.cast(ridge, tf.float64), penalized)


def weighted_least_squares(features, targets, weights=None, *, ridge=0.0, intercept=False):
    """argmin_b sum_s w_s (y_s - x_s . b - b0)^2 + ridge ||b||^2 for N fits: (coefficients (N, F), b0 (N,)).

    Shapes as :func:`normal_equations`. With ``intercept`` a constant column is appended and left out
    of the ridge (scikit-learn's Ridge with ``fit_intercept=True``, the regressor of the lime package);
    without it b0 is 0.
    """
    check_positive("ridge", ridge, allow_zero=True)
    if not isinstance(intercept, (bool, np.bool_)):
        raise TypeError(f"intercept: expected a bool, got {intercept!r}")
    x, y, w = _check(features, targets, weights)
    if intercept:
        x = tf.concat([x, tf.ones(tf.concat([tf.shape(x)[:-1], [1]], axis=0), tf.float32)], axis=-1)
    gram, moment = _normal_equations(x, y, w)
    size = int(x.shape[-1])
    penalized = tf.constant([1.0] * (size - 1) + [0.0 if intercept else 1.0], tf.float64)
    coefficients = _solve(gram, moment, tf.constant(float(ridge), tf.float64), penalized)
    if intercept:
        return coefficients[:, :-1], coefficients[:, -1]
    return coefficients, tf.zeros(tf.shape(coefficients)[:1], tf.float32)


def _check(features, targets, weights):
    x = as_float_tensor("features", features, rank=(2, 3))
    y = as_float_tensor("targets", targets, rank=2)
    if x.shape[-2] is not None and y.shape[-1] is not None and x.shape[-2] != y.shape[-1]:
        raise ValueError(f"targets: expected {x.shape[-2]} samples per fit (features has shape "
                         f"{tuple(x.shape)}), got shape {tuple(y.shape)}")
    if x.shape.rank == 3 and None not in (x.shape[0], y.shape[0]) and x.shape[0] != y.shape[0]:
        raise ValueError(f"targets: expected {x.shape[0]} fits (features has shape {tuple(x.shape)}), "
                         f"got shape {tuple(y.shape)}")
    if weights is None:
        return x, y, tf.ones_like(y)
    w = as_float_tensor("weights", weights, rank=(1, 2))
    if w.shape[-1] is not None and y.shape[-1] is not None and w.shape[-1] != y.shape[-1]:
        raise ValueError(f"weights: expected {y.shape[-1]} weights per fit, got shape {tuple(w.shape)}")
    return x, y, w


@tf.function
def _normal_equations(x, y, w):
    x, y = tf.cast(x, tf.float64), tf.cast(y, tf.float64)
    w = tf.broadcast_to(tf.cast(w, tf.float64), tf.shape(y))
    if x.shape.rank == 2:
        return tf.einsum("sf,ns,sg->nfg", x, w, x), tf.einsum("sf,ns->nf", x, w * y)
    return tf.einsum("nsf,ns,nsg->nfg", x, w, x), tf.einsum("nsf,ns->nf", x, w * y)


@tf.function
def _solve(gram, moment, ridge, penalized):
    ridge = tf.reshape(ridge, [-1, 1, 1])
    scale = tf.reduce_max(tf.linalg.diag_part(gram), axis=-1)[:, None, None]
    eye = tf.eye(tf.shape(gram)[-1], dtype=tf.float64)
    system = gram + ridge * tf.linalg.diag(penalized) + _JITTER * tf.maximum(scale, 1e-30) * eye
    solution = tf.linalg.cholesky_solve(tf.linalg.cholesky(system), moment[..., None])[..., 0]
    return tf.cast(solution, tf.float32)
