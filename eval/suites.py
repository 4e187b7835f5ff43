"""Suites: the metrics of one paper, set up once for a model and its data, run on one explainer at a time.

- ``MEEDSuite``: MEED's table columns (Liang et al., KDD 2020, Section 4.0.2, Tables 1-5): FS-M, FU-M,
  FS-A, FU-A, SEN, TPS (and TPR on data with known relevant features). The released code's evaluation
  quirks are options of this suite (``sen_form``, ``sen_clean_conditioning``, ``tps``), not of a shared
  evaluator.
- ``IBASuite``: the IBA paper's metrics (Schulz et al., ICLR 2020, Section 4, Table 1): degradation at
  two tile sizes, Sensitivity-n (both poolings from the same drops), the bounding-box ratio where the
  data has boxes, the cascading randomisation sanity check, and the time per heatmap.
- ``VPSuite``: the VP paper's metrics (Section 4.2, Tables 1-3): consistency over upsample sizes (SSIM, PC,
  PSNR), stability (local Lipschitz estimate), the top-k / low-k perturbation areas (probability, logit,
  KL), the time per explanation and, optionally, cascading randomisation; on the samples that
  ``select_samples`` picks (classified correctly with probability > 0.5, 200 of them).
- ``MaskingSuite``: the masking paper's metrics (Gupta et al., NeurIPS 2022, Appendices C-D): worst-case
  completeness and soundness over the top-1 and top-2 labels (gray and random-image substrates),
  deletion and insertion (RISE or xplique preset), the saliency metric, the time per (image, label) map.

``suite.evaluate(explainer, explain_on=None) -> SuiteResult``: ``metrics`` (one row of a report),
``details`` (curves and settings, JSON-ready), ``timings`` and ``outputs`` (the masks or heatmaps, for
figures). ``suite.columns()`` gives the report columns of its metrics. ``eval.harness`` runs a suite for
several methods and seeds.
"""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from eval.cascading import CascadingRandomization
from eval.completeness import DEFAULT_N_RANDOM, Completeness, Soundness, evaluated_labels, label_maps
from eval.consistency import Consistency, no_resolution_reason, resolution_factory, resolution_parameter
from eval.degradation import Degradation
from eval.fidelity import ApproximatorFidelity, ModelFidelity
from eval.groundtruth import TruePositiveRate
from eval.insertion import Deletion, Insertion
from eval.localization import BoundingBoxRatio
from eval.perturbation_curves import KINDS, check_gray, check_levels, has_logits, perturbation_curves
from eval.protocol import Selection, as_inputs, as_scores, as_targets, predict_probabilities, select_masks
from eval.report import COLUMNS, Column
from eval.saliency_metric import SaliencyMetric
from eval.sensitivity import MaxSensitivity
from eval.sensitivity_n import SensitivityN, mean_correlation
from eval.stability import Stability
from eval.timing import TimePerSample
from kernels.validation import check_choice, check_int

log = logging.getLogger("eval")


@dataclass
class SuiteResult:
    """What a suite measured for one explainer (see the module docstring)."""

    metrics: dict
    details: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)


class Suite(ABC):
    """A paper's metrics for one model and its data."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    @abstractmethod
    def evaluate(self, explainer, *, explain_on: Callable | None = None) -> SuiteResult:
        """Score ``explainer``; ``explain_on(model, x, targets)`` re-explains on other models (sanity checks)."""

    @abstractmethod
    def columns(self) -> dict[str, Column]:
        """The report columns of the suite's metrics."""


# ------------------------------------------------------------------------------------------- MEED

