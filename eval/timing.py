"""TPS: the explanation time per sample that MEED reports (Liang et al., KDD 2020, Section 4.0.2).

The paper reports the "average explanation Time Per Sample"; the original code timed the black box's
prediction instead of the explainer (reference/meed_original_code.md, "Evaluation"). This function
times whatever callable it gets, so callers pass the explainer; passing the black box's ``predict``
reproduces the original number.
"""
from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import tensorflow as tf

from eval.metrics import Metric, MetricResult, require_explainer
from eval.protocol import Explainer, as_inputs
from eval.report import COLUMNS
from kernels.validation import check_int


def time_per_sample(fn, x, *, batch_size: int = 256, repeats: int = 3, warmup: int = 1) -> float:
    """Seconds per sample to run ``fn`` over ``x`` in batches of ``batch_size``.

    ``fn`` is an Explainer (its ``explain`` is timed) or any callable on a batch. Each timed pass runs
    every batch and converts the outputs to numpy, so asynchronous device work is included. ``warmup``
    untimed full passes come first (tf.function tracing, also for the smaller last batch, and memory
    allocation would otherwise be counted); the result is the median of ``repeats`` timed passes
    divided by the number of samples.
    """
    x = as_inputs("x", x)
    if len(x) == 0:
        raise ValueError(f"x: expected at least one sample, got shape {x.shape}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    if isinstance(fn, Explainer):
        def run(batch):
            return fn.explain(batch, batch_size=batch_size)
    elif callable(fn):
        run = fn
    else:
        raise TypeError(f"fn: expected an Explainer or a callable on a batch of inputs, got {fn!r}")

    def one_pass():
        for start in range(0, len(x), batch_size):
            tf.nest.map_structure(np.asarray, run(x[start:start + batch_size]))

    for _ in range(warmup):
        one_pass()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)) / len(x)


class TimePerSample(Metric):
    """TPS: the explainer's seconds per sample over ``x`` in batches of ``batch_size`` (``time_per_sample``).

    ``evaluate(explainer)`` times ``explainer.explain`` -- or, with ``timed`` (a callable on a batch, e.g.
    the black box's predict, which is what MEED's released code timed), that callable instead.
    """

    column: ClassVar = COLUMNS["TPS"]
    requires: ClassVar = ("explainer",)

    def __init__(self, model, x, targets=None, *, timed=None, repeats: int = 3, warmup: int = 1, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.timed, self.repeats, self.warmup = timed, repeats, warmup

    @property
    def name(self) -> str:
        return "TPS"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        fn = self.timed if self.timed is not None else require_explainer(self, explainer_or_scores, "times it")
        seconds = time_per_sample(fn, self.x, batch_size=self.batch_size, repeats=self.repeats, warmup=self.warmup)
        return MetricResult("TPS", seconds, {"timed": "explain" if self.timed is None else "a given callable"})
