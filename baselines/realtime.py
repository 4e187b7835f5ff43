"""Real-Time Saliency (Dabkowski & Gal, NeurIPS 2017): a masking model trained once, one forward pass per mask.

Facts from the authors' code (PiotrDabkowski/pytorch-saliency, read for /work/shared/reference/
new_baselines.md, section 2); where paper and code differ this follows the code.

**Model.** An encoder gives multi-scale feature maps s_1 (finest) .. s_top (coarsest). The class selector
(an embedding E of n_classes x C, initialised N(0, 1/sqrt(C))) computes act = <s_top, E[s]> over the channels
and multiplies s_top by sigmoid(act - model_confidence); it also gives "exists" logits (-e/2, +e/2), e the
spatial mean of act. UNet upsamplers (3x3 conv to 4 out channels, BN, ReLU, pixel shuffle x2, then a concat
with the encoder map of that size and a bottleneck residual block) climb to the mask resolution; a 1x1
head gives (a, b) and mask = |a| / (|a| + |b|), upsampled bilinearly to the input.

**Encoder (a stand-in).** The code's encoder is an ImageNet-pretrained ResNet-50, frozen; none exists
offline, so by default the encoder is **the black box's own convolutional trunk, frozen**: its stage outputs
read with layer hooks (baselines.maskers.spatial_stages: from the first convolution on, the last layer of
each spatial resolution whose output is a feature map), or the layers named in ``encoder_layers``. Option
``encoder="small"``: a small CNN trained from scratch in phase 1 (with the selector, on the exists
cross-entropy: the stand-in for the classification pretraining) and frozen in phase 2.

**Mask resolution.** The code's mask is 56 x 56 for 224 images (a quarter of the side), the resolution of s2.
Here ``mask_resolution`` (default: a quarter of the input side, but not coarser than the coarsest encoder
map). The upsamplers go through every encoder map finer than s_top and at most as fine as the mask (their
skips), then to the mask resolution itself without skip if no map has it; when the mask has s_top's
resolution one stage refines at that resolution (3x3 conv, BN, ReLU, bottleneck block).
Channels: base_channels * 2^(stages - 1 - i) at stage i (the code's 256, 128, 64 with base 64).

**Objective (the code's form, not the paper's).** On the mask m upsampled to the input, with the preserved
image x m + A1 (1 - m) and the destroyed image x (1 - m) + A2 m (kernels.blend), z the black box's logits
(or log-probabilities: the same margins), c the true label:
preserver = mean relu(max_{k!=c} z_k - z_c + 1) on the preserved image, destroyer = mean relu(z_c - max_{k!=c}
z_k + 5) on the destroyed one, area = mean((m + 0.0005)^0.3), smoothness = baselines.maskers.smoothness;
loss = destroyer + 8 area + 0.005 smooth + 0.3 preserver (the training script's weights). With probability
``fake_prob`` the selector is a random wrong class and the hinges flip (the preserved image must not be c,
the destroyed must stay c, margins 1), which with the area term teaches empty masks for absent classes.
Alternatives A (independently per sample and per composite): with probability 0.5 a Gaussian blur, else a
random colour per channel plus Gaussian noise; every image also gets noise before compositing. The code's
images are in [-1, 1]; the project's in [0, 1], so the colour and noise constants are halved (colour
0.5 + U(-0.165, 0.165), noise std 0.055, image noise std 0.015), and the blur (kernel 55, sigma 11 at 224 px)
scales with the image side (``blur_sigma``). Gradients flow only through m.

**Training (two phases, as the code).** ``fit(x, y, epochs=..., selector_epochs=...)``: phase 1 trains the
selector (and the small encoder) on the cross-entropy of the exists logits (selector fake with probability
``selector_fake_prob`` = 0.5, exists = not fake); phase 2 trains the upsamplers and the head on the saliency
loss (``fake_prob`` = 0.3) with the selector and the encoder frozen. Adam (1e-3) with PyTorch's coupled
weight decay 1e-4; model_confidence = 0 in training. The true labels are required.

**Read-out.** ``explain(x, targets)``: one forward pass with selector = the target (None: the black box's
prediction), mask upsampled bilinearly to the input (N, H, W) in [0, 1]. ``model_confidence`` defaults to 0
(the training value) where the code's evaluation uses 6: the code's 6 is tuned to the scale of a trained
ResNet-50 embedding, which the stand-in encoders do not share, and any other value reads the decoder off the
conditions it was trained in (the README: 0 shows anything resembling the class, 5 only its most salient
parts). ``coarse_masks`` gives the masks at ``mask_shape`` before the upsampling.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from baselines.maskers import (MaskingExplainer, batch_norm, check_probability, feature_layers, feature_shapes,
                               forward, logits_location, smoothness, with_weight_decay)
from eval.training import replica_mean
from kernels import blend, gaussian_blur, resize
from kernels.seeds import replica_draw, seeded, step_seed
from kernels.validation import check_choice, check_int, check_positive

ENCODERS = ("blackbox", "small")
MASK_ACTIVATIONS = ("ratio", "sigmoid")
#: area = mean((m + AREA_EPSILON) ** area_power).
AREA_EPSILON = 0.0005
#: Margins of the hinges: preserver (and both fake-selector terms) 1, destroyer 5.
PRESERVER_MARGIN = 1.0
DESTROYER_MARGIN = 5.0
#: Alternatives, for [0, 1] images (the code's constants for [-1, 1] halved): colour 0.5 + U(-r, r) per channel.
COLOUR_HALF_RANGE = 0.165
ALTERNATIVE_NOISE_STD = 0.055
IMAGE_NOISE_STD = 0.015
BLUR_PROBABILITY = 0.5
#: The code's blur: sigma 11 at 224 px, kernel 55 (= 5 sigma).
BLUR_SIGMA_PER_PIXEL = 11.0 / 224.0
#: |a| / (|a| + |b| + RATIO_EPSILON): no 0 / 0 where both are exactly 0.
RATIO_EPSILON = 1e-8
#: Stateless draws per training step: the selector, then 4 per composite (blur or colour, colour, noise,
#: image noise) for the preserved and the destroyed images.
_SLOTS = 9


# ---------------------------------------------------------------------------------------- the terms

def class_margin(logits, labels):
    """z_c - max_{k != c} z_k per row of ``logits`` (N, K) for int ``labels`` (N,)."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    onehot = tf.one_hot(tf.cast(labels, tf.int32), tf.shape(logits)[-1], on_value=True, off_value=False)
    own = tf.reduce_sum(tf.where(onehot, logits, 0.0), axis=-1)
    others = tf.reduce_max(tf.where(onehot, tf.float32.min, logits), axis=-1)
    return own - others


