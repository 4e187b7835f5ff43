"""What the two amortised maskers share: Real-Time Saliency (baselines.realtime) and the classifier-agnostic
masker (baselines.classifier_agnostic).

Both are ``keras.Model`` subclasses trained with Keras ``fit`` through a custom ``train_step`` on the true
labels, and both explain with one forward pass of a small network reading the feature maps of a
classifier. This module holds:

- ``MaskingExplainer``: the base class. The black box is kept outside Keras' tracking (its weights are
  not the explainer's); ``fit(x, y, epochs=..., batch_size=...)`` runs one Keras ``fit`` per training
  phase on the project's seeded epoch batches (eval.training.epoch_batches: phase after phase, epoch
  e's order a function of (seed, e)); ``explain`` / ``select`` / ``export`` / ``get_config`` follow
  the explainer contract (docs/ARCHITECTURE.md).
- ``smoothness(masks)``: Dabkowski & Gal's smoothness term, also the masker's TV term in Phang et al.
- ``spatial_stages(model)``: the rule that picks a classifier's multi-scale feature maps.
- ``forward(model, x, layers, logits_at)``: one pass of a model recording intermediate outputs (layer
  hooks, no sub-model) and its class scores.
- ``with_weight_decay``: PyTorch's coupled weight decay (g + wd * w), as both codes' optimisers use it;
  ``clip_by_global_norm``: gradient clipping of the global batch;
  ``batch_norm``: PyTorch's batch-norm defaults, synchronised across replicas.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from baselines.amortised import AmortisedExplainer
from baselines.base import check_inputs
from eval.protocol import as_targets, check_batch_size
from eval.training import epoch_batches, replica_mean, steps_per_epoch
from kernels import hooks, topk_mask
from kernels.export import export_serving
from kernels.validation import check_int, check_k, k_or_default

#: Weight of the squared border values in the smoothness term (both codes: 0.3).
BORDER_WEIGHT = 0.3
#: Floor of a probability before its log (a model whose logits cannot be found).
_TINY = float(np.finfo(np.float32).tiny)


# ------------------------------------------------------------------------------------------------ terms

def smoothness(masks, border_weight: float = BORDER_WEIGHT):
    """Dabkowski & Gal's smoothness of a batch of masks (N, H, W) or (N, H, W, 1): a scalar.

    [sum of the squared differences of neighbours along both axes + border_weight * sum of m^2 on the
    first and last row and the first and last column] / (2 N). A constant mask c has no differences and
    4 border lines: border_weight * c^2 * (H + W) (134.4 for c = 1 at 224 x 224).
    """
    masks = tf.convert_to_tensor(masks, tf.float32)
    if masks.shape.rank == 4:
        masks = masks[..., 0]
    steps = (tf.reduce_sum(tf.square(masks[:, 1:, :] - masks[:, :-1, :]))
             + tf.reduce_sum(tf.square(masks[:, :, 1:] - masks[:, :, :-1])))
    border = sum(tf.reduce_sum(tf.square(line)) for line in
                 (masks[:, 0, :], masks[:, -1, :], masks[:, :, 0], masks[:, :, -1]))
    batch = tf.cast(tf.shape(masks)[0], tf.float32)
    return (steps + border_weight * border) / (2.0 * batch)


def batch_norm(name: str):
    """PyTorch's BatchNorm2d defaults (eps 1e-5, running averages with momentum 0.1), with the statistics of the
    global batch under a tf.distribute strategy (``synchronized``), so that a mirrored step equals a
    single-device one (eval.training's loss convention)."""
    return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, synchronized=True, name=name)


def with_weight_decay(gradients, variables, weight_decay: float):
    """PyTorch's ``weight_decay`` of SGD and Adam (coupled L2): every gradient plus weight_decay * w.

    For the gradients of a ``replica_mean`` loss: each replica adds its share, weight_decay * w / replicas,
    so the summed update is a single device's.
    """
    if not weight_decay:
        return list(gradients)
    decay = replica_mean(tf.constant(weight_decay, tf.float32))
    return [g if g is None else g + tf.cast(decay, g.dtype) * tf.cast(v, g.dtype) for g, v in zip(gradients, variables)]


