"""Estimating the statistics of a feature map over a dataset, shared by both bottlenecks.

The Per-Sample Bottleneck (iba.per_sample) and the Readout Bottleneck (iba.readout) both replace a
feature map by noise with the map's own per-element mean and standard deviation, estimated on training
images (paper, eq. 2). They take the same kinds of data (numpy / tensors / tf.data, batched or not),
accumulate the statistics chunk by chunk in float64 (iba.statistics) and warn below the sample count the
IBA package recommends.
"""
from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from eval.progress import Progress
from kernels.validation import check_int

from iba.images import check_images
from iba.statistics import FeatureStatistics

#: The IBA package recommends estimating the feature statistics on ~5,000-10,000 samples.
RECOMMENDED_SAMPLES = (5_000, 10_000)
#: ``fit`` (the statistics) warns (EstimationWarning) below this many samples.
WARN_BELOW_SAMPLES = 1_000


class EstimationWarning(UserWarning):
    """The feature statistics were estimated on fewer samples than recommended."""


def warn_if_few(count: int, stacklevel: int = 3) -> None:
    """EstimationWarning naming ``count`` when it is below WARN_BELOW_SAMPLES."""
    if count < WARN_BELOW_SAMPLES:
        warnings.warn(
            f"fit: the feature statistics were estimated on only {count} samples; the IBA "
            f"package recommends {RECOMMENDED_SAMPLES[0]:,}-{RECOMMENDED_SAMPLES[1]:,} (this warning "
            f"appears below {WARN_BELOW_SAMPLES:,})", EstimationWarning, stacklevel=stacklevel)


def not_estimated(what: str) -> RuntimeError:
    """The error of every call that needs the statistics before ``estimate`` ran."""
    return RuntimeError(
        f"{what}: the feature statistics are not estimated yet; call fit(images) first (the IBA "
        f"package recommends {RECOMMENDED_SAMPLES[0]:,}-{RECOMMENDED_SAMPLES[1]:,} training images)"
    )


def chunks(data, n_samples, image_batch, input_shape):
    """Checked chunks of at most ``image_batch`` images from ``data`` (at most ``n_samples`` in all).

    ``data``: images (N, H, W, C) as numpy / tensor, or a tf.data.Dataset of images or (images, labels,
    ...) tuples, batched or not; an infinite dataset needs ``n_samples``.
    """
    remaining = n_samples
    if isinstance(data, tf.data.Dataset):
        if n_samples is None and data.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError("n_samples: the dataset is infinite; give n_samples")
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        if spec.shape.rank == len(input_shape):
            data = data.batch(image_batch)
        source = (e[0] if isinstance(e, (tuple, list)) else e for e in data.as_numpy_iterator())
    else:
        if data is None:
            raise TypeError("data: expected images (N, H, W, C) or a tf.data.Dataset, got None")
        arr = np.asarray(data)
        source = (arr[i:i + image_batch] for i in range(0, max(len(arr), 1), image_batch))
    for chunk in source:
        if remaining is not None:
            chunk = chunk[:remaining]
        if len(chunk) == 0:
            continue
        for i in range(0, len(chunk), image_batch):
            yield check_images("data", chunk[i:i + image_batch], input_shape)
        if remaining is not None:
            remaining -= len(chunk)
            if remaining <= 0:
                return


def accumulate(pass_fn, data, shapes, input_shape, *, n_samples=None, image_batch=64, verbose=1):
    """Statistics of feature maps over ``data``: one FeatureStatistics per shape in ``shapes``.

    ``pass_fn(chunk)`` returns one array per shape for a checked chunk of images (one forward pass).
    Raises ValueError below 2 samples and warns (EstimationWarning) below WARN_BELOW_SAMPLES.
    """
    if n_samples is not None:
        n_samples = check_int("n_samples", n_samples, minimum=2)
    image_batch = check_int("image_batch", image_batch, minimum=1)
    stats = [FeatureStatistics(shape) for shape in shapes]
    total = n_samples
    if total is None and not isinstance(data, tf.data.Dataset) and data is not None:
        total = len(data)
    progress = Progress(total, verbose, "sample")
    for chunk in chunks(data, n_samples, image_batch, input_shape):
        for accumulator, values in zip(stats, pass_fn(chunk)):
            accumulator.update(values)
        progress.update(stats[0].count)
    if stats[0].count < 2:
        raise ValueError(f"data: expected at least 2 samples to estimate a standard deviation, got {stats[0].count}")
    warn_if_few(stats[0].count, stacklevel=4)
    return stats
