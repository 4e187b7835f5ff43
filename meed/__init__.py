"""MEED / AIL (Liang et al., KDD 2020): an amortised explainer trained by adversarial infidelity learning.

- ``MEED``: the keras.Model (explainer + two approximators + frozen black box) with its ``train_step``.
- ``build(preset, blackbox, ...)``: a compiled MEED for one of the paper's settings (``PRESETS``).
- ``python -m meed.train --preset fashion_mnist``: train, evaluate, export (see meed/train.py).
- ``names()`` / ``get("meed", blackbox, preset=...)``: the registry protocol of ``baselines``, so that
  ``python -m eval.benchmark --methods meed`` finds it (meed/registry.py).
"""
from meed.builder import build
from meed.model import MEED
from meed.presets import ABLATIONS, PRESETS, Legacy, Preset
from meed.registry import MEEDExplainer, get, hyperparameters, names

__all__ = ["MEED", "MEEDExplainer", "build", "get", "hyperparameters", "names", "PRESETS", "ABLATIONS", "Legacy",
           "Preset"]
