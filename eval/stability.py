"""Stability: the local Lipschitz estimate of an explanation (Alvarez-Melis & Jaakkola 2018; VP, Section 4.2.2,
Table 2).

    L(x) = max over x' in a ball around x of  ||E(x) - E(x')||_2 / ||x - x'||_2,

the norms over all of a sample's features (the Frobenius norm of an (H, W) map, of the (H, W, C) input).
VP maximises it by Bayesian optimisation (Wang et al. 2016) on 30 random images and reports mean +- std;
its settings (the ball, the budget) are not published. Here, as Quantus' ``LocalLipschitzEstimate``:

- x' = x + delta, delta ~ N(0, std^2) per input entry, ``n_draws`` = 200 draws with std = 0.1, **not
  clipped** to the data range by default (Quantus' ``gaussian_noise`` does not clip; ``clip=(low, high)``
  clips x' and the denominator then uses the clipped x');
- each map is divided by its own maximum absolute value before the difference (``normalize="max"``,
  Quantus' ``normalise_by_max`` over the map's axes); an all-zero map stays zero; ``"none"`` keeps the raw
  maps (the known answer of a linear explainer E(x) = A x: L(x) <= ||A||_2, close to it with many draws in
  few dimensions);
- every perturbation of x is explained for x's target (the clean input's class), all N x n_draws of them
  in batched calls of ``batch_size`` inputs (no loop per draw; the draws come from one seeded stream, so
  they do not depend on ``batch_size``).

Optionally, ``ascent_steps`` > 0 refines the search by projected gradient ascent for explainers with a
differentiable TensorFlow form ``differentiable(x, targets) -> maps`` (the same maps as ``explain``; this
is checked): from each sample's best draw x + delta*, steps along the normalised gradient of
||E(x) - E(x')|| tangent to the sphere ||x' - x|| = ||delta*||, then back onto it; step t has length
``ascent_step_size`` x ||delta*|| x (1 - t / ascent_steps) (a linear decay, so the iterates settle). On
the sphere the ratio is ||E(x) - E(x')|| / ||delta*||, so the ascent maximises the numerator at the scale
of the random search (inside the ball the ratio of a discontinuous explainer grows without bound as
x' -> x). L(x) is the largest ratio of the draws and of the ascent's iterates. Without ``differentiable``
the search is random only.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import tensorflow as tf

from eval.metrics import Metric, MetricResult, require_explainer
from eval.progress import Progress
from eval.protocol import Explainer, as_inputs, as_scores
from eval.report import Column
from kernels.validation import check_choice, check_int, check_positive

NORMALIZATIONS = ("max", "none")
#: Quantus' LocalLipschitzEstimate defaults.
N_DRAWS, STD = 200, 0.1


@dataclass(frozen=True, eq=False)
class StabilityResult:
    """Local Lipschitz estimates (``float(result)`` is the mean).

    ``per_sample`` (N,) L(x) of each sample; ``mean`` and ``std`` (sample std, ddof = 1; 0 for one sample)
    over them; ``ratios`` (N, n_draws) the ratio of every random draw; ``ascent`` (N,) the best ratio of the
    gradient ascent (None without it); ``n_zero_maps`` the clean maps that are all zero.
    """

    mean: float
    std: float
    per_sample: np.ndarray
    ratios: np.ndarray
    ascent: np.ndarray | None
    n_draws: int
    std_noise: float
    clip: tuple | None
    normalize: str
    ascent_steps: int
    n_zero_maps: int

    def __float__(self) -> float:
        return self.mean

    def to_dict(self) -> dict[str, object]:
        """Mean, std, the per-sample estimates and the settings, for report.json."""
        return {"mean": self.mean, "std": self.std, "per_sample": self.per_sample.tolist(),
                "n_inputs": int(len(self.per_sample)), "n_draws": self.n_draws, "noise_std": self.std_noise,
                "clip": None if self.clip is None else list(self.clip), "normalize": self.normalize,
                "ascent_steps": self.ascent_steps, "n_zero_maps": self.n_zero_maps,
                "search": "random + gradient ascent" if self.ascent is not None else "random"}


def normalize_by_max(maps, method: str = "max"):
    """(B, ...) maps divided per map by their max |value| ("max"); all-zero maps unchanged; "none": as is.
    NumPy in, NumPy out (float64); a tensor in, a tensor out (for the ascent)."""
    check_choice("normalize", method, NORMALIZATIONS)
    if method == "none":
        return maps
    if tf.is_tensor(maps):
        axes = list(range(1, maps.shape.rank))
        peak = tf.reduce_max(tf.abs(maps), axis=axes, keepdims=True)
        return tf.where(peak > 0, maps / tf.where(peak > 0, peak, tf.ones_like(peak)), maps)
    maps = np.asarray(maps, np.float64)
    peak = np.abs(maps.reshape(len(maps), -1)).max(axis=1, initial=0.0).reshape((-1,) + (1,) * (maps.ndim - 1))
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), maps)


def _check_clip(clip):
    if clip is None:
        return None
    if (not isinstance(clip, (tuple, list)) or len(clip) != 2
            or any(isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not np.isfinite(c)
                   for c in clip)
            or clip[0] >= clip[1]):
        raise ValueError(f"clip: expected None or a pair (low, high) of finite numbers with low < high, got {clip!r}")
    return float(clip[0]), float(clip[1])


def _ratios(diff, step) -> np.ndarray:
    """||diff|| / ||step|| per row (float64), 0 where the step is 0 (x' = x: nothing was perturbed)."""
    numerator = np.linalg.norm(diff.reshape(len(diff), -1), axis=1)
    denominator = np.linalg.norm(step.reshape(len(step), -1).astype(np.float64), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


def local_lipschitz(explain_fn, x, *, targets=None, n_draws: int = N_DRAWS, std: float = STD, clip=None,
                    normalize: str = "max", seed: int = 0, batch_size: int = 256, ascent_steps: int = 0,
                    ascent_step_size: float = 0.1, differentiable: Callable | None = None,
                    explain_kwargs: Mapping | None = None, verbose: int = 0) -> StabilityResult:
    """VP's stability (Table 2): the local Lipschitz estimate of ``explain_fn`` at each input (module docstring).

    Args:
        explain_fn: an Explainer (``explain(x, targets, batch_size)``) or a callable ``x -> maps``.
        x: float inputs (N, ...).
        targets: the class explained for each input and all of its perturbations (labels (N,), one-hot
            rows or one int; None: the explainer's own choice on each input it gets). Explainers only.
        n_draws, std: Gaussian perturbations per input and their standard deviation (Quantus: 200, 0.1).
        clip: None (Quantus: no clipping) or (low, high) to clip the perturbed inputs to.
        normalize: "max" (each map divided by its max |value|, Quantus) or "none".
        seed: seeds the draws (NumPy PCG64, one stream in draw order).
        batch_size: perturbed inputs per explainer call.
        ascent_steps, ascent_step_size: projected gradient ascent after the random search (0: none) and
            its step as a fraction of the sphere's radius; needs ``differentiable``.
        differentiable: ``differentiable(x, targets) -> maps``, TensorFlow ops on a float32 batch and int32
            targets (-1 when ``targets`` is None) that compute the explainer's maps differentiably.
        explain_kwargs: further per-sample arrays passed to ``explain`` like ``targets`` (Explainers only).
        verbose: 1 shows a progress bar over the chunks.
    """
    x = as_inputs("x", x)
    if x.dtype.kind != "f":
        raise TypeError(f"x: expected float inputs to perturb with Gaussian noise, got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"x: expected at least one sample, got shape {x.shape}")
    n_draws = check_int("n_draws", n_draws, minimum=1)
    check_positive("std", std)
    clip = _check_clip(clip)
    check_choice("normalize", normalize, NORMALIZATIONS)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    ascent_steps = check_int("ascent_steps", ascent_steps, minimum=0)
    check_positive("ascent_step_size", ascent_step_size)
    if ascent_steps and differentiable is None:
        raise ValueError("differentiable: gradient ascent (ascent_steps > 0) needs differentiable(x, targets) -> "
                         "maps, the explainer's maps as TensorFlow ops; got None")
    n = len(x)
    per_sample = {key: np.asarray(value) for key, value in dict(explain_kwargs or {}).items()}
    if targets is not None:
        per_sample["targets"] = np.full(n, int(targets)) if np.ndim(targets) == 0 else np.asarray(targets)
    for key, value in per_sample.items():
        if value.ndim == 0 or value.shape[0] != n:
            raise ValueError(f"{key}: expected one value per sample of x ({n}), got shape {value.shape}")
    if isinstance(explain_fn, Explainer):
        def explain(inputs, owner):
            options = {key: value[owner] for key, value in per_sample.items()}
            return as_scores(explain_fn.explain(inputs, batch_size=batch_size, **options), inputs,
                             name="explain_fn(x)")
    elif callable(explain_fn):
        if per_sample:
            raise TypeError(f"{', '.join(sorted(per_sample))}: only an Explainer takes them; a plain callable gets "
                            f"x only")

        def explain(inputs, owner):
            return as_scores(explain_fn(inputs), inputs, name="explain_fn(x)")
    else:
        raise TypeError(f"explain_fn: expected an Explainer or a callable x -> maps, got {explain_fn!r}")

    clean_raw = np.concatenate([explain(x[i:i + batch_size], np.arange(i, min(i + batch_size, n)))
                                for i in range(0, n, batch_size)]).astype(np.float64)
    clean = normalize_by_max(clean_raw, normalize)
    total = n * n_draws
    ratios = np.empty(total, np.float64)
    best_noise = np.zeros_like(x) if ascent_steps else None  # the best draw of each sample: the ascent's start
    best_ratio = np.full(n, -1.0)
    progress = Progress(total, verbose, "perturbation")
    for start in range(0, total, batch_size):
        rows = np.arange(start, min(start + batch_size, total))
        owner = rows // n_draws
        perturbed = x[owner] + rng.normal(0.0, std, size=(len(rows),) + x.shape[1:]).astype(x.dtype)
        if clip is not None:
            perturbed = np.clip(perturbed, clip[0], clip[1])
        maps = normalize_by_max(explain(perturbed, owner), normalize)
        ratios[rows] = _ratios(maps - clean[owner], perturbed - x[owner])
        if best_noise is not None:  # each sample's best row of the chunk, if better than its best so far
            order = np.lexsort((-ratios[rows], owner))
            first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
            better = first[ratios[rows][first] > best_ratio[owner[first]]]
            best_ratio[owner[better]] = ratios[rows][better]
            best_noise[owner[better]] = perturbed[better] - x[owner[better]]
        progress.update(rows[-1] + 1)
    ratios = ratios.reshape(n, n_draws)
    estimate = ratios.max(axis=1)
    ascent = None
    if ascent_steps:
        labels = per_sample.get("targets")
        labels = np.full(n, -1) if labels is None else labels if labels.ndim == 1 else labels.argmax(axis=1)
        ascent = _ascent(differentiable, x, best_noise, labels, clean_raw, normalize=normalize, steps=ascent_steps,
                         step_size=float(ascent_step_size), clip=clip, batch_size=batch_size)
        estimate = np.maximum(estimate, ascent)
    return StabilityResult(
        mean=float(estimate.mean()), std=float(estimate.std(ddof=1)) if n > 1 else 0.0, per_sample=estimate,
        ratios=ratios, ascent=ascent, n_draws=n_draws, std_noise=float(std), clip=clip, normalize=normalize,
        ascent_steps=ascent_steps, n_zero_maps=int(np.count_nonzero(~np.any(clean_raw.reshape(n, -1) != 0, axis=1))))


def _ascent(differentiable, x, noise, labels, clean_raw, *, normalize, steps, step_size, clip, batch_size):
    """The best ratio (N,) of projected gradient ascent on the spheres ||x' - x|| = ||noise|| (module docstring)."""
    low, high = clip if clip is not None else (None, None)

    def maps_of(inputs, targets):
        return tf.cast(normalize_by_max(tf.cast(differentiable(inputs, targets), tf.float32), normalize), tf.float32)

    def norms(t):
        return tf.sqrt(tf.reduce_sum(tf.reshape(t * t, [tf.shape(t)[0], -1]), axis=1))

    def per_row(v, like):
        return tf.reshape(v, tf.concat([tf.shape(v)[:1], tf.ones([like.shape.rank - 1], tf.int32)], axis=0))

    @tf.function(reduce_retracing=True)
    def run(xb, start, targets, clean):
        radius = per_row(norms(start - xb), xb)
        point = start
        best = tf.zeros(tf.shape(xb)[:1], tf.float32)
        for t in tf.range(steps + 1):
            with tf.GradientTape() as tape:
                tape.watch(point)
                distance = norms(maps_of(point, targets) - clean)
                total = tf.reduce_sum(distance)
            step = norms(point - xb)
            best = tf.maximum(best, tf.where(step > 0, distance / tf.maximum(step, 1e-30), 0.0))
            grad = tape.gradient(total, point)
            grad = tf.zeros_like(point) if grad is None else grad
            direction = (point - xb) / tf.maximum(radius, 1e-30)
            tangent = grad - direction * per_row(tf.reduce_sum(tf.reshape(grad * direction, [tf.shape(xb)[0], -1]),
                                                               axis=1), xb)
            size = step_size * (1.0 - tf.cast(t, tf.float32) / steps)  # decays linearly to 0: no oscillation
            moved = point + size * radius * tangent / tf.maximum(per_row(norms(tangent), xb), 1e-30)
            point = xb + radius * (moved - xb) / tf.maximum(per_row(norms(moved - xb), xb), 1e-30)
            if low is not None:
                point = tf.clip_by_value(point, low, high)
        return best

    out = []
    for i in range(0, len(x), batch_size):
        xb = tf.constant(x[i:i + batch_size], tf.float32)
        targets = tf.constant(labels[i:i + batch_size], tf.int32)
        clean = maps_of(xb, targets)
        reference = normalize_by_max(clean_raw[i:i + batch_size], normalize)
        if not np.allclose(clean.numpy(), reference, rtol=1e-3, atol=1e-5):
            raise ValueError("differentiable: its maps of x differ from the explainer's (max difference "
                             f"{np.abs(clean.numpy() - reference).max():.3g}); expected the same maps as "
                             "TensorFlow ops")
        out.append(run(xb, xb + tf.constant(noise[i:i + batch_size], tf.float32), targets, clean).numpy())
    return np.concatenate(out).astype(np.float64)


class Stability(Metric):
    """VP's stability (``local_lipschitz``): the mean local Lipschitz estimate over the first ``n_inputs``
    inputs (all when None; the paper: 30; lower is better). ``evaluate(explainer)``; ``differentiable``
    (``explainer -> differentiable(x, targets)``) enables the gradient ascent with ``ascent_steps``. The
    details hold the std and the per-sample estimates."""

    column: ClassVar = Column("number", False, "local Lipschitz estimate max ||E(x) - E(x')|| / ||x - x'||")
    requires: ClassVar = ("explainer",)

    def __init__(self, model, x, targets=None, *, n_draws: int = N_DRAWS, std: float = STD, clip=None,
                 normalize: str = "max", seed: int = 0, ascent_steps: int = 0, ascent_step_size: float = 0.1,
                 differentiable: Callable | None = None, n_inputs: int | None = None, verbose: int = 0,
                 batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        if n_inputs is not None:
            self.x = self.x[:check_int("n_inputs", n_inputs, minimum=1)]
            self.targets = None if targets is None or np.ndim(targets) == 0 else np.asarray(targets)[:len(self.x)]
        check_positive("std", std)
        self.differentiable = differentiable
        self.options = {"n_draws": n_draws, "std": std, "clip": clip, "normalize": normalize, "seed": seed,
                        "ascent_steps": ascent_steps, "ascent_step_size": ascent_step_size, "verbose": verbose}

    @property
    def name(self) -> str:
        return "Lipschitz"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        explainer = require_explainer(self, explainer_or_scores, "explains perturbed inputs")
        differentiable = None if self.differentiable is None else self.differentiable(explainer)
        result = local_lipschitz(explainer, self.x, targets=self.targets, batch_size=self.batch_size,
                                 differentiable=differentiable, **self.options)
        return MetricResult(self.name, result.mean, result.to_dict(), result=result)
