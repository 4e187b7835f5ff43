"""The one progress bar of the project: a Keras Progbar that appears only when a call is long.

Every long loop (an explainer's chunks, a metric's perturbations, IBA's estimation) reports its progress
through ``Progress``, with one rule: ``verbose=0`` never shows a bar; ``verbose=1`` shows one when the
pace measured at the second update predicts more than ``PROGRESS_AFTER_SECONDS`` still to go (the first
update includes tracing the tf.function, so it is not used to predict); ``verbose=2`` always shows one.
"""
from __future__ import annotations

import time

import keras

#: verbose=1: a bar appears when the remaining time predicted at the second update exceeds this (seconds).
PROGRESS_AFTER_SECONDS = 2.0


class Progress:
    """Progress over ``total`` units (``update(done)`` with the count done so far); see the module docstring."""

    def __init__(self, total: int | None, verbose: int, unit_name: str = "sample"):
        self.total, self.verbose, self.unit_name = total, int(verbose), unit_name
        self.bar = None
        self.decided = self.verbose == 0 or total is None
        self.last = time.perf_counter()
        self.seen = 0
        if self.verbose >= 2 and total is not None:
            self.bar, self.decided = keras.utils.Progbar(total, unit_name=unit_name), True

    def update(self, done: int):
        now = time.perf_counter()
        if not self.decided and self.seen:
            self.decided = True
            pace = (now - self.last) / max(done - self.seen, 1)
            if pace * (self.total - done) > PROGRESS_AFTER_SECONDS:
                self.bar = keras.utils.Progbar(self.total, unit_name=self.unit_name)
        self.last, self.seen = now, done
        if self.bar is not None:
            self.bar.update(done)
