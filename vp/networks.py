"""The explainer network of VP: a CNN from x to the mean and log-variance of a map at (H / m, W / m).

The paper gives only the depth ("five layers" for MNIST, "12 layers" for CUB and ImageNet, Section 4.1).
Here: ``depth - 1`` 3 x 3 ReLU convolutions, the first log2(m) of them with stride 2 (so the map is at
H / m), then a linear 3 x 3 convolution to 2 channels (mu, log nu) -- 1 channel (mu) for nVP. Widths
double at every stride-2 layer from ``width``, up to 4 x ``width``. The log-variance is clipped to
[-10, 10] so that exp stays finite at initialisation and under large learning rates (a choice; the paper
says nothing).
"""
from __future__ import annotations

import math

import keras
from keras import layers

from kernels.validation import check_int

#: Depth and first width per preset family: MNIST-sized inputs and CUB / ImageNet-sized ones (Section 4.1).
SMALL, LARGE = {"depth": 5, "width": 32}, {"depth": 12, "width": 32}
LOG_VARIANCE_BOUND = 10.0


def check_upsample(upsample, input_shape) -> int:
    """``upsample`` (m): a power of two that divides the image height and width."""
    m = check_int("upsample", upsample, minimum=1)
    height, width = input_shape[:2]
    if m & (m - 1) or height % m or width % m:
        raise ValueError(f"upsample: expected a power of two that divides the image size {height} x {width}, "
                         f"got {upsample!r}")
    return m


def explainer_network(input_shape, upsample: int, *, variational: bool = True, depth: int = 5, width: int = 32,
                      name: str = "vp_explainer") -> keras.Model:
    """x (N, H, W, C) -> (N, H / m, W / m, 2) [mu, log nu] (variational) or (N, H / m, W / m, 1) [mu]."""
    strides = int(math.log2(upsample))
    depth = check_int("depth", depth, minimum=strides + 1)
    width = check_int("width", width, minimum=1)
    x = inputs = keras.Input(tuple(input_shape), name="x")
    channels = width
    for i in range(depth - 1):
        stride = 2 if i < strides else 1
        x = layers.Conv2D(channels, 3, strides=stride, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if stride == 2:
            channels = min(2 * channels, 4 * width)
    out = layers.Conv2D(2 if variational else 1, 3, padding="same", name="head")(x)
    return keras.Model(inputs, out, name=name)
