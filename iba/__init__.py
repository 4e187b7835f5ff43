"""Information Bottleneck Attribution (Schulz et al., ICLR 2020).

- ``InformationBottleneck(model, layer, ...)``: the Per-Sample Bottleneck, batched. ``estimate`` the
  feature statistics on training images, then ``explain(x, targets)`` -> heatmaps (N, H, W) in bits
  per input pixel, or ``capacity(x, targets)`` -> the per-element capacity (N, h, w, c) in nats.
- ``ReadoutBottleneck(model, layer, readout_layers)``: the Readout Bottleneck, a keras.Model trained
  with ``estimate`` then ``fit``; ``explain(x)`` costs one forward pass; ``export(path)`` a SavedModel.
- ``split_model(model, layer)``: cut a functional Keras model (nested models included) into head and
  tail at a named feature-map layer, without modifying it.
- ``total_bits(heatmaps)`` / ``region_bits(heatmaps, masks)``: the information bound a heatmap carries,
  in total and inside given regions.
"""
from iba.bits import capacity_to_heatmap, region_bits, total_bits
from iba.inputs import RECOMMENDED_SAMPLES, WARN_BELOW_SAMPLES, EstimationWarning
from iba.per_sample import InformationBottleneck
from iba.readout import ReadoutBottleneck
from iba.split import SUPPORTED_RANKS, Split, split_model

__all__ = [
    "RECOMMENDED_SAMPLES",
    "SUPPORTED_RANKS",
    "WARN_BELOW_SAMPLES",
    "EstimationWarning",
    "InformationBottleneck",
    "ReadoutBottleneck",
    "Split",
    "capacity_to_heatmap",
    "region_bits",
    "split_model",
    "total_bits",
]
