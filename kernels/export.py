"""SavedModel export of a serving function, shared by the trainable explainers (DESIGN.md, "Core conventions").

An explainer's SavedModel holds one ``serving_default`` signature that takes raw inputs and returns a
dict of tensors; it is loaded anywhere with ``tf.saved_model.load(path)`` (no project code needed).
``keras.export.ExportArchive`` does the work; the objects whose variables the function reads (the
explained model, the explainer) are tracked so that their weights are saved with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import keras
import tensorflow as tf


def export_serving(path, fn: Callable, input_spec: tf.TensorSpec, track: Iterable) -> str:
    """Write a SavedModel at ``path`` whose ``serving_default`` is ``fn(x)``; return the path.

    ``input_spec``: the signature of x (its name is the signature's argument name); ``track``: the
    Keras layers / models whose variables ``fn`` uses.
    """
    archive = keras.export.ExportArchive()
    for obj in track:
        archive.track(obj)
    archive.add_endpoint("serving_default", fn, input_signature=[input_spec])
    archive.write_out(str(Path(path)), verbose=False)
    return str(Path(path))
