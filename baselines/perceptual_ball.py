"""Adversarial perturbation on the perceptual ball (Elliott, Law & Russell, CVPR 2021).

Per image, find x' near x that flips the decision while staying close to x in the model's own
intermediate representations (the "perceptual ball"); the saliency map is where x' moved. The objective
of the authors' code (``create_perceptual_loss2``), minimised over x' starting from x:

    gamma sum_l MSE(phi_l(x'), phi_l(x)) + scalar MSE(x', x) + (z_t(x') - max_{k != t} z_k(x') - value)^2

phi_l are the outputs of the regularised layers, MSE the mean over every element of one image's tensor
(so each layer is normalised by its size), z the pre-softmax logits and t the explained class: the
model's prediction by default (the authors' variant, argmax on the clean image) or the given target.
With ``value = -2`` the target ends up 2 logits below the best other class. ``margin="target"`` is the
authors' multi-class variant (z_t(x') - value)^2, without the runner-up.

The minimisation is L-BFGS as ``torch.optim.LBFGS(max_iter=steps)`` without line search, one ``step()``
(kernels.optim.lbfgs_minimize: every image of a chunk in one tf.while_loop, each with its own history
and stopping). The map: sqrt(mean over channels of (x' - x)^2) per pixel, then a Gaussian filter as
``scipy.ndimage.gaussian_filter(map, sigma, mode="reflect", truncate=4.0)``, the authors' smoothing.
Nothing is random: the scores are a deterministic function of the model, x and the target.
"""
from __future__ import annotations

import contextlib
import functools

import keras
import numpy as np
import tensorflow as tf

from baselines.base import Baseline
from eval.protocol import as_targets, check_batch_size
from kernels import hooks
from kernels.image import blur_matrix, blur_with_matrices
from kernels.optim import lbfgs_minimize
from kernels.validation import check_choice, check_int, check_positive

# The authors' setting: sigma = 2 pixels on 224 x 224 images.
PAPER_SIGMA, PAPER_IMAGE_SIZE = 2.0, 224
#: scipy.ndimage.gaussian_filter's default truncation (radius = int(truncate * sigma + 0.5)).
TRUNCATE = 4.0
#: L-BFGS keeps 2 x history_size x (H W C) floats per image; ``explain`` runs at most
#: HISTORY_BUDGET / (8 history_size H W C) images per chunk (4 at 224 x 224 x 3 with history 100; the
#: shift of the history makes temporary copies, so the peak is about twice that).
HISTORY_BUDGET = 2 ** 29


def _names(kinds) -> tuple:
    return tuple(getattr(keras.layers, name) for name in kinds if hasattr(keras.layers, name))


#: Layers that end the convolutional trunk for the default ``layers``.
TRUNK_END = _names(("Flatten", "Dense", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"))


def is_relu_layer(layer) -> bool:
    """Whether the output of ``layer`` is a ReLU's: a ``ReLU`` layer, or any layer with activation relu."""
    return isinstance(layer, keras.layers.ReLU) or getattr(getattr(layer, "activation", None), "__name__", "") == "relu"


def default_layers(model) -> list[str]:
    """The names of every layer whose output is a ReLU's (``is_relu_layer``) before the first Flatten,
    Dense or global pooling layer of ``model`` (model order, nested models included): the ReLU outputs
    of the convolutional trunk, as the authors' list of all 16 ReLUs of VGG19-BN's ``features``."""
    found = []
    for layer in hooks.all_layers(model):
        if isinstance(layer, keras.Model) or isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, TRUNK_END):
            break
        if is_relu_layer(layer):
            found.append(layer.name)
    return found


def smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) matrix of scipy.ndimage's 1-D Gaussian filter (mode "reflect", the edge pixel repeated;
    radius int(4 sigma + 0.5), scipy's default truncation): kernels.image.blur_matrix, symmetric padding."""
    return blur_matrix(size, sigma, 2 * int(TRUNCATE * float(sigma) + 0.5) + 1, padding="symmetric")


