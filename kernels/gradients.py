"""Gradients of a model's target score with respect to its input (or an intermediate tensor).

One op for every gradient-based method of the project (MEED's Gradient x Input prior, the gradient
baselines, IBA's comparisons), so they all differentiate the same quantity: the sum over the batch of
``fn(x) * onehot(target)`` — each sample's target output — with respect to x. Plain TF ops, meant to be
called inside the caller's tf.function.
"""
from __future__ import annotations

import tensorflow as tf


def target_gradient(fn, x, targets_onehot):
    """Return (d target_output / d x, outputs) for a batch; ``targets_onehot`` is (N, n_classes)."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = fn(x)
        score = tf.reduce_sum(outputs * tf.cast(targets_onehot, outputs.dtype))
    return tape.gradient(score, x), outputs
