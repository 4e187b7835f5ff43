"""Perturbation curves: top-k and low-k substitution and the area between them (VP, Section 4.2.3, Table 3,
Figure 4; after Samek et al. 2016 and Petsiuk et al. 2018).

For each sample the pixels are ranked by the map. The top-k curve is the classifier's output change after
the largest k% of the attributions are replaced by gray, the low-k curve the change after the smallest k%
are, at k = 0, 10, ..., 100 %. A faithful map changes the output much in top-k and little in low-k; VP
reports "the area between the two plots" and calls a method better "when the area is bigger". Here:

- area = integral over k in [0, 1] of (top-k curve - low-k curve), trapezoidal rule over the levels:
  **signed**, so that higher is better (a map ranking the pixels backwards scores below 0; a constant
  map exactly 0, below). Per-sample areas average to the area of the mean curves;
- three output changes (the paper's Table 3 columns): ``"probability"`` p_c(x) - p_c(x~) (the model's
  output as it is, for the explained class c), ``"logit"`` z_c(x) - z_c(x~) (pre-softmax scores found
  by ``kernels.hooks.find_logits``), ``"kl"`` KL(p(x) || p(x~)) = sum_j p_j log(p_j / p~_j) with the
  probabilities floored at float32's smallest normal number (1.2e-38) so that log 0 never occurs;
- c is ``targets`` (the ground-truth class in the paper; None: the model's prediction on x);
- gray: every channel of a removed pixel takes ``gray`` = 0.5, mid-gray of inputs in [0, 1]; pass the
  gray of the model's input space otherwise (e.g. 0 for inputs in [-1, 1], or a per-channel array);
  the substitution is ``kernels.perturb.blend``;
- k% of P pixels is round(k P) pixels, halves up (floor(k P + 0.5)); ties between scores are broken by
  pixel index (row-major, lower first) in both orders (``eval.degradation.removal_positions``), so a
  constant map removes the same pixels in both curves;
- batched: the clean image and all 2 x len(levels) perturbed images of a chunk of samples go through
  the model in one call (``batch_size`` images per call at most, at least one sample per call).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import tensorflow as tf

from eval.degradation import removal_positions
from eval.metrics import Metric, MetricResult
from eval.progress import Progress
from eval.protocol import as_targets, predict_probabilities
from eval.report import Column
from eval.tile_perturbation import check_images, image_scores
from kernels.hooks import capture, check_model, class_logits, find_logits
from kernels.perturb import blend
from kernels.validation import as_float_tensor, check_choice, check_int

KINDS = ("probability", "logit", "kl")
#: How the paper's Table 3 names the output changes.
KIND_LABELS = {"probability": "probability difference", "logit": "logit difference", "kl": "KL divergence"}
#: k = 0, 10, ..., 100 %.
DEFAULT_LEVELS = tuple(np.round(np.linspace(0.0, 1.0, 11), 10))
GRAY = 0.5
_TINY = float(np.finfo(np.float32).tiny)


def check_levels(levels) -> np.ndarray:
    """``levels`` as a float64 (L,) array of shares of pixels in [0, 1], strictly increasing, L >= 2."""
    values = np.asarray(DEFAULT_LEVELS if levels is None else levels)
    if values.ndim != 1 or values.size < 2 or values.dtype.kind not in "iuf":
        raise ValueError(f"levels: expected at least two shares of pixels k in [0, 1], got {levels!r}")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"levels: expected shares of pixels k in [0, 1], got values in [{values.min()}, "
                         f"{values.max()}]")
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"levels: expected strictly increasing shares of pixels, got {values.tolist()}")
    return values


def removal_counts(levels: np.ndarray, n_pixels: int) -> np.ndarray:
    """Pixels removed at each level: floor(k * n_pixels + 0.5) (int64)."""
    return np.floor(np.asarray(levels, np.float64) * int(n_pixels) + 0.5).astype(np.int64)


def check_kinds(kinds) -> tuple[str, ...]:
    """Output-change kinds (a name or a list of names of KINDS), without duplicates, in order."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds:
        raise ValueError(f"kinds: expected at least one of {list(KINDS)}, got none")
    return tuple(dict.fromkeys(check_choice("kinds", kind, KINDS) for kind in kinds))


