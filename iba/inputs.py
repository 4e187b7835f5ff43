"""What both bottlenecks do with their inputs: image checks, chunked data sources, progress, log-probabilities.

The Per-Sample Bottleneck (iba.per_sample) and the Readout Bottleneck (iba.readout) take the same kinds
of data (numpy / tensors / tf.data, batched or not), estimate statistics chunk by chunk, show the same
delayed progress bar and read the model's class scores the same way; this module holds that once.
"""
from __future__ import annotations

import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from eval.protocol import as_inputs
from kernels.validation import check_choice, check_int

from iba.statistics import FeatureStatistics

#: The IBA package recommends estimating the feature statistics on ~5,000-10,000 samples.
RECOMMENDED_SAMPLES = (5_000, 10_000)
#: ``estimate`` warns (EstimationWarning) below this many samples.
WARN_BELOW_SAMPLES = 1_000

_TINY = float(np.finfo(np.float32).tiny)


class EstimationWarning(UserWarning):
    """The feature statistics were estimated on fewer samples than recommended."""


def warn_if_few(count: int, stacklevel: int = 3) -> None:
    """EstimationWarning naming ``count`` when it is below WARN_BELOW_SAMPLES."""
    if count < WARN_BELOW_SAMPLES:
        warnings.warn(
            f"estimate: the feature statistics were estimated on only {count} samples; the IBA "
            f"package recommends {RECOMMENDED_SAMPLES[0]:,}-{RECOMMENDED_SAMPLES[1]:,} (this warning "
            f"appears below {WARN_BELOW_SAMPLES:,})", EstimationWarning, stacklevel=stacklevel)


def not_estimated(what: str) -> RuntimeError:
    """The error of every call that needs the statistics before ``estimate`` ran."""
    return RuntimeError(
        f"{what}: the feature statistics are not estimated yet; call estimate(images) first (the IBA "
        f"package recommends {RECOMMENDED_SAMPLES[0]:,}-{RECOMMENDED_SAMPLES[1]:,} training images)"
    )


class Progress:
    """A Keras Progbar that appears only once a call has run for a few seconds (verbose=0: never)."""

    def __init__(self, total, verbose, unit_name, delay=3.0):
        self.total, self.verbose, self.unit_name, self.delay = total, verbose, unit_name, delay
        self.start, self.bar = time.perf_counter(), None

    def update(self, done):
        if not self.verbose:
            return
        if self.bar is None and time.perf_counter() - self.start > self.delay and done < self.total:
            self.bar = keras.utils.Progbar(self.total, verbose=1, unit_name=self.unit_name)
        if self.bar is not None:
            self.bar.update(done)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {value!r}")
    return bool(value)


def model_input_shape(model) -> tuple:
    """(H, W, C) of an image model's input; ValueError for anything else."""
    shape = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    if len(shape) != 3 or any(s is None for s in shape):
        raise ValueError(
            f"model: expected an image input (N, H, W, C) with static H, W, C, got input shape "
            f"(None, {', '.join(map(str, shape))}); heatmaps are per input pixel"
        )
    return tuple(int(s) for s in shape)


def model_classes(model) -> int:
    """The number of classes of a model with output (N, classes), classes >= 2."""
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ValueError(f"model: expected an output of shape (N, classes) with classes >= 2, got {shape}")
    return int(shape[1])


def check_images(name, x, input_shape) -> np.ndarray:
    """``x`` as float32 images of the model's input shape (finite values), else a ValueError naming ``name``."""
    if isinstance(x, tf.data.Dataset):
        x = as_inputs(name, x)
    x = np.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name}: expected images of shape (N, {', '.join(map(str, input_shape))}) (the model's "
            f"input), got shape {x.shape}"
        )
    return as_inputs(name, x).astype(np.float32, copy=False)


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


def log_probability_fn(split, output: str = "auto"):
    """(function R -> log-probabilities (N, classes) in float32, the output kind used) for a Split.

    ``output``: "auto" (the split's own kind), "probabilities" or "logits". The cross-entropy reads the
    logits before a final Softmax layer when there is one (exact log-softmax), the logits the model
    returns, or the log of its (clipped) probabilities.
    """
    check_choice("output", output, ("auto", "probabilities", "logits"))
    kind = split.output_kind if output == "auto" else output
    if kind == "probabilities" and split.logits_tail is not None:
        tail, source = split.logits_tail, "logits"
    else:
        tail, source = split.tail, kind

    def log_probabilities(z):
        out = tf.cast(tail(z, training=False), tf.float32)
        if source == "logits":
            return tf.nn.log_softmax(out, axis=-1)
        return tf.math.log(tf.maximum(out, _TINY))

    return log_probabilities, kind


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
    progress = Progress(total, verbose, "sample") if total is not None else None
    for chunk in chunks(data, n_samples, image_batch, input_shape):
        for accumulator, values in zip(stats, pass_fn(chunk)):
            accumulator.update(values)
        if progress is not None:
            progress.update(stats[0].count)
    if stats[0].count < 2:
        raise ValueError(f"data: expected at least 2 samples to estimate a standard deviation, got {stats[0].count}")
    warn_if_few(stats[0].count, stacklevel=4)
    return stats
