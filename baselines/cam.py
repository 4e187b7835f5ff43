"""Grad-CAM and Guided Grad-CAM (Selvaraju et al., ICCV 2017).

Grad-CAM reads the feature maps A^k of a convolutional layer and the gradient of the target's class
score with respect to them -- both on one forward pass, with a layer hook (kernels.hooks: the layer's
output is captured, then fed back in as the differentiated tensor; no sub-model, so nested models such as
a backbone inside a classifier work). Weights alpha_k = spatial mean of d y_c / d A^k; map = ReLU(sum_k
alpha_k A^k); bilinear upsampling (tf.image.resize: half-pixel centres, no antialiasing) to the input's
size. Images use a 2-D feature map (N, h, w, K); token / 1-D inputs a Conv1D map (N, l, K).
"""
from __future__ import annotations

import tensorflow as tf

from baselines.base import Baseline
from kernels import hooks
from kernels.gradients import target_gradient


class GradCAM(Baseline):
    """Grad-CAM of the target at ``layer`` (a name or a Layer; default: the model's last convolutional
    layer -- Conv1D/2D/3D, separable, depthwise or transposed, searched in nested models too).

    The paper differentiates the pre-softmax score y^c: pass ``output="logit"`` for that; the default
    differentiates the probability, as the other baselines do. The auto choice takes the conv layer
    itself: where it is followed by BatchNorm / a separate ReLU layer (MobileNet's ``conv_pw_13`` ->
    ``conv_pw_13_relu``), pass the activation layer's name to use the rectified maps.
    """

    name = "gradcam"

    def __init__(self, model, *, layer=None, **kwargs):
        super().__init__(model, **kwargs)
        if not (self.is_image or len(self.input_shape) == 1):
            raise ValueError(f"model: Grad-CAM explains images (N, H, W, C) and sequences (N, L); the model "
                             f"{model.name!r} takes inputs of shape (N, {', '.join(map(str, self.input_shape))})")
        if layer is None:
            found = hooks.last_conv_layer(model)
            if found is None:
                raise ValueError(
                    f"layer: the model {model.name!r} has no convolutional layer (Conv1D/Conv2D/...); Grad-CAM "
                    f"needs a spatial feature map: pass layer=<name of a layer with output (N, h, w, K)>"
                )
        else:
            found = hooks.find_layer(model, layer)
        self.spatial_rank = 2 if self.is_image else 1
        rank = hooks.output_rank(found)
        if rank is not None and rank != self.spatial_rank + 2:
            want = "(N, h, w, K)" if self.is_image else "(N, l, K)"
            raise ValueError(f"layer: expected a feature map {want} for these inputs, but {found.name!r} has an "
                             f"output of rank {rank}")
        self.layer = found
        self.hyper["layer"] = found.name

    def _cam(self, x, onehot):
        maps = hooks.layer_output(self.model, self.layer, x, training=False)

        def from_maps(a):
            with hooks.substitute(self.layer, a) as recorder:
                out = self._forward(x)
            recorder.check_once()
            return out

        grads, _ = target_gradient(from_maps, maps, onehot)
        axes = list(range(1, self.spatial_rank + 1))
        weights = tf.reduce_mean(grads, axis=axes, keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
        if self.is_image:
            size = tf.shape(x)[1:3]
            return tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]
        size = tf.stack([tf.shape(x)[1], 1])
        return tf.image.resize(cam[:, :, None, None], size, method="bilinear")[:, :, 0, 0]

    def _explain_chunk(self, x, targets, index):
        return self._cam(x, self._onehot(targets))


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM: the guided-backpropagation map times the Grad-CAM map, pixel by pixel.

    The paper multiplies the per-channel guided gradients by the (non-negative) upsampled Grad-CAM; reduced
    to one score per pixel as guided_backprop is (sum over channels of absolute values), this is exactly
    the product of our guided_backprop and gradcam maps.
    """

    name = "guided_gradcam"

    def _explain_chunk(self, x, targets, index):
        onehot = self._onehot(targets)
        guided = self._gradients(self._features(x), x, onehot, guided=True)
        return self._cam(x, onehot) * self._reduce(guided, "sum_abs")
