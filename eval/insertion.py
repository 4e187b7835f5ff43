"""Deletion and insertion (Petsiuk et al., BMVC 2018, "RISE", Section 4.1), as the masking paper's Tables 3, 5,
7 and 9 report them, with two presets:

- ``preset="rise"`` (RISE's ``CausalMetric``): ``step`` pixels change per iteration (default one image row,
  W pixels: RISE's 224 at 224 px), n = ceil(d / step) iterations, so n + 1 points with min(i step, d) pixels
  changed; deletion replaces the most salient pixels by zeros, insertion starts from a blurred image (RISE's
  kernel: scipy's ``gaussian_filter`` of an 11 x 11 delta at sigma 5, applied as a zero-padded convolution,
  reproduced exactly here) and puts the most salient pixels of x back.
- ``preset="xplique"`` (xplique's ``Deletion`` / ``Insertion``): ``steps`` = 10 iterations, the counts
  ``linspace(0, d, steps + 1)`` truncated to integers, baseline 0 for both.

The score is the model's probability of the target class (targets=None: the clean image's top-1 class, as
RISE; xplique takes the targets it is given, so pass them to compare); the value is the normalised trapezoid
(sum - first / 2 - last / 2) / (points - 1) of each image's curve, averaged over images (= RISE's ``auc`` and
xplique's mean(s[:-1] + s[1:]) / 2 of the mean curve). Pixels are ordered by decreasing score, ties by
the lower row-major index (RISE and xplique: numpy's argsort, reversed). All points of a chunk of images go
through one forward pass (``eval.ranked_perturbation``). Deletion: lower is better; insertion: higher.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from eval.metrics import Metric, MetricResult
from eval.protocol import as_scores, as_targets, predict_probabilities
from eval.ranked_perturbation import RankedScorer, pixel_ranks
from eval.report import Column
from eval.tile_perturbation import check_images
from kernels.image import blur_matrix, blur_with_matrices
from kernels.validation import check_choice, check_int

PRESETS = ("rise", "xplique")
MODES = ("deletion", "insertion")
#: RISE's insertion blur: ``gkern(11, 5)`` (scipy.ndimage.gaussian_filter truncates at 4 sigma).
RISE_KERNEL, RISE_SIGMA, SCIPY_TRUNCATE = 11, 5.0, 4.0
#: xplique's default number of iterations.
XPLIQUE_STEPS = 10


def rise_taps() -> np.ndarray:
    """The 1-D factor (11,) of RISE's blur kernel: scipy's reflect-mode Gaussian (sigma 5, radius 20) of a
    delta at the centre of 11 samples (the 2-D kernel is its outer product; it sums to 1)."""
    radius = int(SCIPY_TRUNCATE * RISE_SIGMA + 0.5)
    return blur_matrix(RISE_KERNEL, RISE_SIGMA, 2 * radius + 1, padding="symmetric")[:, RISE_KERNEL // 2]


def rise_blur_matrix(size: int) -> np.ndarray:
    """(size, size) matrix of RISE's blur along one axis: the taps as a zero-padded convolution (padding 5)."""
    size = check_int("size", size, minimum=1)
    taps, half = rise_taps(), RISE_KERNEL // 2
    offsets = np.arange(size)[None, :] - np.arange(size)[:, None] + half
    inside = (offsets >= 0) & (offsets < RISE_KERNEL)
    return np.where(inside, taps[np.clip(offsets, 0, RISE_KERNEL - 1)], 0.0).astype(np.float32)


def rise_blur(x) -> np.ndarray:
    """Images (N, H, W, C) blurred per channel as RISE's insertion substrate."""
    x = check_images(x)
    return blur_with_matrices(x, rise_blur_matrix(x.shape[1]), rise_blur_matrix(x.shape[2])).numpy()


def curve_counts(n_features: int, preset: str = "rise", *, step=None, steps=None) -> np.ndarray:
    """Pixels changed at each point of the curve (P,), from 0 to d = ``n_features`` (module docstring)."""
    n_features = check_int("n_features", n_features, minimum=1)
    check_choice("preset", preset, PRESETS)
    if preset == "rise":
        if steps is not None:
            raise ValueError("steps: the rise preset counts pixels per iteration (step), got steps")
        step = check_int("step", step, minimum=1)
        return np.minimum(np.arange(math.ceil(n_features / step) + 1) * step, n_features)
    if step is not None:
        raise ValueError("step: the xplique preset counts iterations (steps), got step")
    steps = check_int("steps", XPLIQUE_STEPS if steps is None else steps, minimum=1)
    return np.linspace(0, n_features, steps + 1).astype(np.int32).astype(np.int64)


def normalised_auc(curves) -> np.ndarray:
    """(sum - first / 2 - last / 2) / (P - 1) of each curve (..., P): the trapezoid on [0, 1], uniform points."""
    curves = np.asarray(curves, np.float64)
    return (curves.sum(axis=-1) - curves[..., 0] / 2 - curves[..., -1] / 2) / (curves.shape[-1] - 1)


@dataclass(frozen=True, eq=False)
class CausalResult:
    """A deletion or insertion run: ``curves`` (N, P) probabilities after ``counts`` (P,) pixels changed,
    ``auc_per_image`` (N,), ``auc`` their mean, ``targets`` (N,) the scored classes."""

    mode: str
    preset: str
    substrate: str
    curves: np.ndarray
    counts: np.ndarray
    auc_per_image: np.ndarray
    targets: np.ndarray

    @property
    def auc(self) -> float:
        return float(self.auc_per_image.mean())

    @property
    def mean_curve(self) -> np.ndarray:
        return self.curves.mean(axis=0)

    def to_dict(self) -> dict:
        return {"auc": self.auc, "mode": self.mode, "preset": self.preset, "substrate": self.substrate,
                "mean_curve": self.mean_curve.tolist(), "counts": self.counts.tolist(),
                "n_images": int(len(self.curves))}


