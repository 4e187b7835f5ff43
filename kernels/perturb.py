"""Perturbation with a baseline: x * m + b * (1 - m).

The one substitution every method and metric uses: VP's perturbed input (Section 3, baselines blur /
noise / mean), the masking paper's composite inputs with distractor images (eq. 6) and gray baseline,
IBA's degradation with the per-channel mean, RISE-style deletion / insertion (zeros, blurred image),
MEED's selected features x * z and the zero-imputation of its metrics (eval.imputation), the masked
copies of occlusion, RISE, LIME, Kernel SHAP and meaningful perturbation.

- ``blend(x, keep, baseline)``: the tensor op itself, for use inside a caller's tf.function (no checks);
- ``perturb(x, mask, baseline)``: the checked public entry point with the named baselines.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels.image import gaussian_blur
from kernels.seeds import stateless_seed
from kernels.validation import as_float_tensor, check_choice, check_positive

BASELINES = ("zeros", "constant", "mean", "blur", "noise", "distractor")
# Insertion substrate of RISE (Petsiuk et al. 2018), used by the masking paper: Gaussian, kernel 11, sigma 5.
_DEFAULT_BLUR_SIGMA = 5.0
_DEFAULT_BLUR_KERNEL = 11


def perturb(x, mask, baseline="zeros", *, value=0.0, sigma=None, seed=None, distractors=None):
    """Keep ``x`` where ``mask`` is 1 and substitute a baseline where it is 0 (soft masks blend).

    x: images (N, H, W, C) with mask (N, H, W), (N, H, W, 1) or (N, H, W, C), shared over channels when it
    has none; or flat / sequence inputs (N, d) with mask (N, d). Mask values in [0, 1].

    baseline:
      "zeros"       b = 0.
      "constant"    b = ``value``.
      "mean"        per-image per-channel mean (IBA's degradation); per-sample mean for (N, d) inputs.
      "blur"        x blurred by :func:`gaussian_blur` (images only). ``sigma=None``: RISE's substrate,
                    kernel 11 and sigma 5 (reflect padding where RISE pads with zeros); an explicit sigma
                    uses gaussian_blur's default kernel size 2 * round(2 * sigma) + 1.
      "noise"       Gaussian noise of std ``value`` (> 0) around 0; same ``seed``, same noise.
      "distractor"  images from ``distractors``, an array with x's per-sample shape: (N, ...) pairs one
                    with each image; any other count is a pool from which one is drawn per image
                    (with replacement, ``seed``).
      an array      explicit baseline broadcastable to x's shape without changing it, e.g. (C,),
                    (H, W, C) or x's shape.
    """
    x = as_float_tensor("x", x, rank=(2, 4))
    mask = _check_mask(x, mask)
    if distractors is not None and not _is_name(baseline, "distractor"):
        raise ValueError(f"distractors: only used with baseline='distractor', got baseline {baseline!r}")
    if sigma is not None and not _is_name(baseline, "blur"):
        raise ValueError(f"sigma: only used with baseline='blur', got baseline {baseline!r}")
    return _blend(x, mask, _baseline(x, baseline, value, sigma, seed, distractors))


def _is_name(baseline, name: str) -> bool:
    return isinstance(baseline, str) and baseline == name


def _check_mask(x, mask):
    mask = as_float_tensor("mask", mask, min_rank=2)
    shape, xs = tuple(mask.shape), tuple(x.shape)
    allowed = [xs] if len(xs) == 2 else [xs[:-1], xs[:-1] + (1,), xs]
    if shape not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise ValueError(f"mask: expected shape {want} to match x, got {shape}")
    if tf.executing_eagerly():
        values = mask.numpy()
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            raise ValueError(f"mask: expected values in [0, 1], got range [{values.min()}, {values.max()}]")
    return mask[..., None] if len(shape) == 3 else mask


def _baseline(x, baseline, value, sigma, seed, distractors):
    if not isinstance(baseline, str):
        return _explicit_baseline(x, baseline)
    check_choice("baseline", baseline, BASELINES)
    if baseline == "zeros":
        return tf.zeros([], tf.float32)
    if baseline == "constant":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"value: expected a number for baseline='constant', got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"value: expected a finite number for baseline='constant', got {value!r}")
        return tf.constant(value, tf.float32)
    if baseline == "mean":
        return _channel_mean(x)
    if baseline == "blur":
        if x.shape.rank != 4:
            raise ValueError(f"baseline: 'blur' needs images (N, H, W, C), got x of shape {tuple(x.shape)}")
        if sigma is None:
            return gaussian_blur(x, _DEFAULT_BLUR_SIGMA, kernel_size=_DEFAULT_BLUR_KERNEL)
        return gaussian_blur(x, sigma)
    if baseline == "noise":
        check_positive("value", value)
        return _noise_like(x, tf.constant(value, tf.float32), stateless_seed(seed))
    return _distractor_baseline(x, distractors, seed)


def _explicit_baseline(x, baseline):
    baseline = as_float_tensor("baseline", baseline)
    bs, xs = tuple(baseline.shape), tuple(x.shape)
    if len(bs) > len(xs) or any(b != 1 and b != d for b, d in zip(bs[::-1], xs[::-1])):
        raise ValueError(
            f"baseline: expected a name in {sorted(BASELINES)} or an array broadcastable to x's shape "
            f"{xs} without changing it, got shape {bs}"
        )
    return baseline


def _distractor_baseline(x, distractors, seed):
    if distractors is None:
        raise ValueError("distractors: expected an array of images for baseline='distractor', got None")
    distractors = as_float_tensor("distractors", distractors, rank=x.shape.rank)
    if tuple(distractors.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(
            f"distractors: expected per-sample shape {tuple(x.shape[1:])} (that of x), "
            f"got {tuple(distractors.shape[1:])}"
        )
    if distractors.shape[0] == 0:
        raise ValueError("distractors: expected at least one image, got an empty array")
    if distractors.shape[0] is not None and distractors.shape[0] == x.shape[0]:
        return distractors
    return _draw(distractors, tf.shape(x)[0], stateless_seed(seed))


def blend(x, keep, baseline=0.0):
    """``x * keep + baseline * (1 - keep)``: x where ``keep`` is 1, the baseline where it is 0.

    ``keep`` has x's shape, or x's shape without its last axis (one value per pixel for all channels, per
    token for all embedding dimensions), or broadcasts against x. Integer x (token ids) takes a binary
    ``keep`` and gives ``where(keep, x, baseline)`` in x's dtype (a removed token becomes the id
    ``baseline``, 0 = PAD by default). A plain tensor op: callers validate.
    """
    x = tf.convert_to_tensor(x)
    keep = tf.convert_to_tensor(keep)
    if keep.shape.rank is not None and x.shape.rank is not None and keep.shape.rank == x.shape.rank - 1:
        keep = keep[..., None]
    if x.dtype.is_integer:
        return tf.where(tf.cast(keep, tf.bool), x, tf.cast(baseline, x.dtype))
    keep = tf.cast(keep, x.dtype)
    return x * keep + tf.cast(baseline, x.dtype) * (1.0 - keep)


_blend = tf.function(blend)


@tf.function
def _channel_mean(x):
    axes = [1] if x.shape.rank == 2 else [1, 2]
    return tf.reduce_mean(x, axis=axes, keepdims=True)


@tf.function
def _noise_like(x, std, seed):
    if seed is None:
        return std * tf.random.normal(tf.shape(x))
    return std * tf.random.stateless_normal(tf.shape(x), seed)


@tf.function
def _draw(pool, count, seed):
    size = tf.shape(pool)[0]
    if seed is None:
        index = tf.random.uniform([count], maxval=size, dtype=tf.int32)
    else:
        index = tf.random.stateless_uniform([count], seed, maxval=size, dtype=tf.int32)
    return tf.gather(pool, index)