def clip_by_global_norm(gradients, clip_norm: float):
    """PyTorch's ``clip_grad_norm_`` of the whole batch's gradient: every gradient times
    clip_norm / max(norm, clip_norm), the norm taken of the gradient summed over the replicas (each holds
    its ``replica_mean`` share), so a mirrored step clips as a single device does."""
    context = tf.distribute.get_replica_context()
    total = gradients
    if context is not None and context.num_replicas_in_sync > 1:
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    norm = tf.linalg.global_norm(total)
    scale = clip_norm / tf.maximum(norm, clip_norm)
    return [g * scale for g in gradients]


def check_probability(name: str, value, *, below_one: bool = False) -> float:
    """``value`` as a float after checking 0 <= value <= 1 (< 1 with ``below_one``); ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a probability (a number), got {value!r}")
    upper_ok = value < 1.0 if below_one else value <= 1.0
    if not (np.isfinite(value) and value >= 0.0 and upper_ok):
        raise ValueError(f"{name}: expected a probability in [0, {'1)' if below_one else '1]'}, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------ feature maps

def _spatial_shape(layer):
    """(h, w, c) of a layer's rank-4 output with static sizes, else None."""
    if hooks.output_rank(layer) != 4:
        return None
    shape = tuple(layer.output.shape[1:])
    return None if any(s is None for s in shape) else tuple(int(s) for s in shape)


def spatial_stages(model) -> list:
    """The classifier's stages, finest first: from its first convolution on, the last layer of each spatial
    resolution whose output is a feature map (N, h, w, c).

    The stand-in for a ResNet's stage outputs (s1..s5, l0..l4): a ResNet stage ends with the last block at
    a resolution, and a plain CNN's stage with the pooling (or the convolution) that closes it.
    """
    stages: dict = {}
    started = False
    for layer in hooks.all_layers(model):
        if isinstance(layer, (keras.layers.InputLayer, keras.Model)):
            continue
        started = started or isinstance(layer, hooks.CONV_TYPES)
        shape = _spatial_shape(layer) if started else None
        if shape is not None:
            stages.pop(shape[:2], None)  # the last one of a resolution wins (dict order = first seen)
            stages[shape[:2]] = layer
    return sorted(stages.values(), key=lambda layer: -np.prod(_spatial_shape(layer)[:2]))


def feature_layers(model, names, *, name: str, default) -> list:
    """The layers called ``names`` (rank-4 outputs with static sizes), or ``default(stages)`` of
    :func:`spatial_stages` when ``names`` is None; ValueError naming ``name`` for a bad choice."""
    if names is None:
        layers = spatial_stages(model)
        if not layers:
            raise ValueError(f"model: {model.name!r} has no convolutional feature map (N, h, w, c) to read; "
                             f"expected an image classifier with convolutions")
        return default(layers)
    if isinstance(names, (str, keras.layers.Layer)):
        names = [names]
    layers = [hooks.find_layer(model, layer, name=name) for layer in names]
    if not layers:
        raise ValueError(f"{name}: expected at least one layer name, got {names!r}")
    for layer in layers:
        if _spatial_shape(layer) is None:
            raise ValueError(f"{name}: the output of {layer.name!r} is not a feature map (N, h, w, c) with static "
                             f"sizes")
    return layers


def feature_shapes(layers) -> list:
    return [_spatial_shape(layer) for layer in layers]


def forward(model, x, layers, logits_at, **call_kwargs):
    """One pass of ``model`` on ``x``: (the outputs of ``layers``, the class scores).

    The scores are the logits where ``logits_at`` (kernels.hooks.find_logits' answer) says, else the
    log-probabilities: the same class margins z_c - z_k for a softmax model.
    """
    with contextlib.ExitStack() as stack:
        recorders = [stack.enter_context(hooks.capture(layer)) for layer in layers]
        if logits_at is None:
            scores = tf.math.log(tf.maximum(tf.cast(model(x, **call_kwargs), tf.float32), _TINY))
        else:
            scores = tf.cast(hooks.class_logits(model, x, logits_at, **call_kwargs), tf.float32)
    return [tf.cast(r.value, tf.float32) for r in recorders], scores


def logits_location(model):
    """Where the model's logits are (kernels.hooks.find_logits), or None: read log-probabilities."""
    try:
        return hooks.find_logits(model)
    except ValueError:
        return None


class _Held:
    """Keeps objects out of Keras' tracking (the black box's weights are not the explainer's)."""

    def __init__(self, **items):
        self.__dict__.update(items)


