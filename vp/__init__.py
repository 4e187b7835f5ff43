"""VP (Variational Perturbations): a variational explainer of image classifiers trained with the SOFT top-k.

- ``VP``: the keras.Model (explainer network + frozen classifier) with its ``train_step`` (vp.model);
  ``NVP(model)`` (= ``VP(model, variational=False)``) is nVP.
- Registered as "vp" and "nvp" in the one registry (vp.methods).

Names are imported on first use (data.lazy).
"""
from data.lazy import lazy_exports

__all__ = ["VP", "NVP"]
__getattr__, __dir__ = lazy_exports(__name__, {"VP": "vp.model", "NVP": "vp.model"})
