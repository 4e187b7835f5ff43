"""Applying a binary feature mask to a batch of inputs: the "selected features" of MEED's evaluation.

MEED (Liang et al., KDD 2020, Section 4.0.2) evaluates an explanation through x~_S, "x with unselected
features imputed by zeros": the top-k mask z is binary and x * z are the selected features, x * (1 - z)
the unselected ones. The original code does exactly that for images (x * mask, one mask for all
channels) and, for text, its evaluation approximators mask the word ids so that an unselected word
becomes id 0 (the PAD token). One rule covers both: every unselected feature is set to 0 in the input's
own dtype, which is x * mask for float inputs and "id 0 = PAD" for integer token ids.
"""
from __future__ import annotations

import numpy as np

from eval.protocol import as_inputs, score_shape


def check_mask(x: np.ndarray, mask, *, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a uint8 numpy array after checking it is a binary mask for the batch ``x``.

    Accepted shapes are the per-sample score shape, (N, H, W) for images (N, H, W, C) and (N, L) or
    (N, d) otherwise, or exactly ``x.shape`` (one entry per channel). Anything else raises: a mask of
    the wrong size must not be broadcast silently. Values must be 0 or 1 (bool, int or float).
    """
    if mask is None:
        raise TypeError(f"{name}: expected a binary mask array, got None")
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a binary mask of bools or numbers, got dtype {m.dtype}")
    expected = (x.shape[0],) + score_shape(x.shape[1:])
    if m.shape != expected and m.shape != x.shape:
        raise ValueError(
            f"{name}: expected shape {expected} (one entry per feature of x) or {x.shape}, got {m.shape}"
        )
    binary = (m == 0) | (m == 1)
    if not np.all(binary):
        bad = np.unique(m[~binary])[:3].tolist()
        raise ValueError(f"{name}: expected a binary mask with values in {{0, 1}}, got values such as {bad}")
    return m.astype(np.uint8)


def apply_mask(x, mask) -> np.ndarray:
    """Keep the features of ``x`` where ``mask`` is 1 and set the others to 0, keeping x's dtype.

    ``x`` is a batch: images (N, H, W, C) with a mask (N, H, W) that applies to every channel, token
    ids (N, L) (masked ids become 0 = PAD, the original evaluation approximators' convention), or
    tabular rows (N, d). Returns a new numpy array; ``x`` is not modified.
    """
    x = as_inputs("x", x)
    m = check_mask(x, mask)
    keep = m.astype(bool).reshape(m.shape + (1,) * (x.ndim - m.ndim))
    return np.where(keep, x, np.zeros((), dtype=x.dtype))