def preserver_hinge(logits, labels, margin: float = PRESERVER_MARGIN):
    """relu(max_{k != c} z_k - z_c + margin) per row: 0 once class c leads by ``margin``."""
    return tf.nn.relu(margin - class_margin(logits, labels))


def destroyer_hinge(logits, labels, margin: float = DESTROYER_MARGIN):
    """relu(z_c - max_{k != c} z_k + margin) per row: 0 once class c trails by ``margin``."""
    return tf.nn.relu(class_margin(logits, labels) + margin)


def area_term(masks, power: float = 0.3):
    """mean((m + 0.0005) ** power) over every pixel of the batch (0.0005 ** 0.3 ~ 0.102 for empty masks)."""
    return tf.reduce_mean(tf.pow(tf.convert_to_tensor(masks, tf.float32) + AREA_EPSILON, power))


def saliency_objective(masks, preserved_logits, destroyed_logits, labels, fake, *, area_weight=8.0,
                       area_power=0.3, smooth_weight=0.005, preserver_weight=0.3) -> dict:
    """The code's saliency loss and its terms (scalars): destroyer + area_weight area + smooth_weight
    smooth + preserver_weight preserver. ``fake`` (N,) bool: the selector was a wrong class, so the
    preserved image must not show c and the destroyed one must (both hinges with margin 1)."""
    fake = tf.cast(fake, tf.bool)
    preserved = class_margin(preserved_logits, labels)
    destroyed = class_margin(destroyed_logits, labels)
    preserver = tf.reduce_mean(tf.where(fake, tf.nn.relu(preserved + PRESERVER_MARGIN),
                                        tf.nn.relu(PRESERVER_MARGIN - preserved)))
    destroyer = tf.reduce_mean(tf.where(fake, tf.nn.relu(PRESERVER_MARGIN - destroyed),
                                        tf.nn.relu(destroyed + DESTROYER_MARGIN)))
    area, smooth = area_term(masks, area_power), smoothness(masks)
    loss = destroyer + area_weight * area + smooth_weight * smooth + preserver_weight * preserver
    return {"loss": loss, "preserver": preserver, "destroyer": destroyer, "area": area, "smooth": smooth}


