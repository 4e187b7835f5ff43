"""Classifier-agnostic saliency (Zolna et al. 2020; the masker of Phang, Park & Geras 2020): one mask per image,
learnt against a pool of classifiers.

Facts from the authors' code (zphang/saliency_investigation and kondiz/casme, read for /work/shared/reference/
new_baselines.md, section 4); where paper and code differ this follows the code.

**Masker** (Phang's ``default_masker``). It reads a classifier's intermediate activations (detached): each
layer used goes through a 1x1 convolution to 64 channels (no bias), batch normalisation and a ReLU and is
resized bilinearly to a common grid; the columns are concatenated, a 3x3 convolution (with bias) gives one
channel, a sigmoid the mask, and a nearest upsampling by ``upsample`` the input size, so masks are constant
on upsample x upsample blocks. Convolutions start N(0, sqrt(2 / (k^2 out))), batch norms at (1, 0). The
layers: ``masker_layers``, by default the last two stages of the classifier (baselines.maskers.spatial_stages:
the last feature map of each resolution from the first convolution on), as Phang's best models use l3 and
l4 of a ResNet-50 ("layers 3,4"). The grid: input / upsample, with ``upsample`` by default the largest of
4 (Phang's 56 = 224 / 4), 2, 1 that divides the input and keeps the grid at least as fine as the finest
layer used. The masker never sees a label: the same mask for every class (``uses_targets = False``).

**Objective** (Phang's ``ca.json``, row J of their Table 1), with F the classifier the masked images go
through, y the true label, m the mask and m_bar its spatial mean (per image):
masked-in loss = CE(F(x m), y) - lambda_in relu(1[F(x m) correct] - m_bar);
masked-out loss = -H(F(x (1 - m))) 1[F(x) correct] - lambda_out relu(1[F(x) correct and F(x (1 - m))
wrong] - m_bar); each plus lambda_tv times Dabkowski's smoothness (baselines.maskers.smoothness), so
the TV weight is effectively 2 lambda_tv. lambda_in = 1, lambda_out = 15, lambda_tv = 0.001. The masker's
loss is their sum; its gradient norm is clipped to 10 and Adam (1e-3, coupled weight decay 1e-4) steps.
The masked images are x m and x (1 - m) "in normalised space", where 0 is the mean colour of the
normalisation: here kernels.blend with ``baseline``, by default the mean colour of the training images.

**Classifier-agnostic training** (Zolna's train.py). The classifier F is a trainable copy of the black box
(keras.models.clone_model plus its weights), trained jointly (SGD 1e-3, momentum 0.9, weight decay 1e-4)
on CE(F(x), y). Every ``save_freq`` batches a snapshot of F joins a pool of at most ``f_size`` (random
replacement when full). With probability ``prob_historic`` a snapshot drawn from the pool evaluates the
masked images and F is not trained on them; otherwise the current F evaluates them and also learns to
classify them (CE(F(x m)) + CE(F(x (1 - m))), adversarial to the masker). The pool is a tf.Variable per
weight of F stacked f_size times; a snapshot is evaluated by a pass of F inside a ``keras.StatelessScope``
mapping F's weights to the pool's slice (one trace, no model copies). F makes one SGD step per batch on
the sum of its clean and (when not historic) masked cross-entropies, where the code makes two.
``evaluate_historic=False`` reproduces Phang's CASMERunner, which loads the snapshot but evaluates the
masked images with the current F (the pool then only skips half of F's masked updates).

**Read-out.** ``explain(x)``: the masker on the co-trained F's activations (Phang's default
``classifier_load_mode=pickled``; ``explain_with="blackbox"`` reads the original black box's instead),
(N, H, W) in (0, 1). ``targets`` are checked and ignored.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from baselines.maskers import (MaskingExplainer, batch_norm, check_probability, clip_by_global_norm, feature_layers,
                               feature_shapes, forward, logits_location, smoothness, with_weight_decay)
from eval.training import replica_mean
from kernels import blend, hooks
from kernels.seeds import seeded, step_seed
from kernels.validation import check_bool, check_choice, check_int, check_positive

EXPLAIN_WITH = ("classifier", "blackbox")
#: Stateless draws per training step: (historic?, which snapshot), the slot a full pool replaces.
_SLOTS = 2
#: The pool is written inside the train step under a tf.cond: a copy per replica (every replica computes the
#: same snapshot from the mirrored classifier and the same global draws), read from the first.
_LOCAL = dict(synchronization="on_read", aggregation="only_first_replica")


# ---------------------------------------------------------------------------------------- the terms

def entropy(logits):
    """Entropy (nats) of softmax(logits) per row: log K for uniform logits."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    return -tf.reduce_sum(tf.nn.softmax(logits) * tf.nn.log_softmax(logits), axis=-1)


