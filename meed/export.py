"""SavedModel export of a trained MEED explainer (DESIGN.md, "Core conventions").

The serving function takes a batch of raw inputs x only: it computes y = M(x) with the frozen black box,
runs the explainer, and returns ``scores`` (the explainer's logits on its grid, like ``MEED.explain``
before any upsampling) and ``mask`` (the binary top-k mask on the same grid). Load it anywhere with
``tf.saved_model.load(path).signatures["serving_default"](x=...)`` — no project code needed.
"""
from __future__ import annotations

import tensorflow as tf

from kernels import topk_mask
from kernels.export import export_serving


def export_explainer(meed, path, *, k: int) -> str:
    """Export ``meed`` (a trained ``meed.MEED``) to a SavedModel at ``path`` (mask: the top ``k``); return the path."""
    blackbox, explainer = meed.blackbox, meed.explainer
    use_output = meed.use_output

    def serve(x):
        y = blackbox(x, training=False)
        scores = explainer([x, y if use_output else tf.zeros_like(y)], training=False)
        return {"scores": scores, "mask": topk_mask(scores, k)}

    signature = tf.TensorSpec((None,) + meed.input_spec_shape, meed.x_dtype, name="x")
    return export_serving(path, serve, signature, track=(blackbox, explainer))