# ---------------------------------------------------------------------------------------- the networks

def _conv_bn_relu(h, channels, kernel, tag, strides=1):
    h = layers.Conv2D(channels, kernel, strides=strides, padding="same", use_bias=False, name=f"{tag}_conv")(h)
    return layers.ReLU(name=f"{tag}_relu")(batch_norm(f"{tag}_bn")(h))


def _bottleneck(h, out, tag):
    """1x1 -> 3x3 -> 1x1 (width out // 4), BN after each, a 1x1 conv on the skip path when the width changes."""
    mid = max(out // 4, 1)
    y = _conv_bn_relu(h, mid, 1, f"{tag}_a")
    y = _conv_bn_relu(y, mid, 3, f"{tag}_b")
    y = batch_norm(f"{tag}_c_bn")(
        layers.Conv2D(out, 1, use_bias=False, name=f"{tag}_c_conv")(y))
    skip = h if h.shape[-1] == out else layers.Conv2D(out, 1, name=f"{tag}_skip")(h)
    return layers.ReLU(name=f"{tag}_out")(layers.Add(name=f"{tag}_add")([y, skip]))


def _upsample(h, target, out, tag):
    """To ``target`` (h, w): 3x3 conv to 4 out, BN, ReLU, pixel shuffle x2 (then bilinear to the target if
    x2 is not it); at the same resolution a 3x3 conv to out, BN, ReLU."""
    size = tuple(h.shape[1:3])
    if target[0] <= size[0] and target[1] <= size[1]:
        return _conv_bn_relu(h, out, 3, tag)
    h = _conv_bn_relu(h, 4 * out, 3, tag)
    # The code's ReLU after the shuffle is left out: it is the identity on the shuffled ReLU output.
    h = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2), name=f"{tag}_shuffle")(h)
    if (2 * size[0], 2 * size[1]) != tuple(target):
        h = layers.Resizing(target[0], target[1], interpolation="bilinear", name=f"{tag}_resize")(h)
    return h


def _mask_activation(kind):
    if kind == "sigmoid":
        return lambda ab: tf.sigmoid(ab[..., :1] / 2.0)
    return lambda ab: tf.abs(ab[..., :1]) / (tf.abs(ab[..., :1]) + tf.abs(ab[..., 1:]) + RATIO_EPSILON)


def build_decoder(top_shape, skip_shapes, mask_size, base_channels: int, activation: str = "ratio"):
    """The upsamplers and the head: [selected s_top, skips (coarse to fine)...] -> masks (N, h, w, 1)."""
    top = keras.Input(top_shape, name="selected")
    skips = [keras.Input(shape, name=f"skip{i}") for i, shape in enumerate(skip_shapes)]
    targets = [tuple(shape[:2]) for shape in skip_shapes]
    if not targets or targets[-1] != tuple(mask_size):
        targets.append(tuple(mask_size))
    h = top
    for i, target in enumerate(targets):
        out = base_channels * 2 ** (len(targets) - 1 - i)
        h = _upsample(h, target, out, f"up{i}")
        if i < len(skips):
            h = layers.Concatenate(name=f"up{i}_concat")([h, skips[i]])
        h = _bottleneck(h, out, f"up{i}_block")
    ab = layers.Conv2D(2, 1, name="head")(h)
    masks = layers.Lambda(_mask_activation(activation), name="mask")(ab)
    return keras.Model([top] + skips, masks, name="rts_decoder")


