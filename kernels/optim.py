"""Adam as a plain tensor update, for per-sample optimisations inside one tf.function.

Per-sample optimisers (a mask per image: meaningful perturbation, IBA's per-sample bottleneck) keep one
independent parameter tensor per input in a batch and update it in a tf.while_loop. Adam is elementwise,
so one update of the stacked parameters is N independent optimisations; the state (first and second
moments) lives in the loop variables, fresh for every call.
"""
from __future__ import annotations

import math

import tensorflow as tf


def adam_step(param, grad, first, second, step, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """Kingma & Ba (2015), Algorithm 1: returns the new (param, first moment, second moment).

    ``step`` counts from 1. The bias corrections 1 - beta^t are computed as -expm1(t log beta) so that
    1 - 0.999^t keeps its precision in float32 for small t.
    """
    first = beta_1 * first + (1.0 - beta_1) * grad
    second = beta_2 * second + (1.0 - beta_2) * tf.square(grad)
    t = tf.cast(step, param.dtype)
    corrected_first = first / -tf.math.expm1(t * math.log(beta_1))
    corrected_second = second / -tf.math.expm1(t * math.log(beta_2))
    return param - learning_rate * corrected_first / (tf.sqrt(corrected_second) + epsilon), first, second
