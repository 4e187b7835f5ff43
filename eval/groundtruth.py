"""Ground-truth scores for explanations of synthetic data whose relevant features are known.

The L2X tasks, the planted-keyword text set and the localisation set (data.synthetic) mark, per sample,
the features that truly decide the label. The true-positive rate of a selection is the share of those
features the binary mask keeps (L2X, Chen et al. 2018, report the median of this rank-based quantity;
we report the mean and the per-sample values). A random k-subset of d features keeps each feature with
probability k/d: that is chance level.
"""
from __future__ import annotations

import numpy as np

from eval.masking_ops import check_mask


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
