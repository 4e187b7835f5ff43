"""Metrics as classes: ``Metric(model, x, targets=None, *, batch_size=None, **options)``, then
``evaluate(explainer_or_scores) -> float`` or ``detailed_evaluate(explainer_or_scores) -> MetricResult``.

Every metric of the project exists as a function (``eval.model_fidelity``, ``eval.degradation``, ...)
and as a class built on it (the classes live beside their functions; ``METRICS`` lists them). A class
fixes the model, the inputs and the settings once, so several explainers are scored the same way, and
carries its metadata as class attributes: ``column`` (how reports show it, whether higher is better)
and ``requires`` (what ``evaluate`` needs besides a scores array):

- "explainer": it calls the explainer itself (SEN perturbs the inputs, TPS times it), so a scores
  array is not enough;
- "explain_fn": it re-explains on other models (cascading randomisation takes ``explain_fn(model, x,
  targets)``);
- "x_train": it trains on masked training inputs (FS-A / FU-A), so it needs an explainer or a
  ``Selection`` with the training masks;
- "boxes", "ground_truth": data a dataset must provide (bounding boxes, truly relevant features).

Suites of metrics per paper are in ``eval.suites``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from eval.protocol import as_inputs, check_batch_size
from eval.report import COLUMNS, Column


@dataclass(frozen=True)
class MetricResult:
    """The value of a metric with what it was computed from.

    ``details``: JSON-ready specifics (curves, per-step values, settings); ``result``: the function's own
    result object where it has one (e.g. a DegradationResult, for plots). ``float(result)`` is the value.
    """

    metric: str
    value: float
    details: Mapping = field(default_factory=dict)
    result: object = None

    def __float__(self) -> float:
        return float(self.value)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, **self.details}


class Metric(ABC):
    """Base class (module docstring). Subclasses set ``column`` / ``requires`` and write ``_evaluate``."""

    #: How reports show the metric and whether higher is better.
    column: ClassVar[Column] = Column()
    #: What evaluate needs besides a scores array (module docstring).
    requires: ClassVar[tuple[str, ...]] = ()
    #: Default inputs per call of the explainer / the model.
    default_batch_size: ClassVar[int] = 256

    def __init__(self, model, x, targets=None, *, batch_size=None):
        self.model = model
        self.x = as_inputs("x", x)
        self.targets = targets
        self.batch_size = check_batch_size(batch_size, self.default_batch_size)

    @property
    @abstractmethod
    def name(self) -> str:
        """The metric's column name in reports (may include its settings, e.g. "degradation 8x8")."""

    @property
    def higher_is_better(self) -> bool | None:
        return self.column.higher_is_better

    @property
    def report_column(self) -> Column:
        """The column of this instance in a report (MEED's known columns by name, else the class's)."""
        return COLUMNS.get(self.name) or Column(self.column.format, self.higher_is_better, self.column.description)

    @abstractmethod
    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        """The metric of an explainer (or of scores / a Selection, as ``requires`` allows) with details."""

    def evaluate(self, explainer_or_scores) -> float:
        """The metric's value for an explainer, its scores or a Selection of its masks."""
        return float(self.detailed_evaluate(explainer_or_scores).value)

    __call__ = evaluate

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, n={len(self.x)})"


def require_explainer(metric: Metric, value, what: str):
    """``value`` if it is an explainer (has ``explain``); TypeError naming the metric otherwise."""
    if not hasattr(value, "explain"):
        raise TypeError(f"explainer_or_scores: {metric.name} {what}, so it needs the explainer itself, got "
                        f"{type(value).__name__}")
    return value


def metric_classes() -> list[type[Metric]]:
    """Every metric class of the project (imported on demand: the modules hold TensorFlow code)."""
    from eval.cascading import CascadingRandomization
    from eval.completeness import Completeness, Soundness
    from eval.consistency import Consistency
    from eval.degradation import Degradation
    from eval.fidelity import ApproximatorFidelity, ModelFidelity
    from eval.groundtruth import TruePositiveRate
    from eval.insertion import Deletion, Insertion
    from eval.localization import BoundingBoxRatio
    from eval.perturbation_curves import PerturbationCurves
    from eval.saliency_metric import SaliencyMetric
    from eval.sensitivity import MaxSensitivity
    from eval.sensitivity_n import SensitivityN
    from eval.stability import Stability
    from eval.timing import TimePerSample

    return [ModelFidelity, ApproximatorFidelity, MaxSensitivity, TimePerSample, TruePositiveRate, Degradation,
            SensitivityN, BoundingBoxRatio, CascadingRandomization, Consistency, Stability, PerturbationCurves,
            Completeness, Soundness, Deletion, Insertion, SaliencyMetric]
