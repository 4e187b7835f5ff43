"""The explainer contract every method follows, and the input / target conventions methods and metrics share.

The contract (written down once here; docs/ARCHITECTURE.md shows where it is implemented):

- ``explain(x, targets=None, *, batch_size=None) -> scores``: float32 numpy, one score per feature:
  (N, H, W) for images (N, H, W, C) (channels reduced), (N, L) for token ids, (N, d) for tabular rows,
  (N, T, F) for time series (``score_shape``). ``x``: numpy, a tensor or a finite tf.data.Dataset of x
  or of (x, y, ...) tuples. ``targets``: integer labels (N,), one int for all, one-hot rows (N, C), or
  None for the model's prediction (``as_targets``); the class whose decision is explained.
  ``batch_size``: inputs per call, always (None: the explainer's default); it bounds memory and never
  changes the scores.
- ``select(x, k=None, *, batch_size=None) -> masks``: float32 {0, 1}, the top-k features of each input
  (``score_shape``), for explainers that rank features (all of them here); ``k`` defaults to the
  explainer's own k where it was built with one (amortised explainers select on their own grid).
- ``fit(x, y=None, **options)``: for explainers that learn or estimate something before explaining
  (class attribute ``requires_fit = True``: MEED, L2X / VIBI / CXPlain, IBA's statistics and Readout).
  ``y`` holds true labels where a method needs them (CXPlain, the Readout with ``train_targets="label"``).
- ``export(path, *, k=None) -> str``: a SavedModel whose ``serving_default`` signature takes raw inputs
  ``x`` and returns ``{"scores": ..., "mask": ...}`` (the top-k mask of the scores, k = the explainer's
  own or the argument), loadable with ``tf.saved_model.load`` without this project.
- ``get_config() -> dict``: ``{"method": <registry name>, **hyper-parameters}`` (JSON types), for reports.
- ``output``: every method that reads the model's class scores takes ``output`` in ``OUTPUTS``:
  "probability" (the model's output as it is) or "logit" (the pre-softmax scores).

Metrics accept scores arrays or explainers (``as_scores``), or precomputed binary masks wrapped in
``Selection`` (so that a k-hot array is never mistaken for scores).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import tensorflow as tf

from kernels.topk import topk_mask
from kernels.validation import as_float_tensor, check_choice, check_finite, check_int, check_positive

#: The one vocabulary of the class score a method reads from the model.
OUTPUTS = ("probability", "logit")


@runtime_checkable
class Explainer(Protocol):
    """Anything that scores the features of a batch of inputs for a target class (module docstring)."""

    def explain(self, x, targets=None, *, batch_size=None):  # pragma: no cover - protocol signature
        ...


@dataclass(frozen=True)
class Selection:
    """Precomputed binary masks of an explainer, passed to a metric instead of scores or the explainer.

    ``test`` holds the masks of the metric's inputs x, ``train`` (optional) those of its training inputs
    (metrics that train approximators on masked training data need both).
    """

    test: np.ndarray
    train: np.ndarray | None = None


def check_output(output: str) -> str:
    """``output`` after checking it is one of OUTPUTS ("probability" or "logit")."""
    return check_choice("output", output, OUTPUTS)


def check_batch_size(batch_size, default: int) -> int:
    """``batch_size`` (inputs per call) as an int >= 1; None gives ``default``."""
    return default if batch_size is None else check_int("batch_size", batch_size, minimum=1)


def score_shape(input_shape) -> tuple[int, ...]:
    """Per-sample shape of the scores for inputs of per-sample shape ``input_shape``.

    Images (H, W, C) are scored per pixel (H, W); sequences (L,), time series (T, F) and tabular rows
    (d,) per entry (the modalities of kernels.hooks.modality).
    """
    input_shape = tuple(int(s) for s in input_shape)
    return input_shape[:2] if len(input_shape) == 3 else input_shape


def as_inputs(name: str, x) -> np.ndarray:
    """Materialise inputs given as numpy, a tensor or a finite tf.data.Dataset (of x or of (x, y)) as numpy."""
    if isinstance(x, tf.data.Dataset):
        if x.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(f"{name}: the dataset is infinite (it repeats forever); bound it with "
                             f"dataset.take(n) or pass a finite dataset")
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
    if isinstance(scores_or_explainer, Selection):
        raise TypeError(f"{name}: this metric needs scores or an explainer, not a Selection of binary masks")
    if isinstance(scores_or_explainer, Explainer):
        scores = scores_or_explainer.explain(x, targets=targets, batch_size=batch_size)
    else:
        scores = scores_or_explainer
    scores = np.asarray(as_float_tensor(name, scores, min_rank=2))
    expected = (x.shape[0],) + score_shape(x.shape[1:])
    if scores.shape != expected and scores.shape != x.shape:
        raise ValueError(f"{name}: expected shape {expected} (one score per feature of x), got {scores.shape}")
    return scores.reshape(expected)


def select_masks(explainer_or_scores, x, k: int | None, *, batch_size: int | None = None) -> np.ndarray:
    """Top-k binary masks on ``x``: the explainer's own ``select(x, k)`` (amortised explainers pick on their
    own grid), or the top-k (kernels.topk_mask) of given scores."""
    if isinstance(explainer_or_scores, Selection):
        return np.asarray(explainer_or_scores.test)
    if hasattr(explainer_or_scores, "select"):
        return np.asarray(explainer_or_scores.select(x, k, batch_size=batch_size))
    if k is None:
        raise ValueError("k: expected the number of features to select, got None (the scores come without a k)")
    return topk_mask(as_scores(explainer_or_scores, x, batch_size=batch_size), k).numpy()


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
