"""Mask optimisation with completeness and soundness (Gupta et al., NeurIPS 2022).

- ``masking.optimiser.MaskOptimisation`` (registry name "masking"): per-(image, label) masks learned with
  distractor images (eq. 6), batched over all pairs of a chunk in one tf.function; presets ``imagenet`` and
  ``cifar``; ``fit(x_train)`` sets the distractor pool.
- Its metrics live in eval/ (every method can be scored): ``eval.completeness`` (T_s, g_s, the AUC metric,
  completeness and soundness), ``eval.insertion`` (deletion / insertion, RISE and xplique presets) and
  ``eval.saliency_metric`` (Dabkowski & Gal's SM).
"""
