"""Image degradation: MoRF and LeRF curves and the area between them (IBA, Schulz et al., ICLR 2020, Section 4.6).

The image is split into tile x tile tiles (``kernels.tiles``), ranked by the attribution inside each tile
(its mean, ``kernels.tile_scores``, as the paper code does; the sum ranks full tiles alike). Tiles are then
replaced one at a time by a baseline -- by default every pixel of the tile set to the image's own
per-channel mean, as in the paper code -- and the model's score of the target class is recorded after each
step, for two orders:

- MoRF, most relevant first: a good attribution makes the score fall quickly;
- LeRF, least relevant first (Ancona et al. 2017): a good attribution keeps the score up until the end.

Scores are normalised by IBA's eq. (9), s(x) = (p(y|x) - b) / (t1 - b), where t1 is the mean score of
the target on the original images and b the mean score on the fully degraded images (every tile
replaced), **both averaged over the evaluated images** (the paper averages over its validation set):
the mean curves then start at 1 and end at 0. The reported number (Table 1) is the area between the
curves, the integral of LeRF - MoRF over the share of removed tiles in [0, 1] (trapezoidal rule over the
n_tiles + 1 points). It is signed: a random or constant attribution scores about 0, an attribution that
removes the least relevant tiles first scores below 0.

Ties between tile scores are broken by tile index (row-major, lower first) in both orders, so a constant
attribution gives identical MoRF and LeRF curves and an area of exactly 0.
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

NORMALIZATIONS = ("dataset", "none")


@dataclass(frozen=True, eq=False)
class DegradationResult:
    """Mean MoRF / LeRF curves, the area between them, and the per-image curves behind them.

    ``fractions`` (n_tiles + 1,) is the x axis: the share k / n_tiles of removed tiles after k steps.
    ``morf`` / ``lerf`` are the mean over images of ``morf_per_sample`` / ``lerf_per_sample``
    (N, n_tiles + 1), normalised as ``normalization`` says with the scalars ``t1`` (mean target score on
    the original images) and ``b`` (mean target score with every tile replaced); ``"none"`` keeps the raw
    scores (t1 = 1 and b = 0 then). ``area`` = integral of (lerf - morf) d fraction.
    """

    morf: np.ndarray
    lerf: np.ndarray
    area: float
    fractions: np.ndarray
    morf_per_sample: np.ndarray
    lerf_per_sample: np.ndarray
    t1: float
    b: float
    tile: int
    baseline: str
    output: str
    normalization: str

    @property
    def n_tiles(self) -> int:
        return len(self.fractions) - 1

    def to_dict(self) -> dict[str, object]:
        """The mean curves and the area, with the settings, for report.json (per-image curves left out)."""
        return {
            "area": self.area,
            "morf": self.morf.tolist(),
            "lerf": self.lerf.tolist(),
            "fractions": self.fractions.tolist(),
            "t1": self.t1,
            "b": self.b,
            "tile": self.tile,
            "n_tiles": self.n_tiles,
            "n_images": int(len(self.morf_per_sample)),
            "baseline": self.baseline,
            "output": self.output,
            "normalization": self.normalization,
        }


def area_between(morf: np.ndarray, lerf: np.ndarray, fractions: np.ndarray) -> float:
    """Signed area between the curves, integral of (lerf - morf) over ``fractions`` (trapezoidal rule)."""
    return float(np.trapezoid(np.asarray(lerf) - np.asarray(morf), np.asarray(fractions)))


def removal_positions(tile_values: np.ndarray) -> np.ndarray:
    """(N, 2, n_tiles) int: the step (0-based) at which each tile is removed, MoRF in [:, 0], LeRF in [:, 1].

    Stable sorts, so tied tiles are removed in index order in both directions.
    """
    n, count = tile_values.shape
    positions = np.empty((n, 2, count), np.int64)
    steps = np.broadcast_to(np.arange(count), (n, count))
    for direction, order in enumerate((np.argsort(-tile_values, axis=1, kind="stable"),
                                       np.argsort(tile_values, axis=1, kind="stable"))):
        np.put_along_axis(positions[:, direction], order, steps, axis=1)
    return positions


def degradation(model, x, scores, targets=None, *, tile: int = 8, baseline="mean", batch_size: int = 64,
                output: str = "probability", normalization: str = "dataset", baseline_value: float = 0.0,
                seed: int = 0, verbose: int = 0) -> DegradationResult:
    """MoRF / LeRF degradation curves of an attribution and the area between them (IBA Table 1).

    Args:
        model: a Keras classifier with one input and one output (N, n_classes).
        x: images (N, H, W, C).
        scores: per-pixel attributions (N, H, W) (or (N, H, W, 1) for grey images), or an Explainer whose
            ``explain(x, targets, batch_size)`` gives them (called with the resolved targets).
        targets: class labels (N,) or one-hot rows; None = the model's prediction on x.
        tile: tile side in pixels (8 and 14 in the paper); edge tiles are smaller when it does not divide
            the image. At least two tiles are needed.
        baseline: what replaces a removed tile, a ``kernels.perturb`` baseline: "mean" (the image's
            per-channel mean, the paper code), "zeros", "constant", "blur", "noise", or an array.
        baseline_value: the value of "constant" and the standard deviation of "noise".
        batch_size: perturbed images per model call (bounded memory); does not change the result.
        output: "probability" (the paper: the model's output as is) or "logit" (pre-softmax score).
        normalization: "dataset" (IBA eq. 9 with t1, b averaged over the images of x) or "none".
        seed: seeds a random baseline ("noise"); unused otherwise.
        verbose: 1 shows a progress bar over the model calls.

    Every image costs 2 * n_tiles model evaluations (the original and the fully degraded image are
    shared by both curves), evaluated ``batch_size`` at a time.
    """
    x = check_images(x)
    n, height, width = x.shape[:3]
    tile = check_tile(tile, height, width)
    check_choice("normalization", normalization, NORMALIZATIONS)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    scorer = TileScorer(model, x, tile=tile, baseline=baseline, baseline_value=baseline_value, output=output,
                        batch_size=batch_size, seed=seed)
    clean = scorer.clean_outputs()
    targets = scorer.targets(targets, clean)
    pixel_scores = image_scores(scores, x, targets, batch_size)
    positions = removal_positions(tile_scores(pixel_scores, tile).numpy())
    count = scorer.n_tiles

    # Per image: MoRF after k = 1..T removals, then LeRF after k = 1..T-1 (LeRF at T = MoRF at T).
    per_image = 2 * count - 1
    direction_of = np.r_[np.zeros(count, np.int64), np.ones(count - 1, np.int64)]
    step_of = np.r_[np.arange(1, count + 1), np.arange(1, count)]

    def rows(start, stop):
        r = np.arange(start, stop)
        image, j = r // per_image, r % per_image
        keep = positions[image, direction_of[j]] >= step_of[j][:, None]
        return image, keep, targets[image]

    values = scorer.run(n * per_image, rows, verbose=verbose).reshape(n, per_image)
    original = clean[np.arange(n), targets]
    morf = np.concatenate([original[:, None], values[:, :count]], axis=1)
    lerf = np.concatenate([original[:, None], values[:, count:], values[:, count - 1:count]], axis=1)

    t1, b = (float(original.mean()), float(morf[:, -1].mean())) if normalization == "dataset" else (1.0, 0.0)
    if normalization == "dataset" and np.isclose(t1, b, rtol=0.0, atol=1e-12):
        raise ValueError(
            f"model: the mean target score on the original images (t1 = {t1:.6g}) equals the one on the fully "
            f"degraded images (b = {b:.6g}), so IBA's normalisation (p - b) / (t1 - b) is undefined; the model "
            f"does not react to the baseline {baseline!r} on these images (use normalization='none')"
        )
    morf, lerf = (morf - b) / (t1 - b), (lerf - b) / (t1 - b)
    fractions = np.arange(count + 1) / count
    mean_morf, mean_lerf = morf.mean(axis=0), lerf.mean(axis=0)
    return DegradationResult(
        morf=mean_morf, lerf=mean_lerf, area=area_between(mean_morf, mean_lerf, fractions), fractions=fractions,
        morf_per_sample=morf, lerf_per_sample=lerf, t1=t1, b=b, tile=tile,
        baseline=baseline if isinstance(baseline, str) else "array", output=output, normalization=normalization,
    )


class Degradation(Metric):
    """IBA's degradation score: the area between the LeRF and MoRF curves with tiles of ``tile`` pixels
    (``degradation``; higher is better). ``evaluate(explainer | scores)``; the details hold the mean curves.
    Options as ``degradation``'s (baseline, output, normalization, seed)."""

    column: ClassVar = Column("number", True, "area between the LeRF and MoRF curves (IBA eq. 9 normalisation)")
    default_batch_size: ClassVar = 64

    def __init__(self, model, x, targets=None, *, tile: int = 8, baseline="mean", output: str = "probability",
                 normalization: str = "dataset", seed: int = 0, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.tile, self.options = tile, {"baseline": baseline, "output": output, "normalization": normalization,
                                         "seed": seed}

    @property
    def name(self) -> str:
        return f"degradation {self.tile}x{self.tile}"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        result = degradation(self.model, self.x, explainer_or_scores, self.targets, tile=self.tile,
                             batch_size=self.batch_size, **self.options)
        return MetricResult(self.name, result.area, result.to_dict(), result=result)
