"""One Adam update of the Per-Sample Bottleneck's alpha, with a hand-derived backward pass.

Autodiff of the Per-Sample loss (iba.per_sample) turns each step into ~350 small ops, and three of
them run over all noisy copies (N, B, h, w, c): the broadcasted product and sum that build Z and the
two reductions of their gradients. On a small tail (the Fashion-MNIST CNN after conv2: max-pool + two
dense layers) those passes, the depthwise blur and its gradient cost 4-6x the tail itself. Here the
step is written out (paper notation, Schulz et al. 2020, Section 3; K = h * w * c elements):

forward   s = sigmoid(alpha), s- = sigmoid(-alpha); lambda = blur(s), 1 - lambda = blur(s-)  (eq. 7)
          Z_b = a * (lambda R + (1 - lambda) mu) + a * (1 - lambda) std * eps_b         (eq. 2)
          L = mean_b CE(tail(Z_b), target) + beta / K * sum capacity                  (eqs. 5, 6)
backward  dL/dZ_b from the tail (the only autodiff: the user's layers)
          D = sum_b dL/dZ_b,  S = sum_b dL/dZ_b * eps_b
          G = a * (D (R - mu) - S std + beta / K * (lambda q^2 - (1 - lambda) + 1 / (1 - lambda)))
              with q = (R - mu) / std: dL/dlambda - dL/d(1 - lambda), the capacity's terms included
          dL/dalpha = s * s- * blur^T(G)   (both blurs are linear, so one adjoint blur serves both)

(a = the active-element mask; with ``relu`` Z is clamped at 0 and dL/dZ_b is masked by Z_b > 0.) The
elementwise parts run as XLA fusions (one pass over the copies for Z, one for D and S), the blurs as
two small matmuls each (kernels.blur_with_matrices); the result equals autodiff of the same loss to
float rounding (tests/test_iba_step.py). XLA compiles each fusion once per image count.
"""
from __future__ import annotations

import tensorflow as tf

from kernels import adam_step, blur_matrix, blur_with_matrices

from iba.bottleneck import ONE_MINUS_LAMBDA_MIN


class PerSampleStep:
    """The forward and backward halves of one Per-Sample step for one bottleneck's settings.

    ``feature_shape`` (h, w, c), ``sigma`` (0 = no blur), ``relu``, Adam's ``betas`` and ``epsilon``
    are fixed at construction; the per-call tensors (R, mu, std, a, eps, beta, lr) are arguments.
    """

    def __init__(self, feature_shape, sigma: float, relu: bool, betas=(0.9, 0.999), epsilon=1e-8):
        self.feature_shape = tuple(int(d) for d in feature_shape)
        h, w, _ = self.feature_shape
        self._blur = None
        if sigma > 0:
            rows, columns = blur_matrix(h, sigma), blur_matrix(w, sigma)
            self._blur = (tf.constant(rows), tf.constant(columns))
            self._adjoint = (tf.constant(rows.T), tf.constant(columns.T))
        self._relu = bool(relu)
        self._betas, self._epsilon = betas, float(epsilon)
        self._elements = float(h * w * self.feature_shape[2])

    def lambdas(self, alpha):
        """(lambda, 1 - lambda), each (N, h, w, c), for alpha (N, h, w, c); 1 - lambda = blur(s-)."""
        both = _sigmoids(alpha)
        if self._blur is not None:
            both = blur_with_matrices(both, *self._blur)
        n = tf.shape(alpha)[0]
        return both[:n], both[n:]

    def noisy_copies(self, lam, one_minus, features, mean, std, active, noise):
        """Z (N, B, h, w, c) for noise (B, h, w, c) shared by the N images."""
        z = _noisy_copies(lam, one_minus, features, mean, std, active, noise, self._relu)
        return tf.ensure_shape(z, (None, None) + self.feature_shape)  # XLA's output: restore the static shape

    def update(self, grad_z, z, noise, alpha, lam, one_minus, features, mean, std, active, first, second,
               step, beta, lr):
        """Adam step number ``step`` (from 1) on alpha from dL/dZ (N, B, h, w, c) -> (alpha, first, second).

        ``z`` is this step's Z (read only with ``relu``), ``beta`` the capacity's weight in the loss.
        """
        g = _mask_gradient(grad_z, z, noise, lam, one_minus, features, mean, std, active, beta / self._elements,
                           self._relu)
        if self._blur is not None:
            g = blur_with_matrices(g, *self._adjoint)
        return _adam(alpha, g, first, second, step, lr, self._betas[0], self._betas[1], self._epsilon)


@tf.function(jit_compile=True)
def _sigmoids(alpha):
    return tf.concat([tf.sigmoid(alpha), tf.sigmoid(-alpha)], axis=0)


@tf.function(jit_compile=True)
def _noisy_copies(lam, one_minus, features, mean, std, active, noise, relu):
    base = (lam * features + one_minus * mean) * active
    scale = one_minus * std * active
    z = base[:, None] + scale[:, None] * noise[None]
    return tf.nn.relu(z) if relu else z


@tf.function(jit_compile=True)
def _mask_gradient(grad_z, z, noise, lam, one_minus, features, mean, std, active, beta_per_element, relu):
    if relu:
        grad_z = tf.where(z > 0, grad_z, 0.0)
    summed = tf.reduce_sum(grad_z, axis=1)
    noise_weighted = tf.reduce_sum(grad_z * noise[None], axis=1)
    q2 = tf.square((features - mean) / std)
    clamped = tf.maximum(one_minus, ONE_MINUS_LAMBDA_MIN)
    # d capacity / d(1 - lambda) = (1 - lambda) - 1 / (1 - lambda); tf.maximum passes the gradient where
    # one_minus >= the clamp, as autodiff of iba.bottleneck.capacity does.
    log_term = tf.where(one_minus >= ONE_MINUS_LAMBDA_MIN, 1.0 / clamped, 0.0)
    return active * (summed * (features - mean) - noise_weighted * std
                     + beta_per_element * (lam * q2 - one_minus + log_term))


@tf.function(jit_compile=True)
def _adam(alpha, blurred_g, first, second, step, lr, beta_1, beta_2, epsilon):
    grad = tf.sigmoid(alpha) * tf.sigmoid(-alpha) * blurred_g
    return adam_step(alpha, grad, first, second, step, lr, beta_1, beta_2, epsilon)
