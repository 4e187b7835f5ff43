"""Suites: the metrics of one paper, set up once for a model and its data, run on one explainer at a time.

- ``MEEDSuite``: MEED's table columns (Liang et al., KDD 2020, Section 4.0.2, Tables 1-5): FS-M, FU-M,
  FS-A, FU-A, SEN, TPS (and TPR on data with known relevant features). The released code's evaluation
  quirks are options of this suite (``sen_form``, ``sen_clean_conditioning``, ``tps``), not of a shared
  evaluator.
- ``IBASuite``: the IBA paper's metrics (Schulz et al., ICLR 2020, Section 4, Table 1): degradation at
  two tile sizes, Sensitivity-n (both poolings from the same drops), the bounding-box ratio where the
  data has boxes, the cascading randomisation sanity check, and the time per heatmap.

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
from eval.degradation import Degradation
from eval.fidelity import ApproximatorFidelity, ModelFidelity
from eval.groundtruth import TruePositiveRate
from eval.localization import BoundingBoxRatio
from eval.protocol import Selection, as_inputs, as_scores, predict_probabilities, select_masks
from eval.report import COLUMNS, Column
from eval.sensitivity import MaxSensitivity
from eval.sensitivity_n import SensitivityN, mean_correlation
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