class MEEDSuite(Suite):
    """MEED's columns for explainers of ``model`` (module docstring).

    Args:
        model: the black box M.
        x_train, x_test: the masks of x_train train the post-hoc approximators; x_test is scored.
        k: features per mask (None: the explainer's own default, for explainers built with a k).
        approximator_factory, optimizer_factory, eval_epochs, eval_batch_size: the post-hoc approximators
            of FS-A / FU-A (``eval.fidelity``); ``eval_epochs=0`` skips them.
        seed: the approximators' and SEN's randomness.
        sen_samples: SEN on the first test samples only (default all); no SEN on integer token ids (the
            paper reports none for IMDB).
        sen_form: "max" (Yeh et al.'s maximum over the 50 draws) or "last" (the released code's loop,
            whose running maximum is reset: the last draw only).
        sen_clean_conditioning: explain every perturbation of x conditioned on the clean M(x) (the
            released code does not recompute y); needs an explainer with a ``conditioning`` argument (MEED).
        tps: what TPS times: "explainer" (its ``explain``) or "blackbox" (M's predict, as the released code).
        ground_truth: (N_test, *score shape) relevant-feature marks of synthetic data -> "TPR", "TPR chance".
        batch_size: inputs per call of mask selection, SEN and TPS.
        verbose: Keras verbosity of the approximators' training.
    """

    name = "meed"
    paper = "MEED (Liang et al., KDD 2020), Section 4.0.2"

    def __init__(self, model, x_train, x_test, *, k: int | None, approximator_factory, optimizer_factory,
                 eval_epochs: int = 12, eval_batch_size: int = 32, seed: int = 0, sen_samples: int | None = None,
                 sen_form: str = "max", sen_clean_conditioning: bool = False, tps: str = "explainer",
                 ground_truth=None, batch_size: int = 256, verbose: int = 0):
        self.model = model
        self.x_train, self.x_test = as_inputs("x_train", x_train), as_inputs("x_test", x_test)
        self.k = k
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.eval_epochs = check_int("eval_epochs", eval_epochs, minimum=0)
        self.tps = check_choice("tps", tps, ("explainer", "blackbox"))
        self.ground_truth = ground_truth
        self.sen_clean_conditioning = bool(sen_clean_conditioning)
        self.model_fidelity = [ModelFidelity(model, self.x_test, k=k, part=part, batch_size=batch_size)
                               for part in ("selected", "unselected")]
        self.approximator_fidelity = [] if self.eval_epochs == 0 else [
            ApproximatorFidelity(model, self.x_test, x_train=self.x_train, k=k, part=part,
                                 approximator_factory=approximator_factory, optimizer_factory=optimizer_factory,
                                 epochs=self.eval_epochs, train_batch_size=eval_batch_size, seed=seed,
                                 verbose=verbose, batch_size=batch_size)
            for part in ("selected", "unselected")]
        self.sen = None
        if self.x_test.dtype.kind == "f":
            n = None if sen_samples is None else check_int("sen_samples", sen_samples, minimum=1)
            self.sen = MaxSensitivity(model, self.x_test, seed=seed, form=sen_form, n_inputs=n, batch_size=batch_size)
        timed = (lambda xb: model.predict(xb, verbose=0)) if self.tps == "blackbox" else None
        self.tps_metric = TimePerSample(model, self.x_test, timed=timed, batch_size=batch_size)

    def columns(self) -> dict[str, Column]:
        return {name: COLUMNS[name] for name in ("FS-M", "FU-M", "FS-A", "FU-A", "TPR", "TPR chance", "SEN", "TPS")}

    def evaluate(self, explainer, *, explain_on=None) -> SuiteResult:
        timings, metrics = {}, {}
        start = time.perf_counter()
        masks = Selection(test=select_masks(explainer, self.x_test, self.k, batch_size=self.batch_size),
                          train=select_masks(explainer, self.x_train, self.k, batch_size=self.batch_size))
        timings["select_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        for metric in self.model_fidelity + self.approximator_fidelity:
            metrics[metric.name] = metric.evaluate(masks)
        timings["fidelity_seconds"] = time.perf_counter() - start

        if self.ground_truth is not None:  # synthetic data: the share of truly relevant features selected
            tpr = TruePositiveRate(self.model, self.x_test, ground_truth=self.ground_truth, k=self.k).detailed_evaluate(
                masks)
            metrics["TPR"], metrics["TPR chance"] = tpr.value, tpr.details["chance"]

        metrics["SEN"] = None
        if self.sen is not None:
            if self.sen_clean_conditioning:
                self.sen.explain_kwargs = {"conditioning": predict_probabilities(self.model, self.sen.x,
                                                                                 self.batch_size)}
            log.info("SEN: %d perturbations of each of %d test inputs", self.sen.n_samples, len(self.sen.x))
            start = time.perf_counter()
            metrics["SEN"] = self.sen.evaluate(explainer)
            timings["sen_seconds"] = time.perf_counter() - start
        metrics["TPS"] = self.tps_metric.evaluate(explainer)
        return SuiteResult(metrics=metrics, timings=timings, outputs={"masks": masks})


# -------------------------------------------------------------------------------------------- IBA

class IBASuite(Suite):
    """The IBA paper's metrics for heatmap explainers of the image classifier ``model`` (module docstring).

    Args:
        model, x, targets: the classifier, the images (N, H, W, C) and the explained classes (None: the
            model's prediction).
        tiles: the two tile sizes of degradation; Sensitivity-n uses the first.
        boxes: (N, 4) object boxes -> the bounding-box ratio.
        n_masks, seed: Sensitivity-n's random tile sets per n and their seed (also the randomisation's).
        sanity_n: images of the cascading randomisation test (0 skips it; it needs ``explain_on``).
        batch_size: model calls of the metrics.
    """

    name = "iba"
    paper = "IBA (Schulz et al., ICLR 2020), Section 4"

    def __init__(self, model, x, targets=None, *, tiles=(8, 14), boxes=None, n_masks: int = 100, seed: int = 0,
                 sanity_n: int = 20, batch_size: int = 64):
        self.model, self.x = model, as_inputs("x", x).astype(np.float32)
        if targets is None:
            targets = predict_probabilities(model, self.x, batch_size).argmax(axis=1)
        self.targets = np.asarray(targets)
        self.tiles, self.boxes = tuple(tiles), boxes
        self.sanity_n = check_int("sanity_n", sanity_n, minimum=0)
        self.degradation = [Degradation(model, self.x, self.targets, tile=tile, batch_size=batch_size)
                            for tile in self.tiles]
        self.sensitivity = SensitivityN(model, self.x, self.targets, tile=self.tiles[0], n_masks=n_masks, seed=seed,
                                        batch_size=batch_size)
        self.bbox = None if boxes is None else BoundingBoxRatio(model, self.x, self.targets, boxes=boxes,
                                                                 batch_size=batch_size)
        n_sanity = min(self.sanity_n, len(self.x))
        self.cascade = None if n_sanity == 0 else CascadingRandomization(
            model, self.x[:n_sanity], self.targets[:n_sanity], seed=seed)

    def columns(self) -> dict[str, Column]:
        names = [m.name for m in self.degradation] + ["sensitivity-n (pooled)", "sensitivity-n (per image)"]
        columns = {name: Degradation.column for name in names[:len(self.degradation)]}
        columns.update({name: SensitivityN.column for name in names[len(self.degradation):]})
        columns["bbox ratio"] = BoundingBoxRatio.column
        columns["seconds per image"] = Column("seconds", False, "time to explain one image (in one batched call)")
        columns["SSIM, top layer random"] = Column("number", False, "mean SSIM with the original heatmaps after "
                                                   "re-initialising the top layer")
        columns["SSIM, all layers random"] = CascadingRandomization.column
        return columns

    def evaluate(self, explainer, *, explain_on=None) -> SuiteResult:
        start = time.perf_counter()
        scores = as_scores(explainer, self.x, targets=self.targets).astype(np.float32)
        seconds = time.perf_counter() - start
        metrics, details = {}, {}
        for metric in self.degradation:
            result = metric.detailed_evaluate(scores)
            metrics[metric.name] = result.value
            details[f"degradation_{metric.tile}"] = result.details
        sens = self.sensitivity.detailed_evaluate(scores)
        metrics["sensitivity-n (pooled)"] = sens.value
        metrics["sensitivity-n (per image)"] = mean_correlation(np.asarray(sens.details["per_image_correlation"]))
        details["sensitivity_n"] = sens.details
        if self.bbox is not None:
            bbox = self.bbox.detailed_evaluate(scores)
            metrics["bbox ratio"] = bbox.value
            details["bbox"] = bbox.details
        metrics["seconds per image"] = seconds / len(self.x)
        timings = {"explain_seconds": seconds}
        if self.cascade is not None and explain_on is not None:
            log.info("cascading randomisation on %d images", len(self.cascade.x))
            start = time.perf_counter()
            cascade = self.cascade.detailed_evaluate(explain_on)
            metrics["SSIM, top layer random"] = float(cascade.result.ssim[1])
            metrics["SSIM, all layers random"] = cascade.value
            details["cascading_randomization"] = cascade.details
            timings["sanity_seconds"] = time.perf_counter() - start
        return SuiteResult(metrics=metrics, details=details, timings=timings, outputs={"scores": scores})


# --------------------------------------------------------------------------------------------- VP

def select_samples(model, x, y, *, n: int | None = 200, threshold: float = 0.5, seed: int | None = 0,
                   batch_size: int = 256) -> np.ndarray:
    """Indices (ascending) of the samples VP evaluates on (Section 4.2): classified correctly (the predicted
    class is y) with p(y | x) > ``threshold``; of those, ``n`` drawn at random with ``seed`` (NumPy PCG64,
    without replacement), the first ``n`` when ``seed`` is None, all when ``n`` is None or fewer qualify
    (a warning says so). ``y``: labels (N,) or one-hot rows."""
    x = as_inputs("x", x)
    probabilities = predict_probabilities(model, x, check_int("batch_size", batch_size, minimum=1))
    labels = as_targets(y, len(x), probabilities.shape[1], name="y")
    if labels is None:
        raise ValueError("y: expected the true labels of x, got None")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not 0 <= threshold < 1:
        raise ValueError(f"threshold: expected a probability in [0, 1), got {threshold!r}")
    rows = np.arange(len(x))
    eligible = rows[(probabilities.argmax(axis=1) == labels) & (probabilities[rows, labels] > threshold)]
    if n is None:
        return eligible
    n = check_int("n", n, minimum=1)
    if len(eligible) <= n:
        if len(eligible) < n:
            log.warning("select_samples: %d of %d samples are classified correctly with p > %g; using all of "
                        "them instead of %d", len(eligible), len(x), threshold, n)
        return eligible
    if seed is None:
        return eligible[:n]
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    return np.sort(rng.choice(eligible, size=n, replace=False))


#: The VP suite's columns: consistency (Table 1), stability (Table 2), perturbation (Table 3), time (Fig. 6).
VP_COLUMNS = {
    "consistency SSIM": Column("number", True, "mean SSIM of the maps at different upsample sizes (pairs averaged)"),
    "consistency PC": Column("number", True, "mean Pearson correlation of the maps at different upsample sizes"),
    "consistency PSNR": Column("number", True, "mean PSNR (dB) of the maps at different upsample sizes"),
    "Lipschitz": Column("number", False, "local Lipschitz estimate max ||E(x) - E(x')|| / ||x - x'|| (mean)"),
    "perturbation (probability)": Column("number", True, "area between the top-k and low-k curves: probability "
                                         "difference of the class"),
    "perturbation (logit)": Column("number", True, "area between the top-k and low-k curves: logit difference"),
    "perturbation (KL)": Column("number", True, "area between the top-k and low-k curves: KL(p(x) || p(x~))"),
    "seconds per image": Column("seconds", False, "time to explain one image (in one batched call)"),
}


class VPSuite(Suite):
    """The VP paper's metrics for image explainers of ``model`` (module docstring; VP Section 4.2).

    Args:
        model, x, y: the classifier, a pool of images (N, H, W, C) and their true labels (the explained
            class, as in the paper's probability difference on the ground-truth class).
        n_samples, threshold, selection_seed: ``select_samples``' n (200), threshold (0.5) and seed (None:
            the first n); ``select=False`` evaluates the first n_samples of x as they are.
        sizes: consistency's upsample sizes (None: (1, 2, 4) below 112 px, (4, 8, 16) above).
        consistency_samples, consistency_repeats: 50 samples x 4 draws from the evaluated samples.
        stability_samples: images of the stability estimate (30), drawn from the evaluated samples.
        n_draws, std, clip, ascent_steps, differentiable: the stability search (``eval.stability``;
            ``differentiable(explainer) -> differentiable(x, targets)`` for the ascent).
        levels, gray: the perturbation levels (0, 0.1, ..., 1) and the gray value (0.5).
        factories: {method name: make(m) -> explainer} for consistency; otherwise the suite rebuilds the
            explainer at each size from its ``get_config()`` through the registry
            (``eval.consistency.resolution_factory``), fitted with ``fit(*fit_args, **fit_kwargs)`` when it
            must be; a method without a resolution parameter (or one that needs fitting but got no
            fit_args / fit_kwargs) gets no consistency columns, with the reason in the details.
        sanity_n: images of cascading randomisation with SSIM (0: skipped; it needs ``explain_on``).
        seed: seeds the consistency draws, the stability images and noise, and the randomisation.
        batch_size: inputs per explainer / model call.
    """

    name = "vp"
    paper = "VP (Variational Perturbations, ICLR 2022 submission), Section 4.2"

    def __init__(self, model, x, y, *, n_samples: int = 200, threshold: float = 0.5, selection_seed: int | None = 0,
                 select: bool = True, sizes=None, consistency_samples: int = 50, consistency_repeats: int = 4,
                 stability_samples: int = 30, n_draws: int = 200, std: float = 0.1, clip=None,
                 ascent_steps: int = 0, differentiable=None, levels=None, gray=0.5, factories=None,
                 fit_args=(), fit_kwargs=None, sanity_n: int = 0, seed: int = 0, batch_size: int = 64,
                 verbose: int = 0):
        self.model = model
        pool = as_inputs("x", x).astype(np.float32)
        n_samples = check_int("n_samples", n_samples, minimum=1)
        if select:
            self.indices = select_samples(model, pool, y, n=n_samples, threshold=threshold, seed=selection_seed,
                                          batch_size=batch_size)
            if len(self.indices) == 0:
                raise ValueError(f"x: no sample is classified correctly with probability > {threshold}")
        else:
            self.indices = np.arange(min(n_samples, len(pool)))
        labels = as_targets(y, len(pool), int(model.outputs[0].shape[-1]), name="y")
        if labels is None:
            raise ValueError("y: expected the true labels of x (the explained classes), got None")
        self.x, self.targets = pool[self.indices], labels[self.indices]
        self.seed = check_int("seed", seed, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.factories = dict(factories or {})
        self.fit_args, self.fit_kwargs = tuple(fit_args), dict(fit_kwargs or {})
        self.consistency = Consistency(model, self.x, self.targets, sizes=sizes, n_samples=consistency_samples,
                                       repeats=consistency_repeats, seed=self.seed, batch_size=batch_size)
        count = min(check_int("stability_samples", stability_samples, minimum=1), len(self.x))
        self.stability_indices = np.sort(np.random.default_rng([self.seed, 1]).choice(len(self.x), count,
                                                                                      replace=False))
        self.stability = Stability(model, self.x[self.stability_indices], self.targets[self.stability_indices],
                                   n_draws=n_draws, std=std, clip=clip, seed=self.seed, ascent_steps=ascent_steps,
                                   differentiable=differentiable, verbose=verbose, batch_size=batch_size)
        self.perturbation = {"levels": check_levels(levels), "gray": check_gray(gray, self.x.shape[-1])}
        self.sanity_n = min(check_int("sanity_n", sanity_n, minimum=0), len(self.x))
        self.cascade = None if self.sanity_n == 0 else CascadingRandomization(
            model, self.x[:self.sanity_n], self.targets[:self.sanity_n], seed=self.seed, normalize="minmax")

    def columns(self) -> dict[str, Column]:
        columns = dict(VP_COLUMNS)
        if self.cascade is not None:
            columns["SSIM, all layers random"] = CascadingRandomization.column
        return columns

    def consistency_factory(self, explainer, make=None):
        """(make(m), "") for the explainer, or (None, why it gets no consistency score)."""
        if make is not None:
            return make, ""
        config = explainer.get_config() if hasattr(explainer, "get_config") else {}
        method = config.get("method")
        if method in self.factories:
            return self.factories[method], ""
        if not isinstance(method, str):
            return None, "the explainer names no registered method (get_config()['method']) and no factory was given"
        if resolution_parameter(method) is None:
            return None, no_resolution_reason(method)
        from eval import registry

        needs_fit = registry.spec(method).requires_fit
        if needs_fit and not (self.fit_args or self.fit_kwargs):
            return None, (f"{method!r} must be fitted at every upsample size; pass fit_args / fit_kwargs (its "
                          f"training data) or a factory")
        fit = (lambda built: built.fit(*self.fit_args, **self.fit_kwargs)) if needs_fit else None
        return resolution_factory(explainer, self.model, fit=fit), ""

    def evaluate(self, explainer, *, explain_on=None, make=None) -> SuiteResult:
        """Score ``explainer``; ``make(m) -> explainer`` overrides the consistency factory."""
        metrics, details, timings = {}, {}, {}
        start = time.perf_counter()
        scores = as_scores(explainer, self.x, targets=self.targets, batch_size=self.batch_size).astype(np.float32)
        seconds = time.perf_counter() - start
        metrics["seconds per image"] = seconds / len(self.x)
        timings["explain_seconds"] = seconds

        start = time.perf_counter()
        kinds = tuple(kind for kind in KINDS if kind != "logit" or has_logits(self.model))
        curves = perturbation_curves(self.model, self.x, scores, self.targets, kinds=kinds,
                                     batch_size=self.batch_size, **self.perturbation)
        for kind in KINDS:
            metrics[f"perturbation ({'KL' if kind == 'kl' else kind})"] = curves.area.get(kind)
        details["perturbation"] = curves.to_dict()
        timings["perturbation_seconds"] = time.perf_counter() - start

        start = time.perf_counter()
        stability = self.stability.detailed_evaluate(explainer)
        metrics["Lipschitz"] = stability.value
        details["stability"] = {**stability.details, "indices": self.stability_indices.tolist()}
        timings["stability_seconds"] = time.perf_counter() - start

        factory, reason = self.consistency_factory(explainer, make)
        for key in ("SSIM", "PC", "PSNR"):
            metrics[f"consistency {key}"] = None
        if factory is None:
            log.info("consistency skipped: %s", reason)
            details["consistency"] = {"skipped": reason}
        else:
            start = time.perf_counter()
            result = self.consistency.detailed_evaluate(factory)
            for key in ("SSIM", "PC", "PSNR"):
                metrics[f"consistency {key}"] = result.result.mean[key.lower()]
            details["consistency"] = result.details
            timings["consistency_seconds"] = time.perf_counter() - start

        if self.cascade is not None and explain_on is not None:
            start = time.perf_counter()
            cascade = self.cascade.detailed_evaluate(explain_on)
            metrics["SSIM, all layers random"] = cascade.value
            details["cascading_randomization"] = cascade.details
            timings["sanity_seconds"] = time.perf_counter() - start
        details["samples"] = {"indices": self.indices.tolist(), "n": int(len(self.x))}
        return SuiteResult(metrics=metrics, details=details, timings=timings,
                           outputs={"scores": scores, "curves": curves})


# ----------------------------------------------------------------------------------------- masking

def _soundness_name(substrate: str) -> str:
    """The report column of soundness on a substrate ("gray" / "random"), as eval.completeness.Soundness names it."""
    return f"soundness ({'gray' if substrate == 'gray' else 'random image'})"


class MaskingSuite(Suite):
    """The masking paper's metrics (Gupta et al., NeurIPS 2022, Appendices C-D, Tables 2-9) for explainers of
    the image classifier ``model``: worst-case completeness and soundness on the gray and (with a ``pool``)
    random-image substrates, from one map per evaluated label (the top-1 and top-2 labels by default);
    deletion (gray) and insertion (blur and gray) of the top-1 map; the saliency metric; the time per map.

    Args:
        model, x: the classifier and the images (N, H, W, C).
        pool: images the random-image substrate draws from (None: the gray substrate only).
        labels: the labels evaluated per image ("top2", "all", "top1", a list; eval.completeness).
        eps1, eps2: the epsilons of completeness and soundness (the appendix tables: 0 and 0.1).
        fractions: the AUC metric's levels: "paper" (d/28 .. d) or "cifar" (0.2 d .. 0.6 d).
        n_random: pool images averaged per image for the random-image substrate.
        class_subset: restrict the softmax to these classes (the released demo's label list).
        causal_preset: deletion / insertion preset, "rise" (default) or "xplique".
        holdout: held-out images on which the saliency metric's threshold is tuned (None: ``sm_threshold``).
        sm_threshold: the saliency metric's delta when no holdout is given (default 1: the map's mean).
        seed: the random-image draws.
        batch_size: composite images per model call.
    """

    name = "masking"
    paper = "Gupta et al., NeurIPS 2022, Appendices C-D"

    def __init__(self, model, x, *, pool=None, labels="top2", eps1: float = 0.0, eps2: float = 0.1,
                 fractions="paper", n_random: int = DEFAULT_N_RANDOM, class_subset=None, causal_preset: str = "rise",
                 holdout=None, sm_threshold: float = 1.0, seed: int = 0, batch_size: int = 256):
        self.model, self.x = model, as_inputs("x", x).astype(np.float32)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        probabilities = predict_probabilities(model, self.x, batch_size)
        self.labels = evaluated_labels(probabilities, labels, class_subset=class_subset)
        self.top1 = evaluated_labels(probabilities, "top1", class_subset=class_subset)[:, 0]
        shared = dict(labels=self.labels, eps1=eps1, eps2=eps2, fractions=fractions, class_subset=class_subset,
                      seed=seed, batch_size=batch_size)
        substrates = {"gray": {}} if pool is None else {"gray": {}, "random": {"pool": pool, "n_random": n_random}}
        #: {substrate: the Completeness metric}; its details carry the soundness of the same maps.
        self.certificates = {name: Completeness(model, self.x, substrate=name, **shared, **options)
                             for name, options in substrates.items()}
        self.deletion = Deletion(model, self.x, self.top1, preset=causal_preset, substrate=0.0, batch_size=batch_size)
        self.insertion = [Insertion(model, self.x, self.top1, preset=causal_preset, substrate=s, batch_size=batch_size)
                          for s in ("blur", 0.0)]
        self.holdout = None if holdout is None else as_inputs("holdout", holdout).astype(np.float32)
        self.holdout_top1 = None if self.holdout is None else evaluated_labels(
            predict_probabilities(model, self.holdout, batch_size), "top1", class_subset=class_subset)[:, 0]
        self.saliency = SaliencyMetric(model, self.x, self.top1, holdout=self.holdout,
                                       holdout_targets=self.holdout_top1,
                                       threshold="tune" if self.holdout is not None else sm_threshold,
                                       batch_size=batch_size)

    def columns(self) -> dict[str, Column]:
        columns = {}
        for name, metric in self.certificates.items():
            columns[metric.name], columns[_soundness_name(name)] = Completeness.column, Soundness.column
        columns[self.deletion.name] = Deletion.column
        columns.update({metric.name: Insertion.column for metric in self.insertion})
        columns[self.saliency.name] = SaliencyMetric.column
        columns["seconds per map"] = Column("seconds", False, "time to explain one (image, label) pair")
        return columns

    def evaluate(self, explainer, *, explain_on=None) -> SuiteResult:
        start = time.perf_counter()
        maps = label_maps(explainer, self.x, self.labels, batch_size=None)
        seconds = time.perf_counter() - start
        first_is_top1 = np.array_equal(self.labels[:, 0], self.top1)
        top1 = maps[:, 0] if first_is_top1 else as_scores(explainer, self.x, targets=self.top1)
        metrics, details = {}, {}
        for name, metric in self.certificates.items():
            result = metric.detailed_evaluate(maps)
            metrics[metric.name], metrics[_soundness_name(name)] = result.value, result.details["soundness"]
            details[f"certificate_{name}"] = result.details
        for metric in [self.deletion, *self.insertion]:
            result = metric.detailed_evaluate(top1)
            metrics[metric.name] = result.value
            details[metric.name] = result.details
        sm_input = top1
        if self.holdout is not None:
            sm_input = (top1, as_scores(explainer, self.holdout, targets=self.holdout_top1))
        result = self.saliency.detailed_evaluate(sm_input)
        metrics[self.saliency.name] = result.value
        details["saliency_metric"] = result.details
        metrics["seconds per map"] = seconds / self.labels.size
        return SuiteResult(metrics=metrics, details=details, timings={"explain_seconds": seconds},
                           outputs={"maps": maps, "labels": self.labels})
