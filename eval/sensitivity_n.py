"""Sensitivity-n with tiles (Ancona et al., ICLR 2018, as used by IBA, Schulz et al., ICLR 2020, Section 4.4).

For a set T_n of n removed tiles, IBA eq. (8) correlates the attribution inside T_n with the drop of the
target class score when T_n is removed:

    corr( sum_{i in T_n} R_i(x),  S_c(x) - S_c(x_[x_{T_n} = baseline]) ),

R_i the per-pixel attribution (summed over every pixel of the removed tiles), S_c the logit of class c
(the paper; ``output="probability"`` uses the model's output instead). As in the paper code: tiles of
8 x 8 pixels, n log-spaced between 1 tile and 80% of the tiles (16 values before rounding and removing
duplicates), 100 random tile sets per n that are **the same for every image**, removed pixels set to 0
(``baseline="zeros"``, in the model's input space), and the Pearson coefficient **pooled** over all
(image, tile set) pairs of one n. The paper's text instead describes correlating over the tile sets of
each image and averaging over the images: ``pooling="per_image"``.

An attribution whose sum over any set of tiles equals the score drop (e.g. gradient x input for a
linear model with a zero baseline) has correlation 1 for every n; a random one about 0. A coefficient
is NaN when the attribution sums or the drops do not vary (e.g. a constant attribution with n fixed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from eval.metrics import Metric, MetricResult
from eval.report import Column
from eval.tile_perturbation import TileScorer, check_images, check_tile, image_scores
from kernels.tiles import tile_scores
from kernels.validation import check_choice, check_int

POOLINGS = ("pooled", "per_image")
# The paper code's grid: 16 log-spaced numbers of tiles from 1 to 80% of the tiles.
_DEFAULT_COUNT = 16
_DEFAULT_MAX_SHARE = 0.8


@dataclass(frozen=True, eq=False)
class SensitivityNResult:
    """Sensitivity-n per number of removed tiles.

    ``ns`` (K,) numbers of removed tiles; ``correlation`` (K,) the Pearson coefficients;
    ``attribution_sums`` and ``drops`` (N, K, n_masks) the paired values they were computed from (drop =
    score of the original image - score with the tiles removed); ``tile`` the tile side in pixels.
    """

    ns: np.ndarray
    correlation: np.ndarray
    attribution_sums: np.ndarray
    drops: np.ndarray
    tile: int
    n_tiles: int
    output: str
    baseline: str
    pooling: str
    seed: int

    def correlation_as(self, pooling: str) -> np.ndarray:
        """The curve with the other pooling ("pooled" or "per_image"), from the same tile sets and drops."""
        return correlate(self.attribution_sums, self.drops, pooling)

    def to_dict(self) -> dict[str, object]:
        """The curve with its settings, for report.json (the paired values are left out)."""
        return {
            "ns": self.ns.tolist(),
            "correlation": self.correlation.tolist(),
            "mean_correlation": float(np.nanmean(self.correlation)) if np.any(np.isfinite(self.correlation))
            else float("nan"),
            "tile": self.tile,
            "n_tiles": self.n_tiles,
            "n_images": int(self.drops.shape[0]),
            "n_masks": int(self.drops.shape[2]),
            "output": self.output,
            "baseline": self.baseline,
            "pooling": self.pooling,
            "seed": self.seed,
        }


def default_ns(count: int) -> np.ndarray:
    """The paper's n: 16 log-spaced values in [1, 0.8 * count], rounded, duplicates removed (int64)."""
    count = check_int("count", count, minimum=1)
    top = max(1.0, _DEFAULT_MAX_SHARE * count)
    return np.unique(np.round(np.geomspace(1.0, top, _DEFAULT_COUNT)).astype(np.int64))


def _check_ns(ns, count: int) -> np.ndarray:
    if ns is None:
        return default_ns(count)
    values = np.atleast_1d(np.asarray(ns))
    if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iu":
        raise ValueError(f"ns: expected a non-empty list of integers (numbers of tiles), got {ns!r}")
    if values.min() < 1 or values.max() > count:
        raise ValueError(f"ns: expected numbers of tiles in [1, {count}] (the image has {count} tiles), "
                         f"got values in [{values.min()}, {values.max()}]")
    return values.astype(np.int64)


def random_tile_sets(ns: np.ndarray, count: int, n_masks: int, seed: int) -> np.ndarray:
    """bool (K, n_masks, count): for each n, ``n_masks`` uniformly random sets of n tiles (True = removed).

    The sets of one n come from ``numpy.random.default_rng([seed, n])``, so they do not depend on the
    other values in ``ns``; they are shared by every image.
    """
    removed = np.zeros((len(ns), n_masks, count), bool)
    for k, n in enumerate(ns):
        order = np.random.default_rng([seed, int(n)]).random((n_masks, count)).argsort(axis=1)
        np.put_along_axis(removed[k], order[:, :n], True, axis=1)
    return removed


def correlate(sums: np.ndarray, drops: np.ndarray, pooling: str) -> np.ndarray:
    """(K,) Pearson r per n of the paired (N, K, n_masks) attribution sums and drops.

    "pooled": one coefficient over all images x tile sets (the paper code); "per_image": one per image
    over its tile sets, then the mean over images, NaN coefficients ignored (the paper's text). Pooling
    mixes images: differences in the attributions' total or the model's margin between images enter the
    coefficient, which per-image correlation removes.
    """
    check_choice("pooling", pooling, POOLINGS)
    k = sums.shape[1]
    if pooling == "pooled":
        return pearson(sums.transpose(1, 0, 2).reshape(k, -1), drops.transpose(1, 0, 2).reshape(k, -1))
    per_sample = pearson(sums, drops)  # (N, K)
    valid = np.isfinite(per_sample)
    totals = np.where(valid, per_sample, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid.any(axis=0), totals / valid.sum(axis=0), np.nan)


