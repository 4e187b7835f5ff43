"""The image classifiers and image batches both bottlenecks accept: shapes, classes, checked inputs."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from eval.protocol import as_inputs


def model_input_shape(model) -> tuple:
    """(H, W, C) of an image model's input; ValueError for anything else."""
    shape = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    if len(shape) != 3 or any(s is None for s in shape):
        raise ValueError(
            f"model: expected an image input (N, H, W, C) with static H, W, C, got input shape "
            f"(None, {', '.join(map(str, shape))}); heatmaps are per input pixel"
        )
    return tuple(int(s) for s in shape)


def model_classes(model) -> int:
    """The number of classes of a model with output (N, classes), classes >= 2."""
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ValueError(f"model: expected an output of shape (N, classes) with classes >= 2, got {shape}")
    return int(shape[1])


def check_images(name, x, input_shape) -> np.ndarray:
    """``x`` as float32 images of the model's input shape (finite values), else a ValueError naming ``name``."""
    if isinstance(x, tf.data.Dataset):
        x = as_inputs(name, x)
    x = np.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{name}: expected images of shape (N, {', '.join(map(str, input_shape))}) (the model's "
            f"input), got shape {x.shape}"
        )
    return as_inputs(name, x).astype(np.float32, copy=False)