def check_gray(gray, channels: int) -> np.ndarray:
    """``gray`` as float32: a number or one value per channel (``channels``)."""
    value = np.asarray(as_float_tensor("gray", gray))
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, channels)):
        raise ValueError(f"gray: expected a number or one value per channel ({channels}), got shape {value.shape}")
    return value.astype(np.float32)


@dataclass(frozen=True, eq=False)
class PerturbationResult:
    """Top-k / low-k curves and the areas between them, per output-change kind (``float(result)``: the first
    kind's area).

    ``levels`` (L,) the shares k; ``counts`` (L,) the pixels removed; for each kind: ``top[kind]`` /
    ``low[kind]`` (L,) the mean curves, ``area[kind]`` their signed area (higher is better), ``area_std[kind]``
    the sample std of the per-sample areas; ``per_sample_top`` / ``per_sample_low`` (N, L) and
    ``per_sample_area`` (N,) behind them; ``targets`` (N,) the explained classes.
    """

    levels: np.ndarray
    counts: np.ndarray
    kinds: tuple
    top: dict
    low: dict
    area: dict
    area_std: dict
    per_sample_top: dict
    per_sample_low: dict
    per_sample_area: dict
    targets: np.ndarray
    gray: object

    def __float__(self) -> float:
        return float(self.area[self.kinds[0]])

    def to_dict(self) -> dict[str, object]:
        """The mean curves (for Figure 4) and the areas with the settings, for report.json."""
        return {
            "levels": self.levels.tolist(), "counts": self.counts.tolist(),
            "area": dict(self.area), "area_std": dict(self.area_std),
            "top": {kind: self.top[kind].tolist() for kind in self.kinds},
            "low": {kind: self.low[kind].tolist() for kind in self.kinds},
            "n_images": int(len(self.targets)),
            "gray": self.gray.tolist() if isinstance(self.gray, np.ndarray) else self.gray,
        }


def _changes(kind, clean_p, clean_z, p, z, targets):
    """(B, M) output change of the perturbed outputs p, z (B, M, K) from the clean ones (B, K)."""
    rows = np.arange(len(targets))
    if kind == "probability":
        return clean_p[rows, targets][:, None] - p[rows, :, targets]
    if kind == "logit":
        return clean_z[rows, targets][:, None] - z[rows, :, targets]
    reference = np.maximum(clean_p, _TINY)[:, None, :]
    return np.sum(reference * (np.log(reference) - np.log(np.maximum(p, _TINY))), axis=-1)


