"""Information Bottleneck Attribution (Schulz et al., ICLR 2020).

- ``InformationBottleneck(model, layer, ...)``: the Per-Sample Bottleneck, batched. ``estimate`` the
  feature statistics on training images, then ``explain(x, targets)`` -> heatmaps (N, H, W) in bits
  per input pixel, or ``capacity(x, targets)`` -> the per-element capacity (N, h, w, c) in nats.
- ``split_model(model, layer)``: cut a functional Keras model (nested models included) into head and
  tail at a named feature-map layer, without modifying it.
- ``total_bits(heatmaps)`` / ``region_bits(heatmaps, masks)``: the information bound a heatmap carries,
  in total and inside given regions.
"""
from iba.bits import capacity_to_heatmap, region_bits, total_bits
from iba.per_sample import (RECOMMENDED_SAMPLES, WARN_BELOW_SAMPLES, EstimationWarning,
                            InformationBottleneck)
from iba.split import SUPPORTED_RANKS, Split, split_model

__all__ = [
    "RECOMMENDED_SAMPLES",
    "SUPPORTED_RANKS",
    "WARN_BELOW_SAMPLES",
    "EstimationWarning",
    "InformationBottleneck",
    "Split",
    "capacity_to_heatmap",
    "region_bits",
    "split_model",
    "total_bits",
]
