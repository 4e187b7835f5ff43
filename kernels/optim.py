"""Adam as a plain tensor update, for per-sample optimisations inside one tf.function.

Per-sample optimisers (a mask per image: meaningful perturbation, IBA's per-sample bottleneck) keep one
independent parameter tensor per input in a batch and update it in a tf.while_loop. Adam is elementwise,
so one update of the stacked parameters is N independent optimisations; the state (first and second
moments) lives in the loop variables, fresh for every call.
"""
from __future__ import annotations

import math

import tensorflow as tf

from kernels.validation import check_int, check_positive


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


# ------------------------------------------------------------------------------------------------ L-BFGS

#: Curvature pairs with y . s at or below this are not stored (torch.optim.LBFGS's threshold).
CURVATURE_EPSILON = 1e-10


def lbfgs_iterations(max_iter: int, max_eval=None) -> int:
    """The iterations one ``torch.optim.LBFGS.step()`` without line search makes: ``max_iter``, unless the
    evaluation budget (``max_eval``, default max_iter * 5 // 4) ends it first -- with 1 + n evaluations
    after n iterations that happens for max_iter 2 and 3 (1 and 2 iterations)."""
    max_iter = check_int("max_iter", max_iter, minimum=1)
    max_eval = max_iter * 5 // 4 if max_eval is None else check_int("max_eval", max_eval, minimum=1)
    return min(max_iter, max(1, max_eval - 1))