def _correct(logits, labels):
    return tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.cast(labels, tf.int32)), tf.float32)


def masked_in_loss(logits, labels, mask_mean, lambda_in: float = 1.0):
    """mean over the batch of CE(logits, y) - lambda_in relu(1[correct] - m_bar) on the masked-in images."""
    labels = tf.cast(labels, tf.int32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return tf.reduce_mean(ce - lambda_in * tf.nn.relu(_correct(logits, labels) - mask_mean))


def masked_out_loss(logits, clean_correct, labels, mask_mean, lambda_out: float = 15.0):
    """mean over the batch of -H(logits) 1[F(x) correct] - lambda_out relu(1[F(x) correct and the masked-out
    image wrong] - m_bar); ``clean_correct`` (N,) is 1[F(x) correct] in {0, 1}."""
    clean_correct = tf.cast(clean_correct, tf.float32)
    fooled = clean_correct * (1.0 - _correct(logits, labels))
    return tf.reduce_mean(-entropy(logits) * clean_correct - lambda_out * tf.nn.relu(fooled - mask_mean))


# ---------------------------------------------------------------------------------------- the masker

def _he_normal():
    """N(0, sqrt(2 / (k^2 out))): PyTorch's kaiming_normal_ with mode fan_out, the masker's init."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def build_masker(shapes, grid, upsample: int, channels: int = 64):
    """Phang's ``default_masker`` for activations of ``shapes`` (h, w, c): -> masks (N, H, W, 1) in (0, 1)."""
    inputs = [keras.Input(shape, name=f"activation{i}") for i, shape in enumerate(shapes)]
    columns = []
    for i, h in enumerate(inputs):
        h = layers.Conv2D(channels, 1, use_bias=False, kernel_initializer=_he_normal(), name=f"reduce{i}")(h)
        h = layers.ReLU(name=f"reduce{i}_relu")(batch_norm(f"reduce{i}_bn")(h))
        if tuple(h.shape[1:3]) != tuple(grid):
            h = layers.Resizing(grid[0], grid[1], interpolation="bilinear", name=f"reduce{i}_resize")(h)
        columns.append(h)
    h = layers.Concatenate(name="concat")(columns) if len(columns) > 1 else columns[0]
    h = layers.Conv2D(1, 3, padding="same", kernel_initializer=_he_normal(), name="mask_conv")(h)
    masks = layers.Activation("sigmoid", name="sigmoid")(h)
    if upsample > 1:
        masks = layers.UpSampling2D(upsample, interpolation="nearest", name="upsample")(masks)
    return keras.Model(inputs, masks, name="ca_masker")


def _default_upsample(image, finest) -> int:
    for factor in (4, 2, 1):
        if (image[0] % factor == 0 and image[1] % factor == 0
                and image[0] // factor >= finest[0] and image[1] // factor >= finest[1]):
            return factor
    return 1


def copy_classifier(model):
    """A trainable copy of ``model`` (keras.models.clone_model plus its weights); ValueError if it cannot be."""
    try:
        copy = keras.models.clone_model(model)
    except Exception as error:  # subclassed models cannot be cloned
        raise ValueError(f"model: ClassifierAgnostic trains a copy of the black box, but keras.models.clone_model "
                         f"could not copy {model.name!r} ({error}); expected a functional or Sequential "
                         f"model") from None
    copy.set_weights(model.get_weights())
    return copy


# ---------------------------------------------------------------------------------------- the explainer

class ClassifierAgnostic(MaskingExplainer):
    """Classifier-agnostic masking (Zolna et al. 2020; Phang et al. 2020): one class-agnostic mask per image.

    Extra args:
        masker_layers: names of the classifier's layers the masker reads (rank-4 feature maps); None: the last
            two stages (Phang's layers 3 and 4 of a ResNet-50).
        upsample: the final nearest upsampling factor (masks constant on upsample x upsample blocks; it must
            divide the input size); None: the largest of 4, 2, 1 keeping the grid at least as fine as the finest
            layer read.
        channels: width of each layer's 1x1 convolution (64).
        lambda_in, lambda_out: weights of the masked-in and masked-out area terms (1, 15).
        lambda_tv: weight of the smoothness term in each criterion (0.001).
        prob_historic: probability that a pooled snapshot of the classifier evaluates the masked images (0.5).
        save_freq: a snapshot joins the pool every save_freq batches (the code's 100).
        f_size: the most snapshots kept (the code's 30; random replacement when full).
        evaluate_historic: True (Zolna's train.py): a historic draw evaluates the masked images with the
            snapshot; False (Phang's CASMERunner): with the current classifier, the draw only skips its update.
        baseline: what a masked pixel becomes: None (the mean colour of the training images, the code's 0 in
            normalised space), a number, or one value per channel.
        explain_with: whose activations the masker reads at explain time: "classifier" (the co-trained copy,
            Phang's default) or "blackbox" (the original model).
        learning_rate: of the masker's Adam (1e-3).
        classifier_learning_rate: of the classifier's SGD (1e-3).
        momentum: of the classifier's SGD (0.9).
        weight_decay: PyTorch's coupled weight decay of both optimisers (1e-4).
        clip_norm: the masker's gradients are clipped to this global norm (10).
    """

    name = "classifier_agnostic"
    uses_targets = False

    def __init__(self, model, *, masker_layers=None, upsample=None, channels: int = 64, lambda_in: float = 1.0,
                 lambda_out: float = 15.0, lambda_tv: float = 0.001, prob_historic: float = 0.5,
                 save_freq: int = 100, f_size: int = 30, evaluate_historic: bool = True, baseline=None,
                 explain_with: str = "classifier", learning_rate: float = 1e-3,
                 classifier_learning_rate: float = 1e-3, momentum: float = 0.9, weight_decay: float = 1e-4,
                 clip_norm: float = 10.0, **kwargs):
        super().__init__(model, **kwargs)
        self.channels = check_int("channels", channels, minimum=1)
        for key, value in (("lambda_in", lambda_in), ("lambda_out", lambda_out), ("lambda_tv", lambda_tv),
                           ("weight_decay", weight_decay), ("momentum", momentum)):
            check_positive(key, value, allow_zero=True)
        for key, value in (("learning_rate", learning_rate), ("classifier_learning_rate", classifier_learning_rate),
                           ("clip_norm", clip_norm)):
            check_positive(key, value)
        self.lambdas = dict(lambda_in=float(lambda_in), lambda_out=float(lambda_out), lambda_tv=float(lambda_tv))
        self.prob_historic = check_probability("prob_historic", prob_historic)
        self.save_freq = check_int("save_freq", save_freq, minimum=1)
        self.f_size = check_int("f_size", f_size, minimum=1)
        self.evaluate_historic = check_bool("evaluate_historic", evaluate_historic)
        self.explain_with = check_choice("explain_with", explain_with, EXPLAIN_WITH)
        self.weight_decay, self.clip_norm = float(weight_decay), float(clip_norm)
        chosen = feature_layers(model, masker_layers, name="masker_layers", default=lambda stages: stages[-2:])
        names = [layer.name for layer in chosen]
        shapes = feature_shapes(chosen)
        finest = max(shapes, key=lambda s: s[0] * s[1])
        height, width, colours = self.image_shape
        if upsample is None:
            upsample = _default_upsample((height, width), finest)
        self.upsample = check_int("upsample", upsample, minimum=1)
        if height % self.upsample or width % self.upsample:
            raise ValueError(f"upsample: expected a divisor of the input size {height}x{width}, got {upsample}")
        self.mask_shape = (height // self.upsample, width // self.upsample)
        self._fixed_baseline = baseline is not None
        with seeded(self.seed):
            self.classifier = copy_classifier(model)
            self.masker = build_masker(shapes, self.mask_shape, self.upsample, self.channels)
        # clone_model keeps the layers' names: the copy's layers of the chosen names.
        self._held.classifier_layers = [hooks.find_layer(self.classifier, n, name="masker_layers") for n in names]
        self._held.blackbox_layers = chosen
        self._held.logits_at = logits_location(self.classifier)
        self._held.blackbox_logits_at = logits_location(model)
        self.baseline_colour = keras.Variable(self._baseline_value(baseline, colours), trainable=False,
                                              name="baseline_colour")
        # The pool: one stacked variable per floating weight of the classifier (trainable or not).
        self._held.snapshot_sources = [v for v in self.classifier.variables if "float" in str(v.dtype)]
        self.pool = [keras.Variable(np.zeros((self.f_size,) + tuple(v.shape), v.dtype), trainable=False,
                                    name=f"pool{i}", **_LOCAL)
                     for i, v in enumerate(self._held.snapshot_sources)]
        self.snapshots_taken = keras.Variable(0, dtype="int32", trainable=False, name="snapshots_taken", **_LOCAL)
        self.hyper.update(dict(
            masker_layers=names, upsample=self.upsample, channels=self.channels, **self.lambdas,
            prob_historic=self.prob_historic, save_freq=self.save_freq, f_size=self.f_size,
            evaluate_historic=self.evaluate_historic,
            baseline=None if baseline is None else np.asarray(baseline, np.float32).tolist(),
            explain_with=self.explain_with, learning_rate=float(learning_rate),
            classifier_learning_rate=float(classifier_learning_rate), momentum=float(momentum),
            weight_decay=self.weight_decay, clip_norm=self.clip_norm))
        keys = ("loss", "classifier_loss", "masked_in", "masked_out", "mask_mean")
        self.trackers = {key: keras.metrics.Mean(name=key) for key in keys}
        self.classifier_optimizer = keras.optimizers.SGD(classifier_learning_rate, momentum=momentum)
        self.classifier_optimizer.build(self.classifier.trainable_variables)
        self.compile(optimizer=keras.optimizers.Adam(learning_rate))
        self.built = True  # every part is an already-built functional model

    @staticmethod
    def _baseline_value(baseline, colours):
        if baseline is None:
            return np.zeros(colours, np.float32)
        try:
            value = np.asarray(baseline, np.float32)
        except (TypeError, ValueError):
            value = np.full(2 + colours, np.nan)  # not numbers: rejected below
        if value.shape not in ((), (colours,)) or not np.all(np.isfinite(value)):
            raise ValueError(f"baseline: expected None, a finite number or {colours} values (one per channel), got "
                             f"{baseline!r}")
        return np.broadcast_to(value, (colours,)).copy()

    def _prepare(self, images):
        """The default baseline: the mean colour of the training images."""
        if self._fixed_baseline:
            return
        batches = [images] if isinstance(images, np.ndarray) else images
        total, count = np.zeros(self.image_shape[-1], np.float64), 0
        for batch in batches:
            batch = np.asarray(batch, np.float64)
            total += batch.reshape(-1, batch.shape[-1]).sum(axis=0)
            count += batch.size // batch.shape[-1]
        self.baseline_colour.assign((total / max(count, 1)).astype(np.float32))

    def _optimised_variables(self):
        return list(self.masker.trainable_variables)

    def _exported(self):
        return [self.classifier, self.masker] + ([self.model] if self.explain_with == "blackbox" else [])

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ----------------------------------------------------------------------------------- forward

    def _masks(self, x, targets, full_size=True):
        x = tf.cast(x, tf.float32)
        if self.explain_with == "blackbox":
            activations, _ = forward(self.model, x, self._held.blackbox_layers, self._held.blackbox_logits_at,
                                     training=False)
        else:
            activations, _ = forward(self.classifier, x, self._held.classifier_layers, self._held.logits_at,
                                     training=False)
        masks = self.masker(activations, training=False)
        if not full_size:
            masks = masks[:, ::self.upsample, ::self.upsample]
        return masks[..., 0]

    def _snapshot_scope(self, slot):
        """A StatelessScope in which the classifier computes with the pool's snapshot ``slot``."""
        mapping = [(v, tf.gather(p, slot)) for v, p in zip(self._held.snapshot_sources, self.pool)]
        return keras.StatelessScope(state_mapping=mapping)

    def _evaluation_scope(self, use_snapshot, slot):
        """The classifier's weights for the masked images: the snapshot ``slot`` where ``use_snapshot``
        (a scalar bool tensor), else the current weights (their gradient flows to the classifier)."""
        mapping = [(v, tf.where(use_snapshot, tf.gather(p, slot), v.value))
                   for v, p in zip(self._held.snapshot_sources, self.pool)]
        return keras.StatelessScope(state_mapping=mapping)

    def pool_logits(self, x, slot: int) -> np.ndarray:
        """The class scores of the pool's snapshot ``slot`` on images x (for inspection)."""
        slot = check_int("slot", slot, minimum=0, maximum=self.f_size - 1)
        with self._snapshot_scope(tf.constant(slot)):
            _, scores = forward(self.classifier, tf.constant(self._check_x(x)), [], self._held.logits_at,
                                training=False)
        return scores.numpy()

    # ----------------------------------------------------------------------------------- training

    def _draws(self, step):
        """(historic? (scalar bool), the snapshot drawn, the slot a new snapshot takes)."""
        u = tf.random.stateless_uniform([3], step_seed(self.seed, step, 0, _SLOTS))
        filled = tf.minimum(self.snapshots_taken.value, self.f_size)
        historic = tf.logical_and(u[0] < self.prob_historic, filled > 0)
        drawn = tf.minimum(tf.cast(u[1] * tf.cast(filled, tf.float32), tf.int32), tf.maximum(filled - 1, 0))
        replaced = tf.minimum(tf.cast(u[2] * self.f_size, tf.int32), self.f_size - 1)
        slot = tf.where(self.snapshots_taken.value < self.f_size, self.snapshots_taken.value, replaced)
        return historic, drawn, slot

    def _save_snapshot(self, slot):
        for source, pooled in zip(self._held.snapshot_sources, self.pool):
            pooled[slot].assign(source.value)
        self.snapshots_taken.assign_add(1)
        return tf.constant(True)

    def _terms(self, x, labels, historic, drawn):
        """(the masker's loss terms, the classifier's loss) of one batch (inside the tape)."""
        activations, clean = forward(self.classifier, x, self._held.classifier_layers, self._held.logits_at,
                                     training=True)
        masks = self.masker([tf.stop_gradient(a) for a in activations], training=True)
        mask_mean = tf.reduce_mean(masks, axis=[1, 2, 3])
        colour = tf.reshape(self.baseline_colour.value, [1, 1, 1, -1])
        masked = tf.concat([blend(x, masks, colour), blend(x, 1.0 - masks, colour)], axis=0)
        use_snapshot = tf.logical_and(historic, self.evaluate_historic)
        with self._evaluation_scope(use_snapshot, drawn):
            _, scores = forward(self.classifier, masked, [], self._held.logits_at, training=False)
        masked_in, masked_out = tf.split(scores, 2, axis=0)
        tv = self.lambdas["lambda_tv"] * smoothness(masks)
        terms = {"masked_in": masked_in_loss(masked_in, labels, mask_mean, self.lambdas["lambda_in"]) + tv,
                 "masked_out": masked_out_loss(masked_out, _correct(clean, labels), labels, mask_mean,
                                               self.lambdas["lambda_out"]) + tv,
                 "mask_mean": tf.reduce_mean(mask_mean)}
        terms["loss"] = terms["masked_in"] + terms["masked_out"]

        def ce(logits):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))

        # F learns the masked images too unless a snapshot was drawn (with a snapshot the where() above
        # already stops their gradient; with evaluate_historic=False this factor does).
        adversarial = (1.0 - tf.cast(historic, tf.float32)) * (ce(masked_in) + ce(masked_out))
        terms["classifier_loss"] = ce(clean) + adversarial
        return terms

    def train_step(self, data):
        x, labels = data
        x, labels = tf.cast(x, tf.float32), tf.cast(labels, tf.int32)
        step = self.optimizer.iterations
        historic, drawn, slot = self._draws(step)
        classifier_variables = self.classifier.trainable_variables
        masker_variables = self.masker.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            terms = self._terms(x, labels, historic, drawn)
            masker_loss, classifier_loss = replica_mean(terms["loss"]), replica_mean(terms["classifier_loss"])
        masker_gradients = with_weight_decay(tape.gradient(masker_loss, masker_variables), masker_variables,
                                             self.weight_decay)
        masker_gradients = clip_by_global_norm(masker_gradients, self.clip_norm)
        classifier_gradients = with_weight_decay(tape.gradient(classifier_loss, classifier_variables),
                                                 classifier_variables, self.weight_decay)
        del tape
        self.classifier_optimizer.apply(classifier_gradients, classifier_variables)
        self.optimizer.apply(masker_gradients, masker_variables)
        tf.cond(tf.equal(step % self.save_freq, 0), lambda: self._save_snapshot(slot), lambda: tf.constant(False))
        for key, value in terms.items():
            self.trackers[key].update_state(value)
        return {key: tracker.result() for key, tracker in self.trackers.items()}
