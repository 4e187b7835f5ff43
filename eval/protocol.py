"""The Explainer protocol and the input/target conventions every method and metric shares.

DESIGN.md, "Core conventions": an explainer is anything with ``explain(x, targets=None) -> scores``
where scores hold one value per feature: (N, H, W) for images (channels reduced), (N, L) for token
sequences, (N, d) for tabular inputs. Amortised explainers also provide ``select(x, k)`` (a binary
top-k mask). Metrics accept a scores array or an Explainer; ``as_scores`` turns either into checked
numpy scores, so a metric never has to care which one it got.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import tensorflow as tf

from kernels.validation import as_float_tensor, check_finite, check_positive


@runtime_checkable
class Explainer(Protocol):
    """Anything that scores the features of a batch of inputs for a target class."""

    def explain(self, x, targets=None, batch_size=None):  # pragma: no cover - protocol signature
        ...


def score_shape(input_shape) -> tuple[int, ...]:
    """Per-sample shape of the scores for inputs of per-sample shape ``input_shape``.

    Images (H, W, C) are scored per pixel (H, W); sequences (L,) and tabular rows (d,) per entry.
    """
    input_shape = tuple(int(s) for s in input_shape)
    return input_shape[:2] if len(input_shape) == 3 else input_shape


def as_inputs(name: str, x) -> np.ndarray:
    """Materialise inputs given as numpy, a tensor or a tf.data.Dataset (of x or of (x, y)) as numpy."""
    if isinstance(x, tf.data.Dataset):
        parts = [np.asarray(e[0] if isinstance(e, (tuple, list)) else e) for e in x.as_numpy_iterator()]
        if not parts:
            raise ValueError(f"{name}: the dataset is empty")
        x = np.concatenate(parts, axis=0)
    if x is None:
        raise TypeError(f"{name}: expected an array, a tensor or a tf.data.Dataset, got None")
    arr = np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected a batch (rank >= 2), got shape {arr.shape}")
    if arr.dtype.kind in "fc":
        check_finite(name, arr)
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name}: expected numeric inputs, got dtype {arr.dtype}")
    return arr


def as_scores(scores_or_explainer, x, *, targets=None, batch_size=None, name: str = "scores") -> np.ndarray:
    """Return float32 scores of shape (N, *score_shape) for ``x``: given directly, or computed by an Explainer."""
    x = as_inputs("x", x)
    if isinstance(scores_or_explainer, Explainer):
        scores = scores_or_explainer.explain(x, targets=targets, batch_size=batch_size)
    else:
        scores = scores_or_explainer
    scores = np.asarray(as_float_tensor(name, scores, min_rank=2))
    expected = (x.shape[0],) + score_shape(x.shape[1:])
    if scores.shape != expected and scores.shape != x.shape:
        raise ValueError(f"{name}: expected shape {expected} (one score per feature of x), got {scores.shape}")
    return scores.reshape(expected)


def as_targets(targets, n: int, n_classes: int, *, name: str = "targets") -> np.ndarray | None:
    """Integer targets from int labels or one-hot rows; None stays None (= the model's prediction)."""
    if targets is None:
        return None
    t = np.asarray(targets)
    if t.ndim == 2:
        if t.shape != (n, n_classes):
            raise ValueError(f"{name}: expected one-hot rows of shape {(n, n_classes)}, got {t.shape}")
        t = t.argmax(axis=1)
    elif t.ndim == 0:
        t = np.full((n,), int(t))
    if t.shape != (n,):
        raise ValueError(f"{name}: expected {n} integer labels or one-hot rows, got shape {t.shape}")
    if t.dtype.kind == "f":
        if not np.all(np.isfinite(t)) or not np.all(t == np.round(t)):
            raise TypeError(f"{name}: expected integer class labels, got non-integer values")
    elif t.dtype.kind not in "iub":
        raise TypeError(f"{name}: expected integer class labels, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"{name}: expected labels in [0, {n_classes - 1}], got values in [{t.min()}, {t.max()}]")
    return t


def predict_probabilities(model, x, batch_size: int | None = 256) -> np.ndarray:
    """The model's class probabilities for ``x`` as numpy, in batches (no progress bar)."""
    batch_size = 256 if batch_size is None else batch_size
    check_positive("batch_size", batch_size)
    return np.asarray(model.predict(x, batch_size=int(batch_size), verbose=0))


def target_probability(probabilities, targets) -> np.ndarray:
    """p(target | x) for each row: the one scoring quantity explainers and metrics share."""
    probabilities = np.asarray(probabilities)
    return probabilities[np.arange(len(probabilities)), np.asarray(targets)]
