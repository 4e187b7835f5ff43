"""Information Bottleneck Attribution (Schulz et al., ICLR 2020).

- ``InformationBottleneck(model, layer, ...)``: the Per-Sample Bottleneck, batched. ``fit`` estimates the
  feature statistics on training images, then ``explain(x, targets)`` -> heatmaps (N, H, W) in bits
  per input pixel, or ``capacity(x, targets)`` -> the per-element capacity (N, h, w, c) in nats.
- ``ReadoutBottleneck(model, layer, readout_layers)``: the Readout Bottleneck, a keras.Model trained
  with ``fit``; ``explain(x)`` costs one forward pass; ``export(path, k=...)`` a SavedModel.
- ``split_model(model, layer)``: cut a functional Keras model (nested models included) into head and
  tail at a named feature-map layer, without modifying it.
- ``total_bits(heatmaps)`` / ``region_bits(heatmaps, masks)``: the information bound a heatmap carries,
  in total and inside given regions.
- Registered as "iba" and "iba_readout" (iba.methods); CLIs ``python -m iba.explain`` and
  ``python -m iba.train_readout``.

Names are imported on first use (data.lazy).
"""
from data.lazy import lazy_exports

_EXPORTS = {
    "capacity_to_heatmap": "iba.bits", "region_bits": "iba.bits", "total_bits": "iba.bits",
    "RECOMMENDED_SAMPLES": "iba.estimation", "WARN_BELOW_SAMPLES": "iba.estimation",
    "EstimationWarning": "iba.estimation", "InformationBottleneck": "iba.per_sample",
    "ReadoutBottleneck": "iba.readout", "SUPPORTED_RANKS": "iba.split", "Split": "iba.split",
    "split_model": "iba.split",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
