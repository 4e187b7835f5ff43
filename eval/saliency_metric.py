"""The saliency metric (Dabkowski & Gal, NeurIPS 2017, Section 4.2; the masking paper's Tables 3, 5, 7 and 9):

    SM = log(max(a, 0.05)) - log(p)                                           (lower is better)

a = the area of the tightest box around the salient region, as a share of the image; p = the model's
probability of the target class on that box cropped from the image and resized to the input size. No
library implements it; our choices (docs/FIDELITY.md):

- Salient region: each map is shifted to a minimum of 0 (m' = m - min m, so signed maps work and the region
  is invariant to positive affine changes of the map) and thresholded at delta times its mean:
  m' >= delta mean(m'). delta = 1 is "binarise at the mean"; the paper tunes delta on a held-out set over
  0, 0.2, ..., 5 (``DELTAS``, "as in prior work") -- ``threshold="tune"`` picks the delta with the lowest
  mean SM on ``holdout`` (ties: the smaller delta). An empty region (delta mean above the maximum) falls
  back to the whole image.
- Box: around the whole region (``region="all"``, Dabkowski & Gal: "the tightest rectangular crop that
  contains the entire salient region") or around its largest 8-connected component (``region="largest"``,
  the weakly-supervised localisation convention; ties: the first component in row-major order).
- Crop and resize: the box's pixels resized to the input size, bilinear with half-pixel centres
  (tf.image.resize of the crop, no antialiasing; PyTorch's align_corners=False), as two matrix products per
  crop, all crops of a chunk in one forward pass.
- log p with p floored at the smallest normal float32 (p = 0 would give +inf).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import tensorflow as tf

from eval.metrics import Metric, MetricResult
from eval.progress import Progress
from eval.protocol import as_scores, as_targets, predict_probabilities
from eval.report import Column
from eval.tile_perturbation import check_images
from kernels.hooks import check_model
from kernels.validation import check_choice, check_int

#: The thresholds the paper tunes over: 0, 0.2, ..., 5.
DELTAS = tuple(float(v) for v in np.round(np.arange(26) * 0.2, 10))
#: The floor of the area term.
MIN_AREA = 0.05
REGIONS = ("all", "largest")
_TINY = float(np.finfo(np.float32).tiny)


def check_threshold(threshold, *, allow_tune: bool = True):
    """``threshold``: a number >= 0 (delta) or "tune"."""
    if allow_tune and isinstance(threshold, str):
        return check_choice("threshold", threshold, ("tune",))
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.number)) \
            or not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold: expected a number >= 0 (delta) or 'tune', got {threshold!r}")
    return float(threshold)


def salient_regions(scores, delta: float, *, region: str = "all") -> np.ndarray:
    """bool (N, H, W): m' >= delta mean(m') with m' = m - min m; ``region="largest"`` keeps the largest
    8-connected component only."""
    delta = check_threshold(delta, allow_tune=False)
    check_choice("region", region, REGIONS)
    shifted = np.asarray(scores, np.float64)
    shifted = shifted - shifted.reshape(len(shifted), -1).min(axis=1)[:, None, None]
    regions = shifted >= delta * shifted.reshape(len(shifted), -1).mean(axis=1)[:, None, None]
    if region == "largest":
        from scipy import ndimage

        for i, mask in enumerate(regions):
            labelled, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
            if count > 1:
                sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
                regions[i] = labelled == 1 + int(np.argmax(sizes))
    return regions


def region_boxes(regions) -> np.ndarray:
    """int64 (N, 4) tightest boxes (y0, x0, y1, x1), end-exclusive; an empty region gives the whole image."""
    regions = np.asarray(regions, bool)
    n, height, width = regions.shape
    rows, cols = regions.any(axis=2), regions.any(axis=1)
    empty = ~rows.any(axis=1)
    y0, y1 = rows.argmax(axis=1), height - rows[:, ::-1].argmax(axis=1)
    x0, x1 = cols.argmax(axis=1), width - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([y0, x0, y1, x1], axis=1).astype(np.int64)
    boxes[empty] = [0, 0, height, width]
    return boxes


def box_areas(boxes, height: int, width: int) -> np.ndarray:
    """The share of the image each box covers (N,)."""
    boxes = np.asarray(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(height * width)


def sm_values(areas, probabilities) -> np.ndarray:
    """log(max(a, 0.05)) - log(p) elementwise (p floored at the smallest normal float32)."""
    return np.log(np.maximum(np.asarray(areas, np.float64), MIN_AREA)) - np.log(
        np.maximum(np.asarray(probabilities, np.float64), _TINY))


def crop_resize_matrices(starts, stops, size: int) -> np.ndarray:
    """(R, size, full) float32 matrices that resize the spans [start, stop) of an axis of length ``full`` =
    ``size`` to ``size`` samples: bilinear with half-pixel centres (tf.image.resize of the crop, PyTorch's
    align_corners=False), source positions clamped to the span."""
    starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
    lengths = (stops - starts).astype(np.float64)
    source = (np.arange(size) + 0.5)[None, :] * (lengths[:, None] / size) - 0.5
    source = np.clip(source, 0.0, lengths[:, None] - 1.0)
    lower = np.floor(source).astype(np.int64)
    fraction = source - lower
    upper = np.minimum(lower + 1, (lengths - 1).astype(np.int64)[:, None])
    matrices = np.zeros((len(starts), size, size), np.float64)
    rows, outputs = np.meshgrid(np.arange(len(starts)), np.arange(size), indexing="ij")
    np.add.at(matrices, (rows, outputs, starts[:, None] + lower), 1.0 - fraction)
    np.add.at(matrices, (rows, outputs, starts[:, None] + upper), fraction)
    return matrices.astype(np.float32)


class CropScorer:
    """The model's probability of a class on boxes cropped from images and resized to the input size (two
    batched matrix products per crop, ``crop_resize_matrices``), ``batch_size`` crops per model call."""

    def __init__(self, model, x: np.ndarray, *, batch_size: int):
        self.model = check_model("model", model)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self._x = tf.constant(x)
        self.size = tuple(int(s) for s in x.shape[1:3])
        spec = tf.TensorSpec([None], tf.int32)
        height, width = self.size
        self._scores = tf.function(self._crop_scores, input_signature=[
            spec, tf.TensorSpec([None, height, height], tf.float32), tf.TensorSpec([None, width, width], tf.float32),
            spec])

    def _crop_scores(self, image, rows, columns, label):
        crops = tf.einsum("bih,bhwc,bjw->bijc", rows, tf.gather(self._x, image), columns)
        return tf.gather(self.model(crops, training=False), label, axis=1, batch_dims=1)

    def run(self, image, boxes, label, *, verbose: int = 0) -> np.ndarray:
        """Probabilities (R,) for rows (image index, (y0, x0, y1, x1) end-exclusive pixel box, class)."""
        height, width = self.size
        boxes = np.asarray(boxes, np.int64)
        out = np.empty(len(boxes), np.float64)
        progress = Progress(len(boxes), verbose, "crop")
        for start in range(0, len(boxes), self.batch_size):
            stop = min(len(boxes), start + self.batch_size)
            part = boxes[start:stop]
            out[start:stop] = self._scores(
                tf.constant(image[start:stop], tf.int32),
                tf.constant(crop_resize_matrices(part[:, 0], part[:, 2], height)),
                tf.constant(crop_resize_matrices(part[:, 1], part[:, 3], width)),
                tf.constant(label[start:stop], tf.int32)).numpy()
            progress.update(stop)
        return out


def _sm_grid(model, x, scores, targets, deltas, region, batch_size, verbose=0):
    """(values (D, N), boxes (D, N, 4), areas (D, N), probabilities (D, N)) for every delta, one batched run."""
    n, height, width = x.shape[:3]
    boxes = np.stack([region_boxes(salient_regions(scores, d, region=region)) for d in deltas])
    areas = box_areas(boxes.reshape(-1, 4), height, width).reshape(len(deltas), n)
    image = np.broadcast_to(np.arange(n)[None], (len(deltas), n)).ravel()
    probabilities = CropScorer(model, x, batch_size=batch_size).run(
        image, boxes.reshape(-1, 4), np.asarray(targets)[image], verbose=verbose).reshape(len(deltas), n)
    return sm_values(areas, probabilities), boxes, areas, probabilities


def _targets(model, x, targets, batch_size):
    clean = predict_probabilities(model, x, batch_size)
    checked = as_targets(targets, len(x), clean.shape[1])
    return clean.argmax(axis=1) if checked is None else checked


def tune_threshold(model, x, scores, targets=None, *, deltas=DELTAS, region: str = "all",
                   batch_size: int = 256) -> tuple[float, np.ndarray]:
    """The delta of ``deltas`` with the lowest mean SM on the held-out images ``x`` (ties: the smaller delta),
    and the mean SM of every delta (D,)."""
    x = check_images(x)
    deltas = [check_threshold(d, allow_tune=False) for d in deltas]
    if not deltas:
        raise ValueError("deltas: expected at least one threshold, got none")
    targets = _targets(model, x, targets, batch_size)
    scores = as_scores(scores, x, targets=targets)
    values = _sm_grid(model, x, scores, targets, deltas, region, batch_size)[0].mean(axis=1)
    return float(deltas[int(np.argmin(values))]), values


@dataclass(frozen=True, eq=False)
class SaliencyMetricResult:
    """SM per image (N,) with the boxes (N, 4), areas and crop probabilities, the delta used and, when tuned,
    the mean held-out SM of every candidate delta."""

    per_image: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    probabilities: np.ndarray
    threshold: float
    region: str
    tuning: dict | None = None

    @property
    def value(self) -> float:
        return float(self.per_image.mean())

    def to_dict(self) -> dict:
        return {"value": self.value, "threshold": self.threshold, "region": self.region,
                "mean_area": float(self.areas.mean()), "mean_probability": float(self.probabilities.mean()),
                "n_images": int(len(self.per_image)), "tuning": self.tuning}


def saliency_metric(model, x, explainer_or_scores, targets=None, *, threshold=1.0, holdout=None,
                    holdout_targets=None, holdout_scores=None, deltas=DELTAS, region: str = "all",
                    batch_size: int = 256, verbose: int = 0) -> SaliencyMetricResult:
    """The saliency metric of the maps of ``explainer_or_scores`` on images ``x`` (module docstring).

    Args:
        targets: int labels or one-hot rows; None = the model's prediction.
        threshold: delta (a number >= 0; default 1, the map's mean) or "tune": the best delta of ``deltas`` on
            the held-out images ``holdout`` (their maps: ``holdout_scores``, or the explainer's for
            ``holdout_targets``, default the model's predictions).
        region: "all" (the box around the whole salient region, default) or "largest" (its largest component).
        batch_size: crops per model call (an explainer runs with its own batch size).
    """
    x = check_images(x)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    threshold = check_threshold(threshold)
    check_choice("region", region, REGIONS)
    tuning = None
    if threshold == "tune":
        if holdout is None:
            raise ValueError("holdout: threshold='tune' needs held-out images to tune delta on, got None")
        source = holdout_scores if holdout_scores is not None else explainer_or_scores
        if holdout_scores is None and not hasattr(explainer_or_scores, "explain"):
            raise ValueError("holdout_scores: tuning with a scores array needs the maps of the held-out images")
        threshold, values = tune_threshold(model, holdout, source, holdout_targets, deltas=deltas, region=region,
                                           batch_size=batch_size)
        tuning = {"deltas": [float(d) for d in deltas], "mean_sm": values.tolist(), "n_holdout": int(len(holdout))}
    elif holdout is not None or holdout_scores is not None:
        raise ValueError("holdout: only used with threshold='tune'")
    targets = _targets(model, x, targets, batch_size)
    scores = as_scores(explainer_or_scores, x, targets=targets)
    values, boxes, areas, probabilities = _sm_grid(model, x, scores, targets, [threshold], region, batch_size,
                                                   verbose)
    return SaliencyMetricResult(per_image=values[0], boxes=boxes[0], areas=areas[0], probabilities=probabilities[0],
                                threshold=threshold, region=region, tuning=tuning)


class SaliencyMetric(Metric):
    """Dabkowski & Gal's saliency metric (lower is better): ``saliency_metric``'s options (threshold, holdout,
    holdout_targets, deltas, region). With ``threshold="tune"``, ``evaluate`` takes an explainer (it explains
    the held-out images too) or a pair (scores of x, scores of holdout)."""

    column: ClassVar = Column("number", False, "saliency metric log(max(a, 0.05)) - log p of the salient box's crop")
    default_batch_size: ClassVar = 256

    def __init__(self, model, x, targets=None, *, threshold=1.0, holdout=None, holdout_targets=None, deltas=DELTAS,
                 region: str = "all", batch_size=None, verbose: int = 0):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.threshold = check_threshold(threshold)
        if self.threshold == "tune" and holdout is None:
            raise ValueError("holdout: threshold='tune' needs held-out images to tune delta on, got None")
        self.options = dict(threshold=threshold, holdout=holdout, holdout_targets=holdout_targets, deltas=deltas,
                            region=check_choice("region", region, REGIONS), verbose=verbose)

    @property
    def name(self) -> str:
        return "saliency metric"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        holdout_scores = None
        if isinstance(explainer_or_scores, tuple):
            explainer_or_scores, holdout_scores = explainer_or_scores
        result = saliency_metric(self.model, self.x, explainer_or_scores, self.targets, holdout_scores=holdout_scores,
                                 batch_size=self.batch_size, **self.options)
        return MetricResult(self.name, result.value, result.to_dict(), result=result)
