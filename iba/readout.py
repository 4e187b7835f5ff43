"""The Readout Bottleneck (Schulz et al., ICLR 2020, Section 3.3 and Figure 3): a network predicts alpha.

Instead of fitting alpha per image (iba.per_sample), a small network is trained on a dataset to predict
it from feature maps of several depths. ``ReadoutBottleneck(model, layer, readout_layers)`` is a
``keras.Model`` whose ``train_step`` does, per batch (the IBA package's ``IBAReadout``):

1. first pass through the frozen model, no noise: the outputs of the ``readout_layers``, the bottleneck
   layer's feature map R and the model's class logits (the paper's "fc" readout) are recorded with layer
   hooks (kernels.hooks), in one forward pass;
2. each readout is normalised by its estimated statistics ((r - mean) / max(std, min_std); per element
   as the package, or per channel), resized bilinearly to R's grid (vectors such as the logits are
   broadcast over it) and concatenated;
3. three 1x1 convolutions, ReLU between them (C_in -> C_in // 2 -> 2 C_out -> C_out, C_out = R's
   channels), give alpha, clipped to [-5, 5]; the last one starts with bias 5 and weights scaled by
   1e-3, so lambda = blur(sigmoid(alpha)) ~ 0.993 at the start: everything passes;
4. second pass: Z = lambda R + (1 - lambda) eps (one noise draw per image, eq. 2) through the part of
   the model after the layer; loss = cross-entropy of the target + beta * mean capacity (eq. 6); only
   the readout network's weights are updated (the model is never changed).

A heatmap then costs one forward pass of the model plus the readout network (the capacity needs no
noise): ``explain(x)`` -> (N, H, W) bits per input pixel, as the Per-Sample Bottleneck's.
``export(path, k=...)`` writes the SavedModel of the explainer contract (raw images in, {"scores": the
heatmaps, "mask": their top-k pixels} out).

Training follows the project's conventions (eval.training): ``fit`` on arrays feeds seeded, resumable
epoch batches; the training noise is drawn from ``kernels.seeds.step_seed(seed, optimizer step)``, so a
run resumed from a checkpoint draws exactly the noise of an uninterrupted one; under tf.distribute the
loss follows ``replica_mean`` and the noise ``replica_draw``.
"""
from __future__ import annotations

import contextlib
import math
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from eval.progress import Progress
from eval.protocol import as_targets, check_batch_size
from eval.training import epoch_batches, replica_mean, steps_per_epoch
from kernels import hooks, resize, topk_mask
from kernels.export import export_serving
from kernels.seeds import replica_draw, step_seed
from kernels.validation import check_bool, check_choice, check_int, check_k, check_positive

from iba.bits import heatmap_ops
from iba.bottleneck import capacity as capacity_op, lambdas, restrict
from iba.estimation import RECOMMENDED_SAMPLES, accumulate, not_estimated
from iba.images import check_images, model_classes, model_input_shape
from iba.split import log_probability_fn, split_model

#: alpha is clipped to [-ALPHA_BOUND, ALPHA_BOUND] (the package's ``_alpha_bound``).
ALPHA_BOUND = 5.0
#: Bias of the last 1x1 convolution at the start: alpha ~ 5, lambda ~ 0.993 (paper, Section 3.2).
INITIAL_BIAS = 5.0
#: The last convolution's initial weights are PyTorch's default initialisation scaled by this.
LAST_WEIGHT_SCALE = 1e-3
#: Adam learning rate of the paper's readout training (Table 3).
PAPER_LEARNING_RATE = 1e-5
TARGETS = ("prediction", "label")
NORMALIZATIONS = ("element", "channel")
LOGITS = "logits"


class _Frozen:
    """Holds the explained model and its layers outside Keras' tracking: their weights are not the Readout's."""

    def __init__(self, model, split):
        self.model, self.split = model, split
        self.bottleneck_layer, self.readout_layers, self.logits_at = None, [], None


def _torch_default(fan_in: int, scale: float, seed: int):
    """PyTorch's default Conv2d initialisation (uniform, bound 1 / sqrt(fan_in)), times ``scale``."""
    bound = scale / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound, seed=seed)


