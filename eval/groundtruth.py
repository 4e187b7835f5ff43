"""Ground-truth scores for explanations of synthetic data whose relevant features are known.

The L2X tasks, the planted-keyword text set and the localisation set (data.synthetic) mark, per sample,
the features that truly decide the label. The true-positive rate of a selection is the share of those
features the binary mask keeps (L2X, Chen et al. 2018, report the median of this rank-based quantity;
we report the mean and the per-sample values). A random k-subset of d features keeps each feature with
probability k/d: that is chance level.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from eval.imputation import check_mask
from eval.metrics import Metric, MetricResult
from eval.protocol import select_masks
from eval.report import COLUMNS


def true_positive_rate(masks, relevant) -> tuple[float, np.ndarray]:
    """(mean, per-sample) share of each sample's relevant features that ``masks`` select.

    ``masks`` and ``relevant`` are (N, *feature shape) arrays of {0, 1} / bool of the same shape;
    samples without any relevant feature are left out of the mean (their per-sample value is NaN).
    """
    relevant = np.asarray(relevant).astype(bool)
    masks = np.asarray(check_mask(relevant, masks, name="masks")).astype(bool)
    flat_rel = relevant.reshape(len(relevant), -1)
    hits = (masks.reshape(len(masks), -1) & flat_rel).sum(axis=1)
    counts = flat_rel.sum(axis=1)
    if not counts.any():
        raise ValueError("relevant: expected at least one sample with a relevant feature, got none")
    per_sample = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return float(np.nanmean(per_sample)), per_sample


def chance_true_positive_rate(k: int, n_features: int) -> float:
    """Expected true-positive rate of a uniformly random k-subset of ``n_features`` features: k / d."""
    return float(k) / float(n_features)


class TruePositiveRate(Metric):
    """TPR: the mean share of each input's truly relevant features (``ground_truth``, (N, *score shape))
    that the top-k masks keep; ``details`` has the chance level k / d (``chance_true_positive_rate``).

    ``evaluate(explainer | scores | Selection)``.
    """

    column: ClassVar = COLUMNS["TPR"]
    requires: ClassVar = ("ground_truth",)

    def __init__(self, model, x, targets=None, *, ground_truth, k=None, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.ground_truth, self.k = np.asarray(ground_truth), k
        if len(self.ground_truth) != len(self.x):
            raise ValueError(f"ground_truth: expected one mark per input ({len(self.x)}), got {len(self.ground_truth)}")

    @property
    def name(self) -> str:
        return "TPR"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        masks = select_masks(explainer_or_scores, self.x, self.k, batch_size=self.batch_size)
        mean, per_sample = true_positive_rate(masks, self.ground_truth)
        n_features = int(np.prod(masks.shape[1:]))
        selected = int(np.asarray(masks).reshape(len(masks), -1)[0].sum())
        return MetricResult("TPR", mean, {"chance": chance_true_positive_rate(selected, n_features)},
                            result=per_sample)