def lbfgs_minimize(objective, x0, *, max_iter: int = 100, history_size: int = 100, learning_rate: float = 1.0,
                   tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, max_eval=None):
    """Minimise B independent objectives at once with L-BFGS: returns (x (B, ...), steps taken (B,) int32).

    ``objective(x)`` maps a batch x (B, ...) to one value per row (B,), row b depending on x[b] only; the
    gradient of their sum is then every row's own gradient. Each row runs its own L-BFGS -- its own
    history, scaling and stopping -- as one ``torch.optim.LBFGS(lr=learning_rate, max_iter=max_iter,
    history_size=history_size, line_search_fn=None).step()`` would on that row alone:

    - the first direction is -g, its step learning_rate * min(1, 1 / ||g||_1); later steps move by
      learning_rate along the two-loop recursion's direction -H g (Nocedal & Wright, Algorithm 7.4), with
      H0 = (y.s / y.y) I of the newest stored pair (1 before any);
    - a pair (s, y) = (step, change of gradient) is stored only when y.s > 1e-10; when the history is
      full the oldest pair is dropped;
    - a row stops (frozen at its current x, a mask) when max |g| <= tolerance_grad (before any step
      too), when the directional derivative g.d > -tolerance_change (before stepping), or after a step
      when max |step| <= tolerance_change or |f - f_previous| < tolerance_change;
    - no function evaluation after the last step; ``max_eval`` as torch's (:func:`lbfgs_iterations`).

    All rows advance together in one tf.while_loop (one batched evaluation of ``objective`` and its
    gradient per iteration), which ends early once every row has stopped; the history is (m, B, D)
    tensors per pair component, newest last, so the two-loop recursion visits the same index for every
    row (entries a row has not filled are zeros with rho = 0 and change nothing). Works in float32 or
    float64 (``x0``'s dtype); deterministic.
    """
    iterations = lbfgs_iterations(max_iter, max_eval)
    history_size = check_int("history_size", history_size, minimum=1)
    check_positive("learning_rate", learning_rate)
    check_positive("tolerance_grad", tolerance_grad, allow_zero=True)
    check_positive("tolerance_change", tolerance_change, allow_zero=True)
    x0 = tf.convert_to_tensor(x0)
    if not x0.dtype.is_floating:
        raise TypeError(f"x0: expected a float tensor, got dtype {x0.dtype.name}")
    if x0.shape.rank is None or x0.shape.rank < 1:
        raise ValueError(f"x0: expected a batch (B, ...) of at least rank 1, got shape {x0.shape}")
    dtype, shape = x0.dtype, tf.shape(x0)
    flat = tf.reshape(x0, [shape[0], -1])
    m = history_size
    lr, zero = tf.constant(learning_rate, dtype), tf.constant(0.0, dtype)
    per_row = tf.zeros_like(flat[:, 0])  # (B,) with flat's static batch size: fixed loop-variable shapes

    def stacked(values):  # (m, *values.shape) zeros
        return tf.zeros_like(tf.repeat(values[None], m, axis=0))

    def evaluate(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            values = tf.reshape(tf.cast(objective(tf.reshape(x, shape)), dtype), [-1])
            total = tf.reduce_sum(values)
        grad = tape.gradient(total, x)
        return values, tf.zeros_like(x) if grad is None else grad

    def two_loop(q, s_hist, y_hist, rho, h_diag, used):
        """-H g for the stored pairs: the newest ``used`` entries of the history (per row, fewer are zeros)."""
        def backward(j, q, alpha):
            i = m - 1 - j
            a = tf.reduce_sum(s_hist[i] * q, axis=1) * rho[i]
            return j + 1, q - a[:, None] * y_hist[i], tf.tensor_scatter_nd_update(alpha, [[i]], a[None])

        _, q, alpha = tf.while_loop(lambda j, *_: j < used, backward,
                                    (tf.constant(0), q, stacked(per_row)))
        r = q * h_diag[:, None]

        def forward(j, r):
            i = m - used + j
            b = tf.reduce_sum(y_hist[i] * r, axis=1) * rho[i]
            return j + 1, r + (alpha[i] - b)[:, None] * s_hist[i]

        _, r = tf.while_loop(lambda j, _: j < used, forward, (tf.constant(0), r))
        return r

    def body(k, x, active, prev_grad, prev_loss, d, t, s_hist, y_hist, rho, h_diag, count, taken):
        loss, grad = evaluate(x)
        first = tf.equal(k, 0)
        done = tf.reduce_max(tf.abs(grad), axis=1) <= tolerance_grad
        stalled = (tf.reduce_max(tf.abs(d * t[:, None]), axis=1) <= tolerance_change) | (
            tf.abs(loss - prev_loss) < tolerance_change)
        active = active & ~(done | (stalled & ~first))
        # The memory update with the step just taken (not before the first direction).
        y, s = grad - prev_grad, d * t[:, None]
        ys, yy = tf.reduce_sum(y * s, axis=1), tf.reduce_sum(y * y, axis=1)
        store = active & ~first & (ys > CURVATURE_EPSILON)
        keep = store[None, :, None]
        s_hist = tf.where(keep, tf.concat([s_hist[1:], s[None]], axis=0), s_hist)
        y_hist = tf.where(keep, tf.concat([y_hist[1:], y[None]], axis=0), y_hist)
        rho = tf.where(store[None], tf.concat([rho[1:], tf.math.divide_no_nan(tf.ones_like(ys), ys)[None]], 0), rho)
        h_diag = tf.where(store, tf.math.divide_no_nan(ys, yy), h_diag)
        count = tf.where(store, tf.minimum(count + 1, m), count)
        direction = two_loop(-grad, s_hist, y_hist, rho, h_diag, tf.reduce_max(count))
        l1 = tf.reduce_sum(tf.abs(grad), axis=1)
        t = tf.where(first, lr * tf.minimum(tf.ones_like(l1), tf.math.divide_no_nan(tf.ones_like(l1), l1)),
                     per_row + lr)
        active = active & (tf.reduce_sum(grad * direction, axis=1) <= -tolerance_change)
        x = x + tf.where(active[:, None], t[:, None] * direction, zero)
        return (k + 1, x, active, grad, loss, direction, t, s_hist, y_hist, rho, h_diag, count,
                taken + tf.cast(active, tf.int32))

    history, count = stacked(flat), tf.zeros_like(per_row, tf.int32)
    state = (tf.constant(0), flat, tf.ones_like(per_row, tf.bool), tf.zeros_like(flat), per_row,
             tf.zeros_like(flat), per_row, history, history, stacked(per_row), per_row + 1, count, count)
    state = tf.while_loop(lambda k, x, active, *_: (k < iterations) & tf.reduce_any(active), body, state)
    return tf.reshape(state[1], shape), state[-1]