def perturbation_curves(model, x, scores, targets=None, *, levels=None, kinds=KINDS, gray=GRAY,
                        batch_size: int = 256, verbose: int = 0) -> PerturbationResult:
    """VP's perturbation metric (Table 3) and its curves (Figure 4); module docstring for every choice.

    Args:
        model: a Keras classifier with one input and one output (N, n_classes); ``"logit"`` needs its
            pre-softmax scores (a layer "logits" or a final softmax).
        x: images (N, H, W, C).
        scores: maps (N, H, W) ranking the pixels, or an Explainer (called with the resolved targets).
        targets: the class c (labels (N,), one-hot rows or one int); None: the model's prediction.
        levels: shares k of removed pixels, strictly increasing in [0, 1] (default 0, 0.1, ..., 1).
        kinds: output changes to compute, from "probability", "logit", "kl" (default all three).
        gray: the substitute value (a number or one per channel), 0.5 by default.
        batch_size: images per model call (the clean and the 2 L perturbed images of a sample are never
            split); does not change the result.
        verbose: 1 shows a progress bar over the model calls.
    """
    model = check_model("model", model)
    x = check_images(x)
    levels = check_levels(levels)
    kinds = check_kinds(kinds)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    n, height, width, channels = x.shape
    gray = check_gray(gray, channels)
    where = find_logits(model) if "logit" in kinds else None
    n_classes = int(model.outputs[0].shape[-1])
    given = as_targets(targets, n, n_classes)
    counts = removal_counts(levels, height * width)
    per_image = 1 + 2 * len(levels)
    chunk = max(1, batch_size // per_image)

    def outputs(images):
        if where is None:
            return model(images, training=False), tf.zeros([tf.shape(images)[0], n_classes])
        layer, mode = where
        if mode == "activation":
            return model(images, training=False), class_logits(model, images, where, training=False)
        with capture(layer, mode) as recorder:
            probabilities = model(images, training=False)
        return probabilities, recorder.value

    @tf.function(reduce_retracing=True)
    def forward(images, positions):
        # keep (B, 2, L, P): a pixel stays while fewer than its position's count of pixels are removed.
        keep = positions[:, :, None, :] >= tf.constant(counts, tf.int32)[None, None, :, None]
        keep = tf.reshape(tf.cast(keep, tf.float32), [-1, height, width])
        perturbed = blend(tf.repeat(images, 2 * len(levels), axis=0), keep, tf.constant(gray))
        return outputs(tf.concat([images, perturbed], axis=0))

    resolved = predict_probabilities(model, x, batch_size).argmax(axis=1) if given is None else given
    maps = image_scores(scores, x, resolved, batch_size)
    positions = removal_positions(maps.reshape(n, -1)).astype(np.int32)
    top = {kind: np.empty((n, len(levels))) for kind in kinds}
    low = {kind: np.empty((n, len(levels))) for kind in kinds}
    progress = Progress(n, verbose, "sample")
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        b = stop - start
        p, z = (np.asarray(t, np.float64)
                for t in forward(tf.constant(x[start:stop]), tf.constant(positions[start:stop])))
        if p.ndim != 2:
            raise ValueError(f"model: expected outputs of shape (N, n_classes), got {p.shape}")
        shape = (b, 2 * len(levels), n_classes)
        for kind in kinds:
            change = _changes(kind, p[:b], z[:b], p[b:].reshape(shape), z[b:].reshape(shape), resolved[start:stop])
            top[kind][start:stop], low[kind][start:stop] = change[:, :len(levels)], change[:, len(levels):]
        progress.update(stop)
    per_sample_area = {kind: np.trapezoid(top[kind] - low[kind], levels, axis=1) for kind in kinds}
    return PerturbationResult(
        levels=levels, counts=counts, kinds=kinds, top={kind: top[kind].mean(axis=0) for kind in kinds},
        low={kind: low[kind].mean(axis=0) for kind in kinds},
        area={kind: float(per_sample_area[kind].mean()) for kind in kinds},
        area_std={kind: float(per_sample_area[kind].std(ddof=1)) if n > 1 else 0.0 for kind in kinds},
        per_sample_top=top, per_sample_low=low, per_sample_area=per_sample_area, targets=resolved,
        gray=float(gray) if gray.ndim == 0 else gray)


class PerturbationCurves(Metric):
    """VP's perturbation metric (``perturbation_curves``): the signed area between the top-k and low-k
    curves of the output change ``kind`` ("probability", "logit" or "kl"; higher is better).
    ``evaluate(explainer | scores)``; the details hold the curves of all three kinds (one pass)."""

    column: ClassVar = Column("number", True, "area between the top-k and low-k perturbation curves")
    default_batch_size: ClassVar = 256

    def __init__(self, model, x, targets=None, *, kind: str = "probability", levels=None, gray=GRAY, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.kind = check_choice("kind", kind, KINDS)
        self.options = {"levels": check_levels(levels), "gray": gray}

    @property
    def name(self) -> str:
        return f"perturbation ({'KL' if self.kind == 'kl' else self.kind})"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        kinds = (self.kind,) + tuple(k for k in KINDS if k != self.kind and (k != "logit" or has_logits(self.model)))
        result = perturbation_curves(self.model, self.x, explainer_or_scores, self.targets, kinds=kinds,
                                     batch_size=self.batch_size, **self.options)
        return MetricResult(self.name, result.area[self.kind], result.to_dict(), result=result)


def has_logits(model) -> bool:
    """Whether ``kernels.hooks.find_logits`` finds the model's pre-softmax scores (the "logit" kind)."""
    try:
        find_logits(model)
    except ValueError:
        return False
    return True