class ReadoutBottleneck(keras.Model):
    """Readout Bottleneck attribution for a Keras image classifier (train with ``fit``).

    Args:
        model: a functional (or Sequential) keras.Model, image input (N, H, W, C), output (N, classes)
            (probabilities or logits). Never modified; its weights are not trained.
        layer: the layer after which the bottleneck sits (as ``InformationBottleneck``'s ``layer``).
        readout_layers: names of the layers whose outputs feed the readout network (rank-4 feature maps
            or rank-2 vectors; the bottleneck layer may be one of them).
        read_logits: also read the model's class logits (the paper's "fc" readout).
        beta: weight of the mean capacity (``beta=10`` is the paper's 10/k).
        sigma: the Gaussian smoothing of sigmoid(alpha) (0 = none).
        min_std: floor of every estimated standard deviation.
        active_threshold, relu: as ``InformationBottleneck`` (inactive elements: 0, no capacity).
        normalization: "element" (per-element mean/std, the package's) or "channel".
        train_targets: the class whose cross-entropy is minimised in training: "prediction" (the model's
            predicted class on the clean image, default) or "label" (the dataset's label, as the
            paper's training on ImageNet labels; ``fit`` then needs labels).
        seed: seeds the readout network's initial weights, the order of ``fit``'s batches and the
            training noise (a stateless function of the seed and the optimizer step, so a resumed run
            draws the same noise).
        output: "auto", "probability" or "logit" (eval.protocol.OUTPUTS): how to read the model's output.
        estimate_samples: training images ``fit`` estimates the statistics on when they are not yet
            estimated (the IBA package recommends 5,000-10,000).
    """

    name: ClassVar[str] = "iba_readout"
    #: The statistics and the readout network are learnt with ``fit`` (the contract's ``requires_fit``).
    requires_fit: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    #: Images per forward pass when ``explain`` gets no batch_size; the paper's training batch is 16.
    default_batch_size: ClassVar[int] = 64

    def __init__(self, model, layer, readout_layers, *, read_logits=True, beta=10.0, sigma=1.0, min_std=0.01,
                 active_threshold=0.01, relu=False, normalization="element", train_targets="prediction", seed=0,
                 output="auto", estimate_samples: int = RECOMMENDED_SAMPLES[0]):
        super().__init__(name="readout_bottleneck")
        check_positive("beta", beta, allow_zero=True)
        check_positive("sigma", sigma, allow_zero=True)
        check_positive("min_std", min_std)
        check_positive("active_threshold", active_threshold, allow_zero=True)
        self.normalization = check_choice("normalization", normalization, NORMALIZATIONS)
        self.train_targets = check_choice("train_targets", train_targets, TARGETS)
        self.estimate_samples = check_int("estimate_samples", estimate_samples, minimum=2)
        self.read_logits = check_bool("read_logits", read_logits)
        self.relu = check_bool("relu", relu)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed: expected an int, got {seed!r}")
        self.seed = int(seed)
        self.beta, self.sigma, self.min_std = float(beta), float(sigma), float(min_std)
        self.active_threshold = float(active_threshold)

        split = split_model(model, layer)
        self._frozen = _Frozen(model, split)
        self.layer_name = layer
        self.input_shape_ = model_input_shape(model)
        self.n_classes = model_classes(model)
        self.feature_shape = split.feature_shape
        self._log_probabilities, self.output_kind = log_probability_fn(split, output)
        h, w, c = self.feature_shape
        if self.sigma > 0 and round(2 * self.sigma) >= min(h, w):
            raise ValueError(f"sigma: the smoothing kernel of sigma {self.sigma} needs a feature map of at least "
                             f"{round(2 * self.sigma) + 1}x{round(2 * self.sigma) + 1}; layer {layer!r} gives {h}x{w}")
        frozen = self._frozen
        frozen.bottleneck_layer = hooks.find_layer(model, layer, name="layer")
        if isinstance(readout_layers, str) or not readout_layers:
            raise ValueError(f"readout_layers: expected a non-empty list of layer names, got {readout_layers!r}")
        self.readout_names = list(readout_layers)
        if len(set(self.readout_names)) != len(self.readout_names):
            raise ValueError(f"readout_layers: expected distinct names, got {self.readout_names}")
        frozen.readout_layers = [self._readout_layer(model, n) for n in self.readout_names]
        frozen.logits_at = self._find_logits(model) if self.read_logits else None
        self.readout_shapes = [self._readout_shape(n, lay) for n, lay in zip(self.readout_names, frozen.readout_layers)]
        if self.read_logits:
            self.readout_shapes.append((self.n_classes,))
        sources = self.readout_names + ([LOGITS] if self.read_logits else [])

        # Statistics: saved with the weights (checkpoints, export); n_samples > 0 marks them estimated.
        def stat(shape, value, name):
            return self.add_weight(shape=shape, initializer=keras.initializers.Constant(value), trainable=False,
                                   name=name)

        self._mean = stat(self.feature_shape, 0.0, "bottleneck_mean")
        self._std = stat(self.feature_shape, 1.0, "bottleneck_std")
        self._active = stat(self.feature_shape, 1.0, "bottleneck_active")
        self._readout_stats = []
        for i, (source, shape) in enumerate(zip(sources, self.readout_shapes)):
            stat_shape = shape[-1:] if self.normalization == "channel" else shape
            self._readout_stats.append((stat(stat_shape, 0.0, f"readout{i}_mean"),
                                        stat(stat_shape, 1.0, f"readout{i}_std")))
        self._n_samples = stat((), 0.0, "n_samples")
        self.readout = self._build_readout(sum(s[-1] for s in self.readout_shapes), c)

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="cross_entropy")
        self.capacity_tracker = keras.metrics.Mean(name="capacity")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        x_spec = tf.TensorSpec((None,) + self.input_shape_, tf.float32)
        self._first_pass_fn = tf.function(self._first_pass, input_signature=[x_spec])
        self._heatmap_fn = tf.function(self.call, input_signature=[x_spec])
        self._capacity_fn = tf.function(lambda x: self._capacity(x)[0], input_signature=[x_spec])
        self._alpha_fn = tf.function(lambda x: self._alpha(self._first_pass(x)[0]), input_signature=[x_spec])
        self.built = True

    # --- construction helpers ------------------------------------------------------------------------

    @staticmethod
    def _readout_layer(model, name):
        if not isinstance(name, str):
            raise TypeError(f"readout_layers: expected layer names (str), got {name!r}")
        return hooks.find_layer(model, name, name="readout_layers")  # unknown names: lists close ones

    def _readout_shape(self, name, layer):
        try:
            shape = tuple(layer.output.shape)
        except (AttributeError, ValueError, RuntimeError) as err:
            raise ValueError(f"readout_layers: the output shape of {name!r} is unknown ({err}); use a layer of "
                             "a functional model that is called once") from None
        if len(shape) == 4 and all(s is not None for s in shape[1:]):
            return tuple(int(s) for s in shape[1:])
        if len(shape) == 2 and shape[1] is not None:
            return (int(shape[1]),)
        raise ValueError(f"readout_layers: the output of {name!r} has shape {shape}; the readout supports rank-4 "
                         "feature maps (N, h, w, c) and rank-2 vectors (N, d) with static sizes")

    def _find_logits(self, model):
        if self.output_kind == "logit":
            return None  # the model's output is the logits
        try:
            return hooks.find_logits(model)
        except ValueError:
            raise ValueError("read_logits: the model returns probabilities but its logits could not be found "
                             "(no layer named 'logits', no final softmax); use read_logits=False") from None

    def _build_readout(self, c_in, c_out):
        """The readout network: three 1x1 convolutions, ReLU between (the package's layer sizes)."""
        h, w, _ = self.feature_shape
        sizes = (max(c_in // 2, 1), 2 * c_out, c_out)
        x = inputs = keras.Input((h, w, c_in), name="readouts")
        fan_in = c_in
        for i, width in enumerate(sizes):
            last = i == len(sizes) - 1
            scale = LAST_WEIGHT_SCALE if last else 1.0
            x = keras.layers.Conv2D(
                width, 1, name=f"readout_conv{i + 1}", activation=None if last else "relu",
                kernel_initializer=_torch_default(fan_in, scale, self.seed + 2 * i),
                bias_initializer=(keras.initializers.Constant(INITIAL_BIAS) if last
                                  else _torch_default(fan_in, 1.0, self.seed + 2 * i + 1)))(x)
            fan_in = width
        return keras.Model(inputs, x, name="readout_network")

    # --- the two passes ------------------------------------------------------------------------------

    @property
    def model(self):
        """The explained model (not tracked: its weights are not part of the Readout's)."""
        return self._frozen.model

    def _first_pass(self, x):
        """One forward pass of the model: ([readouts..., logits], R, logits), recorded with layer hooks."""
        frozen = self._frozen
        with contextlib.ExitStack() as stack:
            bottleneck = stack.enter_context(hooks.capture(frozen.bottleneck_layer))
            recorders = [stack.enter_context(hooks.capture(layer)) for layer in frozen.readout_layers]
            logits_recorder = None
            if frozen.logits_at is not None:
                layer, mode = frozen.logits_at
                if mode == "activation":
                    stack.enter_context(hooks.linear_activation(layer))
                else:
                    logits_recorder = stack.enter_context(hooks.capture(layer, mode))
            out = frozen.model(x, training=False)
        if frozen.logits_at is None and self.output_kind == "probability":
            logits = tf.math.log(tf.maximum(tf.cast(out, tf.float32), float(np.finfo(np.float32).tiny)))
        elif logits_recorder is not None:
            logits = logits_recorder.value
        else:
            logits = out  # the model's own logits, or the output of a Dense whose softmax was switched off
        readouts = [tf.cast(r.value, tf.float32) for r in recorders]
        logits = tf.cast(logits, tf.float32)
        if self.read_logits:
            readouts.append(logits)
        return readouts, tf.cast(bottleneck.value, tf.float32), logits

    def _alpha(self, readouts):
        """alpha (N, h, w, c) from the recorded readouts: normalise, resize, concatenate, 1x1 convs, clip."""
        h, w, _ = self.feature_shape
        columns = []
        for r, (mean, std) in zip(readouts, self._readout_stats):
            r = (r - mean) / std
            if r.shape.rank == 2:
                r = tf.broadcast_to(r[:, None, None, :], tf.stack([tf.shape(r)[0], h, w, tf.shape(r)[1]]))
            elif tuple(r.shape[1:3]) != (h, w):
                r = resize(r, (h, w), method="bilinear")
            columns.append(r)
        alpha = self.readout(tf.concat(columns, axis=-1), training=False)
        return tf.clip_by_value(alpha, -ALPHA_BOUND, ALPHA_BOUND)

    def _capacity(self, x):
        """(capacity (N, h, w, c) in nats, lambda, 1 - lambda, R, logits) for images x."""
        readouts, features, logits = self._first_pass(x)
        lam, one_minus = lambdas(self._alpha(readouts), self.sigma)
        capacity = capacity_op(features, lam, one_minus, self._mean, self._std, self._active)
        return capacity, lam, one_minus, features, logits

    def call(self, x, training=False):
        """Heatmaps (N, H, W) in bits per input pixel (one forward pass; no noise is needed)."""
        return heatmap_ops(self._capacity(x)[0], self.input_shape_[:2])

    # --- training ------------------------------------------------------------------------------------

    @property
    def metrics(self):
        return [self.loss_tracker, self.ce_tracker, self.capacity_tracker, self.accuracy_tracker]

    def compile(self, optimizer=None, **kwargs):
        """Compile with Adam(1e-5) (the paper's, Table 3) unless another optimizer is given."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(PAPER_LEARNING_RATE)
        super().compile(optimizer=optimizer, **kwargs)
        # Built now, so that a checkpoint restored before fit (eval.training.restore) loads its slots too.
        self.optimizer.build(self.readout.trainable_variables)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_data=None,
            initial_epoch: int = 0, **kwargs):
        """Train the readout network (keras ``fit``); estimate the statistics first if not yet done.

        Arrays ``x`` (images) and ``y`` (labels, needed with ``train_targets="label"``) are fed as seeded
        epoch batches (eval.training.epoch_batches: epoch e's order is a function of (seed, e), so
        ``initial_epoch`` resumes exactly); ``batch_size`` defaults to the paper's 16; the statistics
        are estimated on the first ``estimate_samples`` images. A tf.data.Dataset is passed to keras as
        it is (then call ``estimate`` beforehand). ``validation_data``: (x_val, y_val) arrays or a
        dataset. Compiles with the paper's Adam when not compiled.
        """
        if getattr(self, "optimizer", None) is None:
            self.compile()
        if isinstance(x, tf.data.Dataset):
            self._require_estimate("fit")
            return super().fit(x, epochs=epochs, verbose=verbose, callbacks=callbacks,
                               validation_data=validation_data, initial_epoch=initial_epoch, **kwargs)
        x = check_images("x", x, self.input_shape_)
        if y is None and self.train_targets == "label":
            raise ValueError("y: the Readout was built with train_targets='label'; fit it on images and labels")
        labels = np.zeros(len(x), np.int32) if y is None else as_targets(y, len(x), self.n_classes, name="y")
        if self.n_samples == 0:
            self.estimate(x, n_samples=min(self.estimate_samples, len(x)), verbose=0)
        batch_size = check_batch_size(batch_size, 16)
        if isinstance(validation_data, (tuple, list)):
            x_val = check_images("validation_data", validation_data[0], self.input_shape_)
            y_val = np.zeros(len(x_val), np.int32) if len(validation_data) < 2 or validation_data[1] is None \
                else as_targets(validation_data[1], len(x_val), self.n_classes, name="validation_data")
            validation_data = tf.data.Dataset.from_tensor_slices((x_val, y_val.astype(np.int32))).batch(batch_size)
        data = epoch_batches((x, labels.astype(np.int32)), batch_size, self.seed, initial_epoch, epochs)
        return super().fit(data, epochs=epochs, initial_epoch=initial_epoch,
                           steps_per_epoch=steps_per_epoch(len(x), batch_size), verbose=verbose, callbacks=callbacks,
                           validation_data=validation_data, shuffle=False, **kwargs)

    def _loss_closure(self, data, step):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.float32)
        readouts, features, logits = self._first_pass(x)
        if self.train_targets == "label":
            if y is None:
                raise ValueError("train_targets: the Readout was built with train_targets='label'; fit it on "
                                 "(images, labels)")
            targets = tf.cast(tf.reshape(y, [-1]), tf.int32)
        else:
            targets = tf.argmax(logits, axis=-1, output_type=tf.int32)
        seed = step_seed(self.seed, step)

        def loss_fn():
            lam, one_minus = lambdas(self._alpha(readouts), self.sigma)
            noise = replica_draw(lambda shape, s: tf.random.stateless_normal(shape, seed=s), tf.shape(features), seed)
            z = restrict(features, lam, one_minus, noise, self._mean, self._std, self._active, self.relu)
            log_p = self._log_probabilities(z)
            cross_entropy = -tf.reduce_mean(tf.gather(log_p, targets, axis=1, batch_dims=1))
            information = tf.reduce_mean(capacity_op(features, lam, one_minus, self._mean, self._std, self._active))
            hits = tf.cast(tf.equal(tf.argmax(log_p, axis=-1, output_type=tf.int32), targets), tf.float32)
            return cross_entropy + self.beta * information, cross_entropy, information, tf.reduce_mean(hits)

        return loss_fn

    def _update_metrics(self, loss, cross_entropy, information, accuracy):
        for tracker, value in zip(self.metrics, (loss, cross_entropy, information, accuracy)):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        loss_fn = self._loss_closure(data, self.optimizer.iterations)
        variables = self.readout.trainable_variables
        with tf.GradientTape() as tape:
            values = loss_fn()
            scaled = replica_mean(values[0])  # inside the tape: the gradient is taken of it
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        return self._update_metrics(*values)

    def test_step(self, data):
        # Validation noise is fixed (step -1), so validation losses of different epochs are comparable.
        return self._update_metrics(*self._loss_closure(data, tf.constant(-1, tf.int64))())

    # --- estimation ----------------------------------------------------------------------------------

    @property
    def n_samples(self) -> int:
        return int(self._n_samples.numpy())

    @property
    def readout_statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The estimated (mean, std) of every readout (``readout_layers`` order, then the logits) as numpy:
        per element, or per channel (shape (c,)) with ``normalization="channel"``."""
        return [(mean.numpy(), std.numpy()) for mean, std in self._readout_stats]

    def _require_estimate(self, what):
        if self.n_samples == 0:
            raise not_estimated(what)

    def estimate(self, data, n_samples=None, *, batch_size=64, verbose=1):
        """Estimate the statistics of the bottleneck's feature map and of every readout; returns ``self``.

        The first step of ``fit`` (which calls it when nothing is estimated yet); as
        ``InformationBottleneck.fit`` (same data kinds, float64 chunked accumulation, ``batch_size``
        images per forward pass, the same warning below 1,000 samples), with one forward pass per chunk
        for all of them.
        """
        def first_pass(chunk):
            values, features, _ = self._first_pass_fn(tf.constant(chunk))
            return [features.numpy()] + [value.numpy() for value in values]

        bottleneck, *readouts = accumulate(first_pass, data, [self.feature_shape] + self.readout_shapes,
                                           self.input_shape_, n_samples=n_samples,
                                           image_batch=check_int("batch_size", batch_size, minimum=1), verbose=verbose)
        mean, std = bottleneck.noise_moments(self.relu, self.min_std)
        self._mean.assign(mean.astype(np.float32))
        self._std.assign(std.astype(np.float32))
        self._active.assign(bottleneck.active(self.active_threshold).astype(np.float32))
        for stats, (mean_var, std_var) in zip(readouts, self._readout_stats):
            if self.normalization == "channel":
                mean, std = stats.channel_moments(self.min_std)
            else:
                mean, std = stats.mean, stats.std(self.min_std)
            mean_var.assign(mean.astype(np.float32))
            std_var.assign(std.astype(np.float32))
        self._n_samples.assign(float(bottleneck.count))
        return self

    # --- explanation ---------------------------------------------------------------------------------

    def _run(self, fn, x, targets, batch_size, verbose):
        self._require_estimate("explain")
        batch_size = check_batch_size(batch_size, self.default_batch_size)
        x = check_images("x", x, self.input_shape_)
        if len(x) == 0:
            raise ValueError("x: expected at least one image, got 0")
        # The readout predicts alpha from the image alone: every class gets the same heatmap. Targets
        # are still checked, so a caller's mistake is not silently ignored.
        as_targets(targets, len(x), self.n_classes)
        parts, progress = [], Progress(len(x), verbose, "image")
        for start in range(0, len(x), batch_size):
            parts.append(fn(tf.constant(x[start:start + batch_size])).numpy())
            progress.update(min(start + batch_size, len(x)))
        return np.concatenate(parts)

    def explain(self, x, targets=None, *, batch_size=None, verbose=1) -> np.ndarray:
        """Heatmaps (N, H, W) in bits per input pixel, ``batch_size`` images per forward pass (default 64).

        ``targets`` is accepted for the explainer contract and validated, but the Readout's alpha depends
        on the image only (it was trained for the ``train_targets`` option given at construction).
        """
        return self._run(self._heatmap_fn, x, targets, batch_size, verbose)

    def capacity(self, x, targets=None, *, batch_size=None, verbose=1) -> np.ndarray:
        """The per-element capacity (N, h, w, c) in nats (0 where inactive)."""
        return self._run(self._capacity_fn, x, targets, batch_size, verbose)

    def alpha(self, x, *, batch_size=None, verbose=0) -> np.ndarray:
        """The readout network's alpha (N, h, w, c) for images x, clipped to [-ALPHA_BOUND, ALPHA_BOUND]
        (lambda = blur(sigmoid(alpha)); ~5 everywhere before training)."""
        return self._run(self._alpha_fn, x, None, batch_size, verbose)

    def select(self, x, k: int, *, batch_size=None, targets=None) -> np.ndarray:
        """Binary masks of the ``k`` pixels with the most bits of each image (ties: lower index first)."""
        heatmaps = self.explain(x, targets, batch_size=batch_size, verbose=0)
        return topk_mask(heatmaps, check_k("k", k, int(np.prod(heatmaps.shape[1:])))).numpy()

    def export(self, path, *, k: int) -> str:
        """SavedModel at ``path``: ``serving_default(x=images)`` -> {"scores": heatmaps (N, H, W) in bits per
        pixel, "mask": their top-``k`` pixels}; returns the path."""
        self._require_estimate("export")
        k = check_k("k", k, int(np.prod(self.input_shape_[:2])))

        def serve(x):
            heatmaps = self.call(x)
            return {"scores": heatmaps, "mask": topk_mask(heatmaps, k)}

        spec = tf.TensorSpec((None,) + self.input_shape_, tf.float32, name="x")
        return export_serving(path, serve, spec, track=(self._frozen.model, self))

    def get_config(self) -> dict:
        """The method's registry name and settings (the contract's, for reports; the Readout is saved
        with ``save_weights`` or ``export``, not rebuilt from this)."""
        return {"method": type(self).name, "layer": self.layer_name, "readout_layers": list(self.readout_names),
                "read_logits": self.read_logits, "beta": self.beta, "sigma": self.sigma, "min_std": self.min_std,
                "active_threshold": self.active_threshold, "relu": self.relu, "normalization": self.normalization,
                "train_targets": self.train_targets, "seed": self.seed, "output": self.output_kind,
                "n_samples": self.n_samples}
