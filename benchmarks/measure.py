"""The one timing rule of the benchmark scripts: the median wall time of repeated calls after a warm-up."""
from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    """The median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (tracing excluded)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
