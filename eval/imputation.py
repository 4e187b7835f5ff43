"""Zero-imputation of the unselected features: the "selected features" x~_S of MEED's evaluation.

MEED (Liang et al., KDD 2020, Section 4.0.2) evaluates an explanation through x~_S, "x with unselected
features imputed by zeros": the top-k mask z is binary and x * z are the selected features, x * (1 - z)
the unselected ones. The original code does exactly that for images (x * mask, one mask for all
channels) and, for text, its evaluation approximators mask the word ids so that an unselected word
becomes id 0 (the PAD token). One rule covers both: every unselected feature is set to 0 in the input's
own dtype (``kernels.blend`` with baseline 0: x * mask for float inputs, "id 0 = PAD" for token ids).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from eval.protocol import as_inputs, score_shape
from kernels.perturb import blend


def binary_values(name: str, mask) -> np.ndarray:
    """``mask`` as a numpy array after checking its dtype is numeric or bool and every value is 0 or 1."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a binary mask of bools or numbers, got dtype {m.dtype}")
    binary = (m == 0) | (m == 1)
    if not np.all(binary):
        bad = np.unique(m[~binary])[:3].tolist()
        raise ValueError(f"{name}: expected a binary mask with values in {{0, 1}}, got values such as {bad}")
    return m


def check_mask(x: np.ndarray, mask, *, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a uint8 numpy array after checking it is a binary mask for the batch ``x``.

    Accepted shapes are the per-sample score shape, (N, H, W) for images (N, H, W, C) and (N, L) or
    (N, d) otherwise, or exactly ``x.shape`` (one entry per channel). Anything else raises: a mask of
    the wrong size must not be broadcast silently. Values must be 0 or 1 (bool, int or float).
    """
    if mask is None:
        raise TypeError(f"{name}: expected a binary mask array, got None")
    expected = (x.shape[0],) + score_shape(x.shape[1:])
    shape = np.shape(mask)
    if shape != expected and shape != x.shape:
        raise ValueError(
            f"{name}: expected shape {expected} (one entry per feature of x) or {x.shape}, got {shape}"
        )
    return binary_values(name, mask).astype(np.uint8)


def zero_impute(x, mask) -> np.ndarray:
    """Keep the features of ``x`` where ``mask`` is 1 and set the others to 0, keeping x's dtype.

    ``x`` is a batch: images (N, H, W, C) with a mask (N, H, W) that applies to every channel, token
    ids (N, L) (masked ids become 0 = PAD, the original evaluation approximators' convention), or
    tabular rows (N, d). Returns a new numpy array; ``x`` is not modified.
    """
    x = as_inputs("x", x)
    m = check_mask(x, mask)
    keep = m.reshape(m.shape + (1,) * (x.ndim - m.ndim))
    return blend(tf.convert_to_tensor(x), tf.convert_to_tensor(keep, tf.float32 if x.dtype.kind == "f" else tf.int32)
                 ).numpy()
