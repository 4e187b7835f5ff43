"""The bottleneck's tensor ops: lambda from alpha, the noisy feature map Z, the capacity (KL) per element.

These are plain TensorFlow functions on whole batches, traced into the Per-Sample optimisation and the
Readout Bottleneck's training step. Notation of the paper (Schulz et al. 2020, Section 3):

- R: the feature map (N, h, w, c); mu, std: its per-element mean and standard deviation (h, w, c);
- lambda = blur(sigmoid(alpha)) in [0, 1] (eq. 7), per element;
- Z = lambda * R + (1 - lambda) * eps, eps = mu + std * N(0, 1) (eq. 2);
- capacity = KL( N(lambda * (R - mu) / std, (1 - lambda)^2) || N(0, 1) ) (eq. 5, the per-element
  information loss, in nats).
"""
from __future__ import annotations

import tensorflow as tf

from kernels import gaussian_blur

#: Lower clamp of (1 - lambda) inside the capacity's logarithm. In exact arithmetic the capacity of an
#: element is finite for every lambda < 1 and grows like -log(1 - lambda); in float32 sigmoid(alpha)
#: rounds to 1 for alpha > ~17, and log(0) would give inf (and NaN gradients). (1 - lambda) is computed
#: as blur(sigmoid(-alpha)) (equal to 1 - blur(sigmoid(alpha)) because the blur's weights sum to 1),
#: which keeps its small values exact, and is clamped at this value, so one element carries at most
#: -log(1e-12) + 0.5 * ((R - mu) / std)^2 ~ 27.6 nats + the signal term. The clamp is never reached in
#: the paper's setting (alpha starts at 5 and moves ~lr per Adam step).
ONE_MINUS_LAMBDA_MIN = 1e-12


def lambdas(alpha, sigma: float):
    """(lambda, 1 - lambda) for alpha (N, h, w, c): lambda = blur(sigmoid(alpha)) per channel.

    ``sigma`` is the Gaussian's standard deviation (0 = no blur); the kernel has 2 * round(2 * sigma)
    + 1 taps with reflect padding (kernels.gaussian_blur, the IBA package's choice). The second value
    is blur(sigmoid(-alpha)), exactly 1 - lambda in real arithmetic but without the cancellation.
    """
    if sigma == 0:
        return tf.sigmoid(alpha), tf.sigmoid(-alpha)
    return gaussian_blur(tf.sigmoid(alpha), sigma), gaussian_blur(tf.sigmoid(-alpha), sigma)


def capacity(features, lam, one_minus_lam, mean, std, active=None):
    """Per-element capacity in nats: KL(N(lam * (R - mu) / std, (1 - lam)^2) || N(0, 1)).

    = -0.5 * (1 + log((1 - lam)^2) - (lam * (R - mu) / std)^2 - (1 - lam)^2), with (1 - lam) clamped at
    ``ONE_MINUS_LAMBDA_MIN`` inside the log only. ``active`` (0/1, broadcastable) zeroes the capacity of
    inactive elements. All arguments broadcast against ``features`` (N, h, w, c).
    """
    normalised = lam * (features - mean) / std
    log_one_minus = tf.math.log(tf.maximum(one_minus_lam, ONE_MINUS_LAMBDA_MIN))
    kl = -0.5 * (1.0 + 2.0 * log_one_minus - tf.square(normalised) - tf.square(one_minus_lam))
    if active is not None:
        kl = kl * active
    return kl


def restrict(features, lam, one_minus_lam, noise, mean, std, active, relu: bool):
    """Z = lam * R + (1 - lam) * (mu + std * noise), elementwise (eq. 2); all arguments broadcast.

    Inactive elements are set to 0; ``relu`` clamps Z at 0 (the paper code's variant for post-ReLU
    feature maps). The Readout Bottleneck calls it with one noise draw per image.
    """
    # Grouped as base + scale * noise: with one noise draw per copy (noisy_features), base and scale are
    # per image and only the last multiply-add runs on every copy (forward and backward).
    base = (lam * features + one_minus_lam * mean) * active
    z = base + (one_minus_lam * std * active) * noise
    return tf.nn.relu(z) if relu else z


def noisy_features(features, lam, one_minus_lam, noise, mean, std, active, relu: bool):
    """Z for each noise copy: (N, h, w, c) features, (B, h, w, c) standard-normal noise -> (N, B, h, w, c).

    The same B noise draws serve every image (the Per-Sample Bottleneck's common random numbers). The
    optimisation itself uses iba.step's fused version; this plain one, with ``lambdas`` and ``capacity``,
    is the reference autodiff is checked against (tests/test_iba_step.py).
    """
    return restrict(features[:, None], lam[:, None], one_minus_lam[:, None], noise[None], mean, std, active, relu)