# ------------------------------------------------------------------------------------------ the base

class MaskingExplainer(keras.Model):
    """Base of the amortised maskers: checks, phased ``fit``, ``explain``, ``select``, ``export``.

    Args (shared):
        model: the black box, a built Keras image classifier (N, H, W, C) -> (N, n_classes) of
            probabilities; never trained.
        k: the default number of pixels of ``select`` and ``export`` (None: pass k to them).
        batch_size: default of ``fit`` / ``explain`` / ``select``.
        seed: initial weights, training draws and batch order (same seed, same explainer).
        verbose: keras ``fit`` verbosity of ``fit`` (0 silent, 1 progress bar, 2 one line per epoch).
    """

    name: ClassVar[str] = ""
    #: Trained with ``fit`` before explaining (the contract's ``requires_fit``).
    requires_fit: ClassVar[bool] = True
    #: Both are trained against the true labels.
    needs_labels: ClassVar[bool] = True
    uses_targets: ClassVar[bool] = True

    def __init__(self, model, *, k=None, batch_size: int = 32, seed: int = 0, verbose: int = 1):
        super().__init__(name=type(self).name)
        model = hooks.check_model("model", model)
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3 or any(s is None for s in shape) or hooks.modality(model) != "image":
            raise ValueError(f"model: {type(self).__name__} masks images; expected a model of images (N, H, W, C) "
                             f"with a fixed size, got input shape {(None,) + shape}")
        output_shape = tuple(model.outputs[0].shape)
        if len(output_shape) != 2 or output_shape[-1] is None or output_shape[-1] < 2:
            raise ValueError(f"model: expected an output of shape (N, n_classes) with n_classes >= 2, got "
                             f"{output_shape}")
        self._held = _Held(blackbox=model)
        self.n_classes = int(output_shape[-1])
        self.image_shape = tuple(int(s) for s in shape)
        self.seed = check_int("seed", seed, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.verbose = check_int("verbose", int(verbose), minimum=0)
        self.k = None if k is None else check_k("k", k, self.n_pixels)
        self.hyper: dict = {"k": self.k, "seed": self.seed}
        self.histories: dict = {}
        self._phase = None
        self._masks_fn = tf.function(functools.partial(type(self)._masks, self), reduce_retracing=True,
                                     autograph=False)

    @property
    def model(self):
        """The explained black box (the contract's ``model``; never trained)."""
        return self._held.blackbox

    @property
    def blackbox(self):
        return self._held.blackbox

    @property
    def n_pixels(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    def _optimised_variables(self) -> list:  # pragma: no cover - abstract
        """Every variable ``self.optimizer`` steps, in all phases."""
        raise NotImplementedError

    def compile(self, optimizer="adam", **kwargs):
        """Keras' compile; the optimizer's slots are built at once for every variable it steps in any phase
        (so a phase may step a subset, and checkpoints hold every slot)."""
        super().compile(optimizer=optimizer, **kwargs)
        self._held.train_functions = {}  # traced for the previous optimizer
        if not self.optimizer.built:
            self.optimizer.build(self._optimised_variables())

    # ----------------------------------------------------------------------------------- training

    def _phases(self, epochs: int, options: dict) -> list:
        """[(phase name, epochs)] of one ``fit`` call; pops the phase options it reads from ``options``."""
        return [("train", epochs)]

    def _prepare(self, images):
        """Called once per ``fit`` with the training images (an array, or an iterator of batches)."""

    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose=None, callbacks=None, **kwargs):
        """Train on images ``x`` with their true labels ``y`` (ints or one-hot) with keras ``fit``.

        Arrays are fed as the project's seeded epoch batches (partial batches dropped); a tf.data.Dataset
        of (images, labels) batches goes to keras' ``fit`` as it is. Each training phase is one keras
        ``fit`` (its own progress bar); the Histories are kept in ``histories`` and the last is returned.
        """
        verbose = self.verbose if verbose is None else verbose
        for option in ("validation_data", "validation_split"):
            if kwargs.get(option) is not None:
                raise ValueError(f"{option}: {type(self).__name__} has no validation loss; expected None, got "
                                 f"{type(kwargs[option]).__name__}")
        phases = self._phases(check_int("epochs", epochs, minimum=1), kwargs)
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            if not isinstance(spec, tuple) or len(spec) != 2:
                raise ValueError(f"y: {type(self).__name__} is trained against the true labels; expected a dataset "
                                 f"of (images, labels) batches, got elements {spec}")
            self._prepare(image for image, _ in x.as_numpy_iterator())
            first_epoch, steps = 0, None
        else:
            x = self._check_x(x)
            if y is None:
                raise ValueError(f"y: {type(self).__name__} is trained against the true labels; expected "
                                 f"{len(x)} labels, got None")
            labels = as_targets(y, len(x), self.n_classes, name="y").astype(np.int32)
            batch_size = check_batch_size(batch_size, self.batch_size)
            steps = steps_per_epoch(len(x), batch_size)
            self._prepare(x)
            first_epoch = 0
        history = None
        for phase, phase_epochs in phases:
            if not phase_epochs:
                continue
            self._phase = phase
            self.train_function = self._held.train_functions.get(phase)  # the train_step traces once per phase
            data = x if steps is None else epoch_batches((x, labels), batch_size, self.seed, first_epoch,
                                                          first_epoch + phase_epochs)
            history = super().fit(data, epochs=phase_epochs, steps_per_epoch=steps, verbose=verbose,
                                  callbacks=callbacks, shuffle=False, **kwargs)
            self._held.train_functions[phase] = self.train_function
            self.histories[phase] = history
            first_epoch += phase_epochs
        self._phase = None
        return history

    # --------------------------------------------------------------------------------- explaining

    def _check_x(self, x) -> np.ndarray:
        return check_inputs(x, self.model, self.image_shape, None)

    def _masks(self, x, targets, full_size=True):  # pragma: no cover - abstract
        """Masks (c, H, W) of images x (c, H, W, C) for int targets (c,) (-1: the model's prediction);
        ``full_size=False``: at the mask's own resolution."""
        raise NotImplementedError

    def call(self, x, training=False):
        """Masks (N, H, W) for the model's predicted classes."""
        return self._masks(x, -tf.ones([tf.shape(x)[0]], tf.int32))

    def _batched(self, x, targets, batch_size, full_size) -> np.ndarray:
        x = self._check_x(x)
        targets = as_targets(targets, len(x), self.n_classes)
        if targets is None or not self.uses_targets:
            targets = np.full(len(x), -1, np.int32)
        batch_size = check_batch_size(batch_size, self.batch_size)
        out = [self._masks_fn(tf.constant(x[i:i + batch_size]), tf.constant(targets[i:i + batch_size], tf.int32),
                              full_size).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(out, axis=0).astype(np.float32)

    def explain(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """Masks (N, H, W) in [0, 1] of images x (N, H, W, C): one forward pass per batch of ``batch_size``."""
        return self._batched(x, targets, batch_size, True)

    def coarse_masks(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """The masks at their own resolution (N, h, w) (``mask_shape``), before the upsampling to the input."""
        return self._batched(x, targets, batch_size, False)

    def _k(self, k):
        return k_or_default(k, self.k, self.n_pixels, type(self).__name__)

    def select(self, x, k=None, *, batch_size=None, targets=None) -> np.ndarray:
        """Binary masks of the k highest-scoring pixels of each image (k defaults to the constructor's)."""
        k = self._k(k)
        return topk_mask(self.explain(x, targets, batch_size=batch_size), k).numpy()

    def _exported(self) -> list:  # pragma: no cover - abstract
        """The Keras layers / models whose variables the masks read (exported with them)."""
        raise NotImplementedError

    def export(self, path, *, k=None) -> str:
        """Write a SavedModel whose ``serving_default(x)`` returns ``scores`` (the masks of ``explain`` for
        the model's prediction) and ``mask`` (their top-k pixels); return the path."""
        k = self._k(k)

        def serve(x):
            scores = self._masks(tf.cast(x, tf.float32), -tf.ones([tf.shape(x)[0]], tf.int32))
            return {"scores": scores, "mask": topk_mask(scores, k)}

        spec = tf.TensorSpec((None,) + self.image_shape, tf.float32, name="x")
        return export_serving(path, serve, spec, track=self._exported())

    # The contract's config and the repr, as the other amortised explainers' (they read ``hyper``, ``blackbox``).
    get_config = AmortisedExplainer.get_config
    __repr__ = AmortisedExplainer.__repr__
