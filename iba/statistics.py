"""Streaming per-element statistics of a feature map: mean, std, share of non-zero samples, RMS.

The bottleneck replaces the signal R by noise with R's own mean and standard deviation (paper, eq. 2),
estimated element-wise over a dataset. ``FeatureStatistics`` accumulates them chunk by chunk in float64
with the parallel (Chan et al.) merge of Welford's algorithm, so any number of samples fits in memory
and the result does not depend on how the data is chunked (up to float64 rounding).
"""
from __future__ import annotations

import numpy as np


class FeatureStatistics:
    """Per-element running statistics of feature maps of one shape (h, w, c).

    ``update(chunk)`` takes a batch (n, h, w, c). Then:

    - ``mean``: the sample mean; ``std(min_std)``: the Bessel-corrected (ddof=1) standard deviation,
      floored at ``min_std`` (the IBA package's 0.01);
    - ``active(threshold)``: elements non-zero in more than ``threshold`` of the samples;
    - ``channel_moments(min_std)``: the mean and Bessel-corrected std of each channel (last axis) over
      every sample and position (the Readout's optional per-channel normalisation);
    - ``rms_nonzero(min_std)``: the root mean square of the non-zero values of each element (the paper
      code's std for post-ReLU maps, whose mean it sets to 0), floored at ``min_std`` (also for elements
      that were never non-zero).
    """

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)
        self.count = 0
        self._mean = np.zeros(self.shape, np.float64)
        self._m2 = np.zeros(self.shape, np.float64)
        self._nonzero = np.zeros(self.shape, np.int64)
        self._sumsq = np.zeros(self.shape, np.float64)

    def update(self, chunk) -> None:
        chunk = np.asarray(chunk, np.float64)
        if chunk.shape[1:] != self.shape:
            raise ValueError(f"chunk: expected shape (n, {', '.join(map(str, self.shape))}), got {chunk.shape}")
        n_b = chunk.shape[0]
        if n_b == 0:
            return
        mean_b = chunk.mean(axis=0)
        m2_b = np.square(chunk - mean_b).sum(axis=0)
        total = self.count + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / total)
        self._m2 += m2_b + np.square(delta) * (self.count * n_b / total)
        self.count = total
        self._nonzero += np.count_nonzero(chunk, axis=0)
        self._sumsq += np.square(chunk).sum(axis=0)

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    def std(self, min_std: float = 0.0) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"need at least 2 samples for a standard deviation, got {self.count}")
        return np.maximum(np.sqrt(self._m2 / (self.count - 1)), min_std)

    def active(self, threshold: float) -> np.ndarray:
        return self._nonzero / max(self.count, 1) > threshold

    def rms_nonzero(self, min_std: float = 0.0) -> np.ndarray:
        rms = np.sqrt(self._sumsq / np.maximum(self._nonzero, 1))
        return np.maximum(rms, min_std)

    def channel_moments(self, min_std: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mean, std) pooling all positions: the exact merge of the per-element moments."""
        positions = int(np.prod(self.shape[:-1]))
        total = self.count * positions
        if total < 2:
            raise ValueError(f"need at least 2 values per channel for a standard deviation, got {total}")
        element_means = self._mean.reshape(positions, -1)
        mean = element_means.mean(axis=0)
        m2 = self._m2.reshape(positions, -1).sum(axis=0) + self.count * np.square(element_means - mean).sum(axis=0)
        return mean, np.maximum(np.sqrt(m2 / (total - 1)), min_std)

    def noise_moments(self, relu: bool, min_std: float) -> tuple[np.ndarray, np.ndarray]:
        """The bottleneck noise's (mean, std): the sample mean and std floored at ``min_std`` (eq. 2), or
        with ``relu`` (the paper code's post-ReLU variant) mean 0 and the RMS of the non-zero values."""
        if relu:
            return np.zeros(self.shape), self.rms_nonzero(min_std)
        return self.mean, self.std(min_std)
