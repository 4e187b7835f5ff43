"""Heatmaps in bits per input pixel and the information bound they carry.

The capacity of the bottleneck (paper, eq. 5) upper-bounds the mutual information I[R, Z] between the
feature map and its noisy version (L_I >= I[R, Z]). Summed over channels, converted to bits and spread
over the input pixels, it gives a heatmap whose sum over any region bounds the information that region
passes to the rest of the network: a region with 0 bits provably passes nothing (under the noise).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from kernels import resize
from kernels.validation import as_float_tensor, check_rank

LN2 = float(np.log(2.0))


def capacity_to_heatmap(capacity, input_size) -> np.ndarray:
    """Per-element capacity (N, h, w, c) in nats -> heatmaps (N, H, W) in bits per input pixel.

    Summed over channels, divided by ln 2, multiplied by (h * w) / (H * W) (each input pixel gets its
    share of its feature cell, so the total number of bits is kept) and bilinearly resized to
    ``input_size`` = (H, W) (tf.image.resize, half-pixel centres; the IBA package's recipe). The total is
    exact for integer upscaling factors (each feature cell's weights sum to the factor^2 under
    bilinear interpolation with clamped borders) and approximate otherwise.
    """
    capacity = np.asarray(as_float_tensor("capacity", capacity, rank=4))
    return heatmap_ops(capacity.astype(np.float64), input_size).numpy()


def heatmap_ops(capacity, input_size) -> tf.Tensor:
    """``capacity_to_heatmap`` as TensorFlow ops (traceable: the Readout's serving graph uses it).

    The channel sum runs in the capacity's dtype (float64 from ``capacity_to_heatmap``); the result is
    float32.
    """
    height, width = int(input_size[0]), int(input_size[1])
    h, w = capacity.shape[1:3]
    bits = tf.reduce_sum(capacity, axis=-1) * ((h * w) / (height * width) / LN2)
    bits = tf.cast(bits, tf.float32)
    if (h, w) == (height, width):
        return bits
    return resize(bits, (height, width), method="bilinear")


def total_bits(heatmaps) -> np.ndarray:
    """Total information (bits) of each heatmap (N, H, W) in bits per pixel: its sum, shape (N,)."""
    heatmaps = np.asarray(as_float_tensor("heatmaps", heatmaps, rank=3), np.float64)
    return heatmaps.sum(axis=(1, 2))


def region_bits(heatmaps, masks) -> np.ndarray:
    """Bits inside binary regions: sum of heatmap * mask per image, shape (N,).

    ``masks``: (N, H, W) one region per image, or (H, W) one region for all; values 0/1 (or bool).
    """
    heatmaps = np.asarray(as_float_tensor("heatmaps", heatmaps, rank=3), np.float64)
    if masks is None:
        raise TypeError("masks: expected a binary array of shape (N, H, W) or (H, W), got None")
    masks = np.asarray(masks)
    check_rank("masks", masks, rank=(2, 3))
    if masks.dtype.kind not in "biuf":
        raise TypeError(f"masks: expected a binary array, got dtype {masks.dtype}")
    if masks.ndim == 2:
        masks = np.broadcast_to(masks, (heatmaps.shape[0],) + masks.shape)
    if masks.shape != heatmaps.shape:
        raise ValueError(
            f"masks: expected shape {heatmaps.shape} or {heatmaps.shape[1:]} (those of heatmaps), "
            f"got {masks.shape}"
        )
    if not np.all((masks == 0) | (masks == 1)):
        raise ValueError("masks: expected binary values (0/1 or bool), got other values")
    return (heatmaps * masks.astype(np.float64)).sum(axis=(1, 2))