def pearson(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation along ``axis`` (float64); NaN where either side has zero variance."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=axis) / denominator, np.nan)


def sensitivity_n(model, x, scores, targets=None, *, tile: int = 8, ns=None, n_masks: int = 100, seed: int = 0,
                  batch_size: int = 64, output: str = "logit", baseline="zeros", baseline_value: float = 0.0,
                  pooling: str = "pooled", verbose: int = 0) -> SensitivityNResult:
    """Sensitivity-n of an attribution on the images ``x`` (IBA Figure 6, second row).

    Args:
        model: a Keras classifier with one input and one output. ``output="logit"`` needs its
            pre-softmax scores (a layer named "logits" or a final softmax, see kernels.hooks.find_logits).
        x: images (N, H, W, C).
        scores: per-pixel attributions (N, H, W), or an Explainer (called with the resolved targets).
        targets: class labels (N,) or one-hot rows; None = the model's prediction on x.
        tile: tile side in pixels (the paper: 8; 1 gives Ancona et al.'s pixel-wise version).
        ns: numbers of removed tiles; None = the paper's 16 log-spaced values up to 80% of the tiles.
        n_masks: random tile sets per n (100 in the paper), shared by all images.
        seed: seeds the tile sets (and a random baseline).
        batch_size: perturbed images per model call; does not change the result.
        output: "logit" (the paper) or "probability".
        baseline: what replaces the removed tiles, a kernels.perturb baseline ("zeros" in the paper).
        baseline_value: the value of "constant" and the standard deviation of "noise".
        pooling: "pooled" (the paper code: one coefficient over all images x tile sets per n) or
            "per_image" (the paper's text: one per image over its tile sets, then the mean over images,
            NaN coefficients ignored).
        verbose: 1 shows a progress bar over the model calls.

    Costs N * len(ns) * n_masks model evaluations.
    """
    x = check_images(x)
    n, height, width = x.shape[:3]
    tile = check_tile(tile, height, width)
    n_masks = check_int("n_masks", n_masks, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_choice("pooling", pooling, POOLINGS)
    scorer = TileScorer(model, x, tile=tile, baseline=baseline, baseline_value=baseline_value, output=output,
                        batch_size=batch_size, seed=seed)
    ns = _check_ns(ns, scorer.n_tiles)
    clean = scorer.clean_outputs()
    targets = scorer.targets(targets, clean)
    pixel_scores = image_scores(scores, x, targets, batch_size)
    tile_sums = tile_scores(pixel_scores, tile).numpy().astype(np.float64) * scorer.pixel_counts

    removed = random_tile_sets(ns, scorer.n_tiles, n_masks, seed).reshape(-1, scorer.n_tiles)
    per_image = len(removed)

    def rows(start, stop):
        r = np.arange(start, stop)
        image = r // per_image
        return image, ~removed[r % per_image], targets[image]

    perturbed = scorer.run(n * per_image, rows, verbose=verbose).reshape(n, len(ns), n_masks)
    drops = clean[np.arange(n), targets][:, None, None] - perturbed
    sums = np.einsum("it,mt->im", tile_sums, removed.astype(np.float64)).reshape(n, len(ns), n_masks)
    correlation = correlate(sums, drops, pooling)
    return SensitivityNResult(
        ns=ns, correlation=correlation, attribution_sums=sums, drops=drops, tile=tile, n_tiles=scorer.n_tiles,
        output=output, baseline=baseline if isinstance(baseline, str) else "array", pooling=pooling, seed=seed,
    )


def mean_correlation(correlation: np.ndarray) -> float:
    """The mean over n of a Sensitivity-n curve, NaN coefficients ignored (NaN when all are)."""
    return float(np.nanmean(correlation)) if np.any(np.isfinite(correlation)) else float("nan")


class SensitivityN(Metric):
    """Sensitivity-n: the mean over the n of the Pearson correlation between attribution sums and score drops
    (``sensitivity_n``; higher is better). ``pooling`` as there; the details hold the curve and the curve
    of the other pooling from the same drops. Options as ``sensitivity_n``'s."""

    column: ClassVar = Column("number", True, "mean Pearson r of attribution sums and score drops over n")
    default_batch_size: ClassVar = 64

    def __init__(self, model, x, targets=None, *, tile: int = 8, ns=None, n_masks: int = 100, seed: int = 0,
                 output: str = "logit", baseline="zeros", pooling: str = "pooled", batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        self.options = {"tile": tile, "ns": ns, "n_masks": n_masks, "seed": seed, "output": output,
                        "baseline": baseline}

    @property
    def name(self) -> str:
        return f"sensitivity-n ({self.pooling.replace('_', ' ')})"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        result = sensitivity_n(self.model, self.x, explainer_or_scores, self.targets, batch_size=self.batch_size,
                               pooling=self.pooling, **self.options)
        other = "per_image" if self.pooling == "pooled" else "pooled"
        details = {**result.to_dict(), f"{other}_correlation": result.correlation_as(other).tolist()}
        return MetricResult(self.name, mean_correlation(result.correlation), details, result=result)
