"""The bounding-box metric (IBA, Schulz et al., ICLR 2020, Section 4.5, Table 1 "bbox").

If the object's bounding box holds n pixels, the metric is the share of the n highest-scored pixels that
lie inside the box: 1 when the attribution ranks exactly the box's pixels highest, the box's share of
the image n / (H W) in expectation for random scores (the paper's "Random" row, 0.167). The paper
evaluates only images whose box covers at most a third of the image (``bbox_ratio_summary``'s
``max_box_fraction``); a larger box makes a high ratio easy.

Ties. The paper code takes the n first pixels of a sort, so pixels tied at the cut are picked in
whatever order the sort leaves them. Here ties are resolved deterministically in one of two ways:

- ``ties="expected"`` (default): the pixels strictly above the n-th highest score count in full and the
  remaining places are shared among the pixels tied at that score in proportion to how many of them lie
  in the box -- the exact expectation of a uniformly random tie-break. A constant heatmap scores exactly
  the box's share of the image.
- ``ties="index"``: a stable sort, tied pixels taken in row-major order (lower index first).

Boxes follow ``data.synthetic.localization``: int (N, 4) rows (y0, x0, y1, x1), end-exclusive.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from eval.metrics import Metric, MetricResult
from eval.protocol import as_scores
from eval.report import Column
from kernels.validation import as_float_tensor, check_choice

TIES = ("expected", "index")


def check_boxes(boxes, height: int, width: int, n: int) -> np.ndarray:
    """``boxes`` as int64 (N, 4) after checking shape, integrality and 0 <= y0 < y1 <= H, 0 <= x0 < x1 <= W."""
    if boxes is None:
        raise TypeError("boxes: expected an int array (N, 4) of (y0, x0, y1, x1), got None")
    b = np.asarray(boxes)
    if b.shape != (n, 4):
        raise ValueError(f"boxes: expected shape ({n}, 4) (one (y0, x0, y1, x1) row per image), got {b.shape}")
    if b.dtype.kind == "f":
        if not np.all(np.isfinite(b)) or not np.all(b == np.round(b)):
            raise ValueError("boxes: expected integer pixel coordinates, got non-integer values")
    elif b.dtype.kind not in "iu":
        raise TypeError(f"boxes: expected integer pixel coordinates, got dtype {b.dtype}")
    b = b.astype(np.int64)
    y0, x0, y1, x1 = b.T
    bad = (y0 < 0) | (x0 < 0) | (y1 > height) | (x1 > width) | (y1 <= y0) | (x1 <= x0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"boxes: expected non-empty boxes inside the {height}x{width} image (0 <= y0 < y1 <= {height}, "
            f"0 <= x0 < x1 <= {width}, end-exclusive), got {int(bad.sum())} bad rows, e.g. row {i}: "
            f"{b[i].tolist()}"
        )
    return b


def box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool (N, H, W): True inside each (checked) box."""
    rows, cols = np.arange(height), np.arange(width)
    inside_y = (rows[None, :] >= boxes[:, 0:1]) & (rows[None, :] < boxes[:, 2:3])
    inside_x = (cols[None, :] >= boxes[:, 1:2]) & (cols[None, :] < boxes[:, 3:4])
    return inside_y[:, :, None] & inside_x[:, None, :]


def _checked(scores, boxes) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(as_float_tensor("scores", scores, rank=3)).astype(np.float64)
    if scores.shape[0] == 0:
        raise ValueError(f"scores: expected at least one heatmap (N, H, W), got shape {scores.shape}")
    n, height, width = scores.shape
    return scores, check_boxes(boxes, height, width, n)


def bbox_ratio(scores, boxes, *, ties: str = "expected") -> np.ndarray:
    """Per image, the share of the n highest-scored pixels inside the box, n = the box's area (float64 (N,)).

    ``scores``: heatmaps (N, H, W), finite; ``boxes``: int (N, 4) (y0, x0, y1, x1), end-exclusive.
    """
    check_choice("ties", ties, TIES)
    scores, boxes = _checked(scores, boxes)
    n, height, width = scores.shape
    flat = scores.reshape(n, -1)
    inside = box_masks(boxes, height, width).reshape(n, -1)
    area = inside.sum(axis=1)
    if ties == "index":
        order = np.argsort(-flat, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
        return np.count_nonzero(inside & (ranks < area[:, None]), axis=1) / area
    cut = np.take_along_axis(-np.sort(-flat, axis=1), area[:, None] - 1, axis=1)  # the n-th highest score
    above, tied = flat > cut, flat == cut
    open_places = area - above.sum(axis=1)
    tied_inside = np.count_nonzero(tied & inside, axis=1)
    hits = np.count_nonzero(above & inside, axis=1) + open_places * tied_inside / tied.sum(axis=1)
    return hits / area


def bbox_ratio_summary(scores, boxes, *, max_box_fraction: float | None = 1.0 / 3.0,
                       ties: str = "expected") -> dict[str, float | int]:
    """Mean and std of :func:`bbox_ratio` over the images whose box covers at most ``max_box_fraction``.

    The paper keeps boxes covering less than 33% of the image (``max_box_fraction=1/3``, inclusive here);
    None keeps every image. Returns ``mean``, ``std`` (ddof=0), ``n_images`` (kept), ``n_excluded`` and
    ``chance``: the mean box share of the image over the kept images, the expected ratio of random scores.
    """
    scores, boxes = _checked(scores, boxes)
    height, width = scores.shape[1:]
    share = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(height * width)
    if max_box_fraction is None:
        keep = np.ones(len(boxes), bool)
    else:
        if isinstance(max_box_fraction, bool) or not isinstance(max_box_fraction, (int, float, np.number)) \
                or not 0.0 < float(max_box_fraction) <= 1.0:
            raise ValueError(f"max_box_fraction: expected a share in (0, 1] or None, got {max_box_fraction!r}")
        keep = share <= float(max_box_fraction)
    if not keep.any():
        raise ValueError(f"boxes: every box covers more than max_box_fraction={max_box_fraction} of the image "
                         f"(smallest share {share.min():.3f}); nothing to evaluate")
    ratios = bbox_ratio(scores[keep], boxes[keep], ties=ties)
    return {
        "mean": float(ratios.mean()),
        "std": float(ratios.std()),
        "n_images": int(keep.sum()),
        "n_excluded": int((~keep).sum()),
        "chance": float(share[keep].mean()),
    }


class BoundingBoxRatio(Metric):
    """IBA's bounding-box metric: the mean share of the n highest-scored pixels inside each image's box
    (``bbox_ratio_summary``: images whose box covers at most ``max_box_fraction`` of the image). Higher is
    better; ``details`` has the chance level. ``evaluate(explainer | scores)``."""

    column: ClassVar = Column("number", True, "share of the top-n pixels inside the object's box (n = box area)")
    requires: ClassVar = ("boxes",)
    default_batch_size: ClassVar = 64

    def __init__(self, model, x, targets=None, *, boxes, max_box_fraction: float | None = 1.0 / 3.0,
                 ties: str = "expected", batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.boxes, self.max_box_fraction, self.ties = boxes, max_box_fraction, ties

    @property
    def name(self) -> str:
        return "bbox ratio"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        scores = as_scores(explainer_or_scores, self.x, targets=self.targets, batch_size=self.batch_size)
        summary = bbox_ratio_summary(scores, self.boxes, max_box_fraction=self.max_box_fraction, ties=self.ties)
        return MetricResult(self.name, summary["mean"], summary)