class PerceptualBall(Baseline):
    """Adversarial perturbation on the perceptual ball (module docstring): scores = where the optimised
    image x' differs from x (per-pixel RMS over channels of x' - x, Gaussian-smoothed). Images only; the
    class scores are always the model's pre-softmax logits (kernels.hooks.find_logits).

    Args:
        layers: names of the layers phi_l whose outputs must stay close (MSE each, weighted by ``gamma``);
            default: every ReLU output of the convolutional trunk (``default_layers``: the layers with a
            relu activation, or ReLU layers, before the first Flatten / Dense / global pooling). ``[]``
            keeps only the pixel and margin terms.
        gamma: weight of the layers' MSE (default 10000, the authors').
        scalar: weight of the pixel MSE between x' and x (default 1, the authors' ``scalar``).
        value: the margin the target is pushed to (default -2, the authors' ``value``): z_t - max_{k!=t} z_k
            = value (``margin="runner_up"``, default) or z_t = value (``margin="target"``, the authors'
            multi-class variant).
        margin: "runner_up" (default) or "target" (see ``value``).
        steps: L-BFGS iterations (torch's ``max_iter``; default 100, the authors' example).
        history_size: L-BFGS curvature pairs kept (default 100, torch's).
        smooth_sigma: the final Gaussian filter's sigma in pixels; 0 disables it. Default: the authors' 2 on
            224-pixel images scaled to the image, 2 * max(H, W) / 224.
        batch_size: inputs per chunk when ``explain`` gets none (default 32; at most HISTORY_BUDGET / (8 x
            history_size x H W C) images run at once, the L-BFGS history's memory).
        verbose: 0 silent; 1 a progress bar when the call is long; 2 always.
    """

    name = "perceptual_ball"
    uses_output = False

    def __init__(self, model, *, layers=None, gamma: float = 10000.0, scalar: float = 1.0, value: float = -2.0,
                 margin: str = "runner_up", steps: int = 100, history_size: int = 100, smooth_sigma=None,
                 batch_size: int = 32, verbose: int = 1):
        super().__init__(model, batch_size=batch_size, verbose=verbose)
        if not self.is_image:
            raise ValueError(f"model: perceptual_ball explains images (N, H, W, C); the model {model.name!r} takes "
                             f"{self.modality} inputs of shape (N, {', '.join(map(str, self.input_shape))})")
        if any(d is None for d in self.input_shape):
            raise ValueError(f"model: perceptual_ball needs a static image shape, got (N, {self.input_shape})")
        try:
            self.logits = hooks.find_logits(model)
        except ValueError:
            raise ValueError(f"model: perceptual_ball needs the pre-softmax logits, but the model {model.name!r} "
                             f"has no layer named {hooks.LOGIT_LAYER_NAME!r} and does not end with a softmax "
                             f"(a Softmax layer, Activation('softmax') or activation='softmax')") from None
        check_positive("gamma", gamma, allow_zero=True)
        check_positive("scalar", scalar, allow_zero=True)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value):
            raise ValueError(f"value: expected a finite number (the target margin), got {value!r}")
        self.gamma, self.scalar, self.value = float(gamma), float(scalar), float(value)
        self.margin = check_choice("margin", margin, ("runner_up", "target"))
        if self.margin == "runner_up" and self.n_classes < 2:
            raise ValueError(f"margin: 'runner_up' needs at least 2 classes, the model has {self.n_classes}; "
                             f"use margin='target'")
        self.steps = check_int("steps", steps, minimum=1)
        self.history_size = check_int("history_size", history_size, minimum=1)
        self.layer_names = self._check_layers(layers)
        self._layers = [hooks.find_layer(model, name, name="layers") for name in self.layer_names]
        height, width = self.input_shape[:2]
        if smooth_sigma is None:
            smooth_sigma = PAPER_SIGMA * max(height, width) / PAPER_IMAGE_SIZE
        check_positive("smooth_sigma", smooth_sigma, allow_zero=True)
        self.smooth_sigma = float(smooth_sigma)
        radius = int(TRUNCATE * self.smooth_sigma + 0.5) if self.smooth_sigma > 0 else 0
        self._blur = None if radius == 0 else (smoothing_matrix(height, self.smooth_sigma),
                                               smoothing_matrix(width, self.smooth_sigma))
        self.max_chunk = max(1, HISTORY_BUDGET // (8 * self.history_size * int(np.prod(self.input_shape))))
        self.hyper.update(layers=list(self.layer_names), gamma=self.gamma, scalar=self.scalar, value=self.value,
                          margin=self.margin, steps=self.steps, history_size=self.history_size,
                          smooth_sigma=self.smooth_sigma)
        self._perturb_fn = None

    def _check_layers(self, layers) -> list[str]:
        if layers is None:
            found = default_layers(self.model)
            if not found:
                raise ValueError(f"layers: the model {self.model.name!r} has no ReLU output before its first "
                                 f"Flatten / Dense / global pooling layer (the default layers); pass layer names, "
                                 f"or layers=[] for the pixel and margin terms only")
            return found
        if isinstance(layers, (str, keras.layers.Layer)) or not isinstance(layers, (list, tuple)):
            raise ValueError(f"layers: expected a list of layer names, got {layers!r}")
        names = [hooks.find_layer(self.model, layer, name="layers").name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layers: expected distinct layer names, got {names}")
        return names

    # ------------------------------------------------------------------------------------ public API

    def perturbed(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """The optimised images x' (float32, x's shape): the adversarial perturbations behind ``explain``."""
        x = self._check_inputs(x)
        n = len(x)
        chunk = min(check_batch_size(batch_size, self.batch_size), self.max_chunk)
        targets = as_targets(targets, n, self.n_classes)
        if self._perturb_fn is None:
            self._perturb_fn = tf.function(functools.partial(type(self)._perturb_chunk, self), reduce_retracing=True)
        out = np.empty_like(x)
        for start in range(0, n, chunk):
            xc = tf.convert_to_tensor(x[start:start + chunk])
            tc = self._predict_chunk(xc) if targets is None else tf.constant(targets[start:start + chunk], tf.int32)
            out[start:start + chunk] = self._perturb_fn(xc, tc).numpy()
        return out

    # -------------------------------------------------------------------------------- computation

    def _parts(self, x):
        """(outputs of the regularised layers, logits) of one forward pass on x."""
        layers = self._layers if self.gamma > 0 else []
        logit_layer, mode = self.logits
        with contextlib.ExitStack() as stack:
            recorders = [stack.enter_context(hooks.capture(layer)) for layer in layers]
            if mode == "activation":
                stack.enter_context(hooks.linear_activation(logit_layer))
                logit_recorder = None
            else:
                logit_recorder = stack.enter_context(hooks.capture(logit_layer, mode))
            out = self.model(x, training=False)
            features = [recorder.value for recorder in recorders]
            logits = out if logit_recorder is None else logit_recorder.value
        return features, tf.cast(logits, tf.float32)

    def _objective(self, candidate, x, reference, onehot):
        """The per-image objective (c,) at candidate images x' (c, H, W, C)."""
        features, logits = self._parts(candidate)
        loss = self.scalar * _row_mean(tf.square(candidate - x))
        if features:
            loss += self.gamma * tf.add_n([_row_mean(tf.square(tf.cast(f, tf.float32) - r))
                                           for f, r in zip(features, reference)])
        score = tf.reduce_sum(logits * onehot, axis=-1)
        if self.margin == "runner_up":
            score -= tf.reduce_max(tf.where(onehot > 0, tf.constant(-np.inf, tf.float32), logits), axis=-1)
        return loss + tf.square(score - self.value)

    def _perturb_chunk(self, x, targets):
        x = tf.cast(x, tf.float32)
        onehot = self._onehot(targets)
        reference = [tf.cast(f, tf.float32) for f in self._parts(x)[0]]
        perturbed, _ = lbfgs_minimize(lambda candidate: self._objective(candidate, x, reference, onehot), x,
                                      max_iter=self.steps, history_size=self.history_size)
        return perturbed

    def _explain_chunk(self, x, targets, index):
        x = tf.cast(x, tf.float32)
        scores = tf.sqrt(tf.reduce_mean(tf.square(self._perturb_chunk(x, targets) - x), axis=-1))
        if self._blur is not None:
            scores = blur_with_matrices(scores[..., None], *self._blur)[..., 0]
        return scores


def _row_mean(values):
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)