def _substrate(x: np.ndarray, mode: str, preset: str, substrate):
    """(table, name, per-image) of the substrate: a constant image, or RISE's blur of every image."""
    if substrate is None:
        substrate = "blur" if (preset == "rise" and mode == "insertion") else 0.0
    if isinstance(substrate, str):
        check_choice("substrate", substrate, ("blur",))
        return rise_blur(x), "blur", True
    if isinstance(substrate, (bool, np.bool_)) or not isinstance(substrate, (int, float, np.number)) \
            or not np.isfinite(substrate):
        raise ValueError(f"substrate: expected 'blur' or a finite number (a constant image), got {substrate!r}")
    return np.full((1,) + x.shape[1:], substrate, np.float32), "gray" if substrate == 0 else f"{substrate:g}", False


def causal_metric(model, x, explainer_or_scores, targets=None, *, mode: str = "deletion", preset: str = "rise",
                  step=None, steps=None, substrate=None, batch_size: int = 256, verbose: int = 0) -> CausalResult:
    """Deletion or insertion curves and their normalised AUC (module docstring).

    Args:
        model: a Keras classifier (one input, class probabilities out).
        x: images (N, H, W, C).
        explainer_or_scores: maps (N, H, W) or an explainer (asked for ``targets``).
        targets: int labels (N,) or one-hot rows; None = the clean image's top-1 class.
        mode: "deletion" or "insertion".
        preset: "rise" (``step`` pixels per iteration, default W) or "xplique" (``steps`` iterations, default 10).
        substrate: what deleted pixels become / insertion starts from: "blur" (RISE's kernel) or a number
            (0.0 = gray in a zero-centred input space); default: the preset's (rise: 0 / blur; xplique: 0 / 0).
        batch_size: composite images per model call (an explainer runs with its own batch size); verbose: a
            progress bar over the model calls.
    """
    x = check_images(x)
    check_choice("mode", mode, MODES)
    check_choice("preset", preset, PRESETS)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    n, height, width = x.shape[:3]
    if preset == "rise" and step is None:
        step = width
    counts = curve_counts(height * width, preset, step=step, steps=steps)
    table, name, per_image = _substrate(x, mode, preset, substrate)
    clean = predict_probabilities(model, x, batch_size)
    checked = as_targets(targets, n, clean.shape[1])
    targets = clean.argmax(axis=1) if checked is None else checked
    scores = as_scores(explainer_or_scores, x, targets=targets)
    shape = (n, len(counts))
    image = np.broadcast_to(np.arange(n)[:, None], shape).ravel()
    scorer = RankedScorer(model, x, pixel_ranks(scores), table, batch_size=batch_size)
    values = scorer.run(image, image, np.broadcast_to(counts[None], shape).ravel(),
                        np.full(image.size, mode == "insertion"), image if per_image else np.zeros_like(image),
                        np.broadcast_to(targets[:, None], shape).ravel(), verbose=verbose).reshape(shape)
    return CausalResult(mode=mode, preset=preset, substrate=name, curves=values, counts=counts,
                        auc_per_image=normalised_auc(values), targets=targets.astype(np.int64))


def deletion(model, x, explainer_or_scores, targets=None, **options) -> CausalResult:
    """``causal_metric(mode="deletion")``: the probability as the most salient pixels are removed (lower AUC is
    better)."""
    return causal_metric(model, x, explainer_or_scores, targets, mode="deletion", **options)


def insertion(model, x, explainer_or_scores, targets=None, **options) -> CausalResult:
    """``causal_metric(mode="insertion")``: the probability as the most salient pixels are put back (higher AUC
    is better)."""
    return causal_metric(model, x, explainer_or_scores, targets, mode="insertion", **options)


class _Causal(Metric):
    """Shared set-up of ``Deletion`` and ``Insertion``: options as ``causal_metric``'s (preset, step, steps,
    substrate)."""

    default_batch_size: ClassVar = 256
    mode: ClassVar[str] = ""

    def __init__(self, model, x, targets=None, *, preset: str = "rise", step=None, steps=None, substrate=None,
                 batch_size=None, verbose: int = 0):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.preset = check_choice("preset", preset, PRESETS)
        self.options = dict(preset=preset, step=step, steps=steps, substrate=substrate, verbose=verbose)
        default = "blur" if (preset == "rise" and self.mode == "insertion") else 0.0
        chosen = default if substrate is None else substrate
        self.substrate_name = "blur" if isinstance(chosen, str) else ("gray" if chosen == 0 else f"{chosen:g}")

    @property
    def name(self) -> str:
        return f"{self.mode} ({self.preset}, {self.substrate_name})"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        result = causal_metric(self.model, self.x, explainer_or_scores, self.targets, mode=self.mode,
                               batch_size=self.batch_size, **self.options)
        return MetricResult(self.name, result.auc, result.to_dict(), result=result)


class Deletion(_Causal):
    """RISE's deletion metric: normalised AUC of the probability as the most salient pixels are removed
    (lower is better). Options as ``causal_metric``'s."""

    column: ClassVar = Column("number", False, "deletion AUC: probability as the most salient pixels are removed")
    mode = "deletion"


class Insertion(_Causal):
    """RISE's insertion metric: normalised AUC of the probability as the most salient pixels are inserted
    into the substrate (higher is better). Options as ``causal_metric``'s."""

    column: ClassVar = Column("number", True, "insertion AUC: probability as the most salient pixels are inserted")
    mode = "insertion"
