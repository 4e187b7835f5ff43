"""MEED / AIL (Liang et al., KDD 2020): an amortised explainer trained by adversarial infidelity learning.

- ``MEED``: the keras.Model (explainer + two approximators + frozen black box) with its ``train_step``.
- ``build(preset, blackbox, ...)``: a compiled MEED for one of the paper's settings (``PRESETS``).
- ``python -m meed.train --preset fashion_mnist``: train, evaluate, export (meed/train.py);
  ``python -m meed.sanity`` (randomisation tests), ``python -m meed.rescore`` (SEN of finished runs).
- Registered as "meed" in the one registry (meed.methods), so ``eval.registry.get("meed", blackbox,
  preset=...)`` and ``python -m eval.benchmark --methods meed`` find it.

Names are imported on first use (data.lazy).
"""
from data.lazy import lazy_exports

__all__ = ["MEED", "build", "PRESETS", "ABLATIONS", "Legacy", "Preset"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "MEED": "meed.model", "build": "meed.builder", "PRESETS": "meed.presets", "ABLATIONS": "meed.presets",
    "Legacy": "meed.presets", "Preset": "meed.presets",
})
