"""TensorBoard images of a VP during training: example mu, sigma and top-k masks after every epoch."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kernels.topk import topk_mask


def _unit(maps):
    """Each map (N, H, W) min-max scaled to [0, 1] as (N, H, W, 1) images (constant maps: zeros)."""
    low = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    span = tf.reduce_max(maps, axis=[1, 2], keepdims=True) - low
    return tf.math.divide_no_nan(maps - low, span)[..., None]


class MapImages(keras.callbacks.Callback):
    """After each epoch, write ``images``' inputs, mu, sigma (VP) and top-``fraction`` masks to TensorBoard."""

    def __init__(self, images, logdir, *, fraction: float = 0.2):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        self.writer = tf.summary.create_file_writer(str(logdir))
        self.fraction = float(fraction)

    def on_epoch_end(self, epoch, logs=None):
        vp = self.model
        mu, sigma = (vp.explain_distribution(self.images) if vp.variational
                     else (vp.explain(self.images), None))
        k = max(1, int(self.fraction * vp.n_pixels))
        with self.writer.as_default():
            tf.summary.image("inputs", self.images, step=epoch, max_outputs=len(self.images))
            tf.summary.image("mu", _unit(tf.constant(mu)), step=epoch, max_outputs=len(self.images))
            tf.summary.image(f"top {self.fraction:.0%} mask", topk_mask(mu, k)[..., None], step=epoch,
                             max_outputs=len(self.images))
            if sigma is not None:
                tf.summary.image("sigma", _unit(tf.constant(sigma)), step=epoch, max_outputs=len(self.images))
        self.writer.flush()