def build_small_encoder(shape, channels):
    """A small CNN trained from scratch: a 3x3 conv, BN, ReLU per stage, stride 2 from the second stage on."""
    x = inputs = keras.Input(shape, name="image")
    outputs = []
    for i, width in enumerate(channels):
        x = _conv_bn_relu(x, width, 3, f"enc{i}", strides=1 if i == 0 else 2)
        outputs.append(x)
    return keras.Model(inputs, outputs, name="rts_encoder")


def _pair(name, value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in value)):
        raise ValueError(f"{name}: expected None, an int or a pair (height, width) of ints, got {value!r}")
    return tuple(int(v) for v in value)


# ---------------------------------------------------------------------------------------- the explainer

class RealTimeSaliency(MaskingExplainer):
    """Real-Time Saliency (Dabkowski & Gal, 2017): a class-selective masking model trained once (see the module).

    Extra args:
        encoder: "blackbox" (the black box's own convolutional trunk, frozen; the stand-in for the code's
            pretrained ResNet-50) or "small" (a small CNN trained from scratch in phase 1).
        encoder_layers: with encoder="blackbox", the layers read as the multi-scale features (distinct
            resolutions; the coarsest gets the class selector); None: every stage of the trunk
            (baselines.maskers.spatial_stages).
        encoder_channels: with encoder="small", the width of each stage (the first at the input resolution,
            each next one at half the previous).
        mask_resolution: the mask's (height, width) before the upsampling to the input (an int: square);
            None: a quarter of the input side (the code's 56 for 224), but not coarser than the coarsest
            encoder map.
        base_channels: width of the last upsampler (the code's 64); stage i of n has base * 2^(n - 1 - i).
        mask_activation: "ratio" (|a| / (|a| + |b|), the code's default) or "sigmoid" (sigmoid(a / 2), its
            ``use_simple_activation``).
        model_confidence: subtracted from the selector's activation at explain time (0 in training; see the
            module docstring for why 0 and not the code's evaluation default 6).
        fake_prob: probability of a wrong-class selector in phase 2 (the code's 0.3).
        selector_fake_prob: the same in phase 1 (the code's 0.5).
        area_weight, smooth_weight, preserver_weight: the loss weights (the training script's 8, 0.005, 0.3).
        area_power: exponent of the area term (0.3).
        blur_sigma: sigma of the blurred alternative in pixels; None: 11/224 of the image side (the code's 11
            at 224 px), kernel 5 sigma.
        learning_rate: of the Adam optimiser of both phases (1e-3).
        weight_decay: PyTorch's coupled weight decay of both phases (1e-4).
    """

    name = "real_time_saliency"
    uses_targets = True

    def __init__(self, model, *, encoder: str = "blackbox", encoder_layers=None, encoder_channels=(16, 32, 64),
                 mask_resolution=None, base_channels: int = 64, mask_activation: str = "ratio",
                 model_confidence: float = 0.0, fake_prob: float = 0.3, selector_fake_prob: float = 0.5,
                 area_weight: float = 8.0, area_power: float = 0.3, smooth_weight: float = 0.005,
                 preserver_weight: float = 0.3, blur_sigma=None, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-4, **kwargs):
        super().__init__(model, **kwargs)
        check_choice("encoder", encoder, ENCODERS)
        check_choice("mask_activation", mask_activation, MASK_ACTIVATIONS)
        self.base_channels = check_int("base_channels", base_channels, minimum=1)
        for key, value in (("area_weight", area_weight), ("area_power", area_power), ("smooth_weight", smooth_weight),
                           ("preserver_weight", preserver_weight), ("weight_decay", weight_decay)):
            check_positive(key, value, allow_zero=True)
        check_positive("learning_rate", learning_rate)
        if isinstance(model_confidence, (bool, np.bool_)) or not isinstance(model_confidence, (int, float, np.number)):
            raise TypeError(f"model_confidence: expected a number, got {model_confidence!r}")
        if not np.isfinite(model_confidence):
            raise ValueError(f"model_confidence: expected a finite number, got {model_confidence!r}")
        self.fake_prob = check_probability("fake_prob", fake_prob, below_one=True)
        self.selector_fake_prob = check_probability("selector_fake_prob", selector_fake_prob, below_one=True)
        height, width, _ = self.image_shape
        if blur_sigma is None:
            blur_sigma = BLUR_SIGMA_PER_PIXEL * min(height, width)
        check_positive("blur_sigma", blur_sigma, allow_zero=True)
        self.blur_sigma = float(blur_sigma)
        # Kernel 5 sigma (the code's 55 for 11), odd, within reflect padding's limit (radius < side).
        self.blur_kernel = 2 * min(int(2.5 * self.blur_sigma), min(height, width) - 1) + 1
        self.model_confidence = float(model_confidence)
        self.objective_weights = dict(area_weight=float(area_weight), area_power=float(area_power),
                                      smooth_weight=float(smooth_weight), preserver_weight=float(preserver_weight))
        self.weight_decay = float(weight_decay)
        self._held.logits_at = logits_location(model)
        with seeded(self.seed):
            shapes = self._build_encoder(model, encoder, encoder_layers, encoder_channels)
            top = shapes[-1]
            self.mask_shape = self._mask_shape(mask_resolution, top)
            self._skips = [i for i, s in enumerate(shapes[:-1])
                           if s[0] <= self.mask_shape[0] and s[1] <= self.mask_shape[1]][::-1]
            self.class_embedding = layers.Embedding(
                self.n_classes, top[-1], name="class_selector",
                embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(top[-1])))
            self.class_embedding.build((None,))
            self.decoder = build_decoder(top, [shapes[i] for i in self._skips], self.mask_shape, self.base_channels,
                                         mask_activation)
        self.hyper.update(dict(
            encoder=encoder, encoder_layers=self._encoder_names, mask_resolution=list(self.mask_shape),
            base_channels=self.base_channels, mask_activation=mask_activation, model_confidence=self.model_confidence,
            fake_prob=self.fake_prob, selector_fake_prob=self.selector_fake_prob, **self.objective_weights,
            blur_sigma=self.blur_sigma, learning_rate=float(learning_rate), weight_decay=self.weight_decay))
        if encoder == "small":
            self.hyper["encoder_channels"] = list(encoder_channels)
        names = ("loss", "exists_accuracy", "preserver", "destroyer", "area", "smooth")
        self.trackers = {key: keras.metrics.Mean(name=key) for key in names}
        self.compile(optimizer=keras.optimizers.Adam(learning_rate))
        self.built = True  # every part is an already-built functional model

    def _build_encoder(self, model, encoder, encoder_layers, encoder_channels) -> list:
        """Set up the encoder; return its feature shapes (h, w, c), finest first."""
        if encoder == "blackbox":
            chosen = feature_layers(model, encoder_layers, name="encoder_layers", default=lambda stages: stages)
            chosen = sorted(chosen, key=lambda layer: -np.prod(layer.output.shape[1:3]))
            self.encoder = None
            self._held.encoder_layers = chosen
            self._encoder_names = [layer.name for layer in chosen]
            shapes, what = feature_shapes(chosen), "encoder_layers"
        else:
            if encoder_layers is not None:
                raise ValueError(f"encoder_layers: only read with encoder='blackbox', got {encoder_layers!r} with "
                                 f"encoder='small'")
            if (not isinstance(encoder_channels, (tuple, list)) or not encoder_channels
                    or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1
                           for c in encoder_channels)):
                raise ValueError(f"encoder_channels: expected a list of ints >= 1, got {encoder_channels!r}")
            self.encoder = build_small_encoder(self.image_shape, [int(c) for c in encoder_channels])
            self._encoder_names = None
            shapes, what = [tuple(int(s) for s in out.shape[1:]) for out in self.encoder.outputs], "encoder_channels"
        resolutions = [s[:2] for s in shapes]
        if len(set(resolutions)) != len(resolutions):
            raise ValueError(f"{what}: expected feature maps of distinct resolutions, got shapes {shapes}")
        return shapes

    def _mask_shape(self, mask_resolution, top):
        height, width, _ = self.image_shape
        if mask_resolution is None:
            return max(height // 4, top[0]), max(width // 4, top[1])
        shape = _pair("mask_resolution", mask_resolution)
        if not (top[0] <= shape[0] <= height and top[1] <= shape[1] <= width):
            raise ValueError(f"mask_resolution: expected a size between the coarsest encoder map {top[:2]} and the "
                             f"input {(height, width)}, got {shape}")
        return shape

    def _variables(self, phase):
        if phase == "selector":
            return list(self.class_embedding.trainable_variables) + (
                [] if self.encoder is None else list(self.encoder.trainable_variables))
        return list(self.decoder.trainable_variables)

    def _optimised_variables(self):
        return self._variables("selector") + self._variables("masker")

    def _exported(self):
        return [self.model, self.class_embedding, self.decoder] + ([] if self.encoder is None else [self.encoder])

    # ----------------------------------------------------------------------------------- forward

    def _encode(self, x, training=False):
        """(feature maps finest first, class scores or None): the frozen trunk's or the small encoder's."""
        if self.encoder is None:
            features, scores = forward(self.model, x, self._held.encoder_layers, self._held.logits_at, training=False)
            return [tf.stop_gradient(f) for f in features], scores
        features = self.encoder(x, training=training)
        return list(features) if isinstance(features, (list, tuple)) else [features], None

    def apply_selector(self, top, classes, confidence):
        """The class selector: (s_top * sigmoid(<s_top, E[c]> - confidence), exists logits (N, 2))."""
        embedding = self.class_embedding(tf.cast(classes, tf.int32))
        act = tf.einsum("nhwc,nc->nhw", top, embedding)[..., None]
        mean = tf.reduce_mean(act, axis=[1, 2, 3])
        return top * tf.sigmoid(act - confidence), tf.stack([-mean / 2.0, mean / 2.0], axis=-1)

    def _decode(self, features, classes, confidence, training=False):
        selected, _ = self.apply_selector(features[-1], classes, confidence)
        return self.decoder([selected] + [features[i] for i in self._skips], training=training)

    def _masks(self, x, targets, full_size=True):
        x = tf.cast(x, tf.float32)
        features, scores = self._encode(x)
        if scores is None:
            _, scores = forward(self.model, x, [], self._held.logits_at, training=False)
        classes = tf.where(targets < 0, tf.argmax(scores, axis=-1, output_type=tf.int32), targets)
        masks = self._decode(features, classes, self.model_confidence)
        if full_size:
            masks = resize(masks, self.image_shape[:2], "bilinear")
        return masks[..., 0]

    # ----------------------------------------------------------------------------------- training

    def _phases(self, epochs, options):
        selector_epochs = options.pop("selector_epochs", None)
        selector_epochs = epochs if selector_epochs is None else check_int("selector_epochs", selector_epochs,
                                                                           minimum=0)
        return [("selector", selector_epochs), ("masker", epochs)]

    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose=None, callbacks=None, **kwargs):
        """Phase 1 (``selector_epochs``, default ``epochs``) trains the selector on the exists logits, phase 2
        (``epochs``) the upsamplers and the head on the saliency loss; ``y``: the true labels (required).
        Otherwise as baselines.maskers.MaskingExplainer.fit; returns phase 2's History."""
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks, **kwargs)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _selectors(self, labels, step, fake_prob):
        """(selector, fake): the true label, or with probability fake_prob a uniformly drawn wrong class."""
        draw = replica_draw(tf.random.stateless_uniform, tf.stack([tf.shape(labels)[0], 2]),
                            step_seed(self.seed, step, 0, _SLOTS))
        fake = draw[:, 0] < fake_prob
        offset = 1 + tf.minimum(tf.cast(draw[:, 1] * (self.n_classes - 1), tf.int32), self.n_classes - 2)
        return tf.where(fake, (labels + offset) % self.n_classes, labels), fake

    def alternatives(self, x, step, first_slot: int):
        """The code's alternative images A for x (N, H, W, C): per sample a blur (probability 0.5) or a random
        colour plus noise; and x with its own noise (the ``step``'s stateless draws ``first_slot``..+3)."""
        seeds = [step_seed(self.seed, step, first_slot + i, _SLOTS) for i in range(4)]
        shape = tf.shape(x)
        n, channels = shape[0], self.image_shape[-1]
        blur = replica_draw(tf.random.stateless_uniform, tf.stack([n, 1, 1, 1]), seeds[0]) < BLUR_PROBABILITY
        colour = 0.5 + COLOUR_HALF_RANGE * (
            2.0 * replica_draw(tf.random.stateless_uniform, tf.stack([n, 1, 1, channels]), seeds[1]) - 1.0)
        noisy = colour + ALTERNATIVE_NOISE_STD * replica_draw(tf.random.stateless_normal, shape, seeds[2])
        blurred = gaussian_blur(x, self.blur_sigma, kernel_size=self.blur_kernel) if self.blur_sigma > 0 else x
        image = x + IMAGE_NOISE_STD * replica_draw(tf.random.stateless_normal, shape, seeds[3])
        return image, tf.where(blur, blurred, noisy)

    def _selector_terms(self, x, labels, step):
        features, _ = self._encode(x, training=True)
        selector, fake = self._selectors(labels, step, self.selector_fake_prob)
        _, exists = self.apply_selector(features[-1], selector, 0.0)
        truth = tf.cast(tf.logical_not(fake), tf.int32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=truth, logits=exists))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(exists, axis=-1, output_type=tf.int32), truth),
                                          tf.float32))
        return {"loss": loss, "exists_accuracy": accuracy}

    def _saliency_terms(self, x, labels, step):
        features, _ = self._encode(x, training=False)
        selector, fake = self._selectors(labels, step, self.fake_prob)
        masks = resize(self._decode(features, selector, 0.0, training=True), self.image_shape[:2], "bilinear")
        image_p, alternative_p = self.alternatives(x, step, 1)
        image_d, alternative_d = self.alternatives(x, step, 5)
        composites = tf.concat([blend(image_p, masks, alternative_p), blend(image_d, 1.0 - masks, alternative_d)], 0)
        _, scores = forward(self.model, composites, [], self._held.logits_at, training=False)
        preserved, destroyed = tf.split(scores, 2, axis=0)
        return saliency_objective(masks, preserved, destroyed, labels, fake, **self.objective_weights)

    def train_step(self, data):
        x, labels = data
        x, labels = tf.cast(x, tf.float32), tf.cast(labels, tf.int32)
        step = self.optimizer.iterations
        variables = self._variables(self._phase)
        with tf.GradientTape() as tape:
            terms = (self._selector_terms(x, labels, step) if self._phase == "selector"
                     else self._saliency_terms(x, labels, step))
            scaled = replica_mean(terms["loss"])
        gradients = with_weight_decay(tape.gradient(scaled, variables), variables, self.weight_decay)
        self.optimizer.apply(gradients, variables)
        for key, value in terms.items():
            self.trackers[key].update_state(value)
        return {key: self.trackers[key].result() for key in terms}
