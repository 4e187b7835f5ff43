"""The Per-Sample Information Bottleneck (Schulz et al., ICLR 2020, Section 3.2), batched.

``InformationBottleneck(model, layer)`` cuts ``model`` after ``layer`` (iba.split), estimates the
feature map's statistics (``fit``, the contract's verb for what a method learns or estimates before
explaining) and then, for a batch of images, fits one mask alpha per image inside a single tf.function
(``explain`` -> heatmaps in bits per input pixel; ``capacity`` -> the per-element capacity in nats).

What one call does, per image (the IBA package's recipe; docs/FIDELITY.md lists every deviation):

1. R = head(x), computed once; targets = the model's prediction unless given.
2. alpha = 5 (shape of R), Adam state m = v = 0 (fresh for every call and every image).
3. ``steps`` times: lambda = blur(sigmoid(alpha)); ``copies`` noisy copies
   Z = lambda * R + (1 - lambda) * (mu + std * N(0, 1)) (inactive elements 0; clamped at 0 with
   ``relu=True``); loss = mean cross-entropy of the target over the copies + beta * mean capacity over
   the h * w * c elements; one Adam step on alpha (lr 1, beta_1 0.9, beta_2 0.999, epsilon 1e-8).
   Only the tail is differentiated by TensorFlow; the rest of the gradient is written out and fused
   (iba.step: equal to autodiff of the same loss; with the matmul blur, 1.8x faster per heatmap on the
   Fashion-MNIST CNN).
4. The capacity is evaluated once more with the final alpha (after all ``steps`` updates, as the TF1
   package does; the PyTorch package returns the capacity of its last forward pass, one update
   earlier).

The per-image losses are summed, so the gradient w.r.t. each image's alpha is exactly the gradient of
its own loss: the images never interact. The noise is drawn from a stateless generator seeded by
(seed, step) and shared by all images of a call (common random numbers), so an image's result does not
depend on which other images are in the batch, on its position or on ``batch_size``: explaining a
batch gives the same heatmaps as explaining its images one at a time with the same seed (up to float
rounding of batched kernels).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import tensorflow as tf

from eval.progress import Progress
from eval.protocol import OUTPUTS, as_targets, check_batch_size
from kernels import stateless_seed, topk_mask
from kernels.validation import check_bool, check_choice, check_int, check_k, check_positive

from iba import bits as bits_ops
from iba.bottleneck import capacity as capacity_op
from iba.estimation import accumulate, not_estimated
from iba.images import check_images, model_classes, model_input_shape
from iba.split import log_probability_fn, split_model
from iba.statistics import FeatureStatistics
from iba.step import PerSampleStep

#: alpha's initial value: lambda = sigmoid(5) ~ 0.993, almost everything passes (paper, Section 3.2).
INITIAL_ALPHA = 5.0
#: Adam's constants (the originals use PyTorch's / TF1's epsilon 1e-8; Keras 3's default is 1e-7).
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-8
#: The noise of a call (steps x copies feature maps) is kept between calls up to this size (fixed seed).
NOISE_CACHE_BYTES = 64 * 2 ** 20


class InformationBottleneck:
    """Per-Sample Information Bottleneck attribution for a Keras image classifier.

    Args:
        model: a functional (or Sequential) keras.Model with one image input (N, H, W, C) and one
            output (N, classes): probabilities (ending with a softmax) or logits. It is not modified.
        layer: name of the layer after which the bottleneck sits (searched in nested models too, e.g. a
            keras.applications backbone); its output must be a feature map (N, h, w, c).
        beta: weight of the mean capacity (over the h * w * c elements) in the loss. The paper's
            "beta = 10/k" (k = h * w * c) with the capacity summed is exactly ``beta=10`` here.
        steps: number of Adam updates of alpha (>= 0; 0 returns the capacity at alpha = 5).
        lr: Adam's learning rate.
        copies: number of noisy copies of each image per step (the paper's "batch size" B = 10). The
            number of *images* per tf.function call is ``explain``'s ``batch_size``, as for every explainer.
        sigma: standard deviation of the Gaussian that smooths sigmoid(alpha) (0 = no smoothing).
        min_std: floor of the estimated standard deviation.
        active_threshold: an element is active if non-zero in more than this share of the estimation
            samples; inactive elements output 0 and have capacity 0.
        relu: the paper code's variant for post-ReLU feature maps: noise mean 0, noise std = RMS of
            the element's non-zero activations, Z clamped at 0.
        seed: seeds the noise (int, shape-(2,) int array, or None for fresh noise at every call).
        output: "auto" (a model ending with a softmax gives probabilities, else logits), "probability"
            or "logit" (eval.protocol.OUTPUTS): how to read the model's output for the cross-entropy.
            When the model ends with a Softmax layer the loss uses that layer's input (exact log-softmax).

    Attributes after ``fit``: ``mean``, ``std`` (the noise's, (h, w, c)), ``active`` (bool mask),
    ``n_samples`` (samples used). ``head`` / ``tail``: the two halves of the model.
    """

    name: ClassVar[str] = "iba"
    #: The feature statistics are estimated with ``fit`` before explaining (the contract's ``requires_fit``).
    requires_fit: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    #: Images per tf.function call when ``explain`` gets no batch_size.
    default_batch_size: ClassVar[int] = 16

    def __init__(self, model, layer, *, beta=10.0, steps=10, lr=1.0, copies=10, sigma=1.0,
                 min_std=0.01, active_threshold=0.01, relu=False, seed=0, output="auto"):
        check_positive("beta", beta, allow_zero=True)
        check_int("steps", steps, minimum=0)
        check_positive("lr", lr)
        check_int("copies", copies, minimum=1)
        check_positive("sigma", sigma, allow_zero=True)
        check_positive("min_std", min_std)
        check_positive("active_threshold", active_threshold, allow_zero=True)
        if active_threshold >= 1:
            raise ValueError(f"active_threshold: expected a share in [0, 1), got {active_threshold!r}")
        stateless_seed(seed)  # validates
        check_choice("output", output, ("auto",) + OUTPUTS)
        self.beta, self.steps, self.lr, self.copies = float(beta), int(steps), float(lr), int(copies)
        self.seed = seed
        self._sigma, self._min_std = float(sigma), float(min_std)
        self._active_threshold, self._relu = float(active_threshold), check_bool("relu", relu)

        self.split = split_model(model, layer)
        self.model, self.layer = model, layer
        self.head, self.tail = self.split.head, self.split.tail
        self.input_shape = model_input_shape(model)
        self.n_classes = model_classes(model)
        self.feature_shape = self.split.feature_shape
        h, w, _ = self.feature_shape
        if self._sigma > 0:
            radius = round(2 * self._sigma)
            if radius >= h or radius >= w:
                raise ValueError(
                    f"sigma: the smoothing kernel of sigma {self._sigma} has {2 * radius + 1} taps and its "
                    f"reflect padding needs a feature map of at least {radius + 1}x{radius + 1}; layer "
                    f"{layer!r} gives {h}x{w}. Use a smaller sigma, sigma=0 (no smoothing) or an earlier layer"
                )
        self._log_probabilities, self.output_kind = log_probability_fn(self.split, output)

        self.statistics: FeatureStatistics | None = None
        self.n_samples = 0
        self._mean = tf.Variable(tf.zeros(self.feature_shape), trainable=False, name="iba_mean")
        self._std = tf.Variable(tf.ones(self.feature_shape), trainable=False, name="iba_std")
        self._active = tf.Variable(tf.ones(self.feature_shape), trainable=False, name="iba_active")
        x_spec = tf.TensorSpec((None,) + self.input_shape, tf.float32)
        self._features = tf.function(lambda x: self.head(x, training=False), input_signature=[x_spec])
        self._step = PerSampleStep(self.feature_shape, self._sigma, self._relu, (ADAM_BETA_1, ADAM_BETA_2),
                                   ADAM_EPSILON)
        self._noise_cache = None
        int_spec = tf.TensorSpec((), tf.int32)
        self._tail_gradient = tf.function(self._cross_entropy_gradient, input_signature=[
            tf.TensorSpec((None, None) + self.feature_shape, tf.float32), tf.TensorSpec((None,), tf.int32)],
            experimental_attributes={"_noinline": True})
        self._optimise = tf.function(self._optimise_batch, input_signature=[
            x_spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((2,), tf.int64),
            tf.TensorSpec((None, None) + self.feature_shape, tf.float32), int_spec, tf.TensorSpec((), tf.float32),
            tf.TensorSpec((), tf.float32), int_spec])

    # --- read-only settings (they shape the traced graph or the statistics) ---------------------------

    @property
    def sigma(self):
        return self._sigma

    @property
    def min_std(self):
        return self._min_std

    @property
    def active_threshold(self):
        return self._active_threshold

    @property
    def relu(self):
        return self._relu

    @property
    def mean(self) -> np.ndarray:
        self._require_estimate("mean")
        return self._mean.numpy()

    @property
    def std(self) -> np.ndarray:
        self._require_estimate("std")
        return self._std.numpy()

    @property
    def active(self) -> np.ndarray:
        self._require_estimate("active")
        return self._active.numpy().astype(bool)

    # --- estimation (fit) ----------------------------------------------------------------------------

    def fit(self, x, y=None, *, n_samples=None, batch_size=64, epochs=None, verbose=1):
        """Estimate the feature map's per-element statistics on the images ``x``; returns ``self``.

        ``x``: images (N, H, W, C) as numpy / tensor, or a tf.data.Dataset of images or (images,
        labels, ...) tuples, batched or not; ``y`` is not used (the statistics need no labels), nor is
        ``epochs`` (the statistics are one pass over x; both are accepted so that every explainer's
        ``fit`` takes the same call).
        ``n_samples``: use at most this many (None = all; needed for an infinite dataset). Statistics
        are accumulated in float64 chunk by chunk (``batch_size`` images per forward pass of the head),
        so memory stays bounded. Each call starts afresh.

        Sets the noise's mean and std (the sample mean and the Bessel-corrected std floored at
        ``min_std``; with ``relu=True``: mean 0 and the RMS of the non-zero activations, floored at
        ``min_std``) and the active-element mask. Warns (EstimationWarning) below 1,000 samples: the
        IBA package recommends 5,000-10,000.
        """
        if epochs is not None:
            check_int("epochs", epochs, minimum=1)
        (stats,) = accumulate(lambda chunk: [self._features(tf.constant(chunk)).numpy()], x,
                              [self.feature_shape], self.input_shape, n_samples=n_samples,
                              image_batch=check_int("batch_size", batch_size, minimum=1), verbose=verbose)
        mean, std = stats.noise_moments(self._relu, self._min_std)
        self._mean.assign(mean.astype(np.float32))
        self._std.assign(std.astype(np.float32))
        self._active.assign(stats.active(self._active_threshold).astype(np.float32))
        self.statistics, self.n_samples = stats, stats.count
        return self

    def estimate(self, data, n_samples=None, *, image_batch=64, verbose=1):
        """Deprecated name of ``fit`` (the README once showed it): ``fit(data, n_samples=...,
        batch_size=image_batch)``."""
        return self.fit(data, n_samples=n_samples, batch_size=image_batch, verbose=verbose)

    def _require_estimate(self, what):
        if self.statistics is None:
            raise not_estimated(what)

    # --- explanation -------------------------------------------------------------------------------

    def capacity(self, x, targets=None, *, batch_size=None, verbose=1) -> np.ndarray:
        """The per-element capacity (N, h, w, c) in nats after the optimisation (0 where inactive)."""
        return self._run(x, targets, batch_size, verbose)

    def explain(self, x, targets=None, *, batch_size=None, verbose=1) -> np.ndarray:
        """Heatmaps (N, H, W) in bits per input pixel: where the information the target needs flows.

        ``x``: images (N, H, W, C) (numpy, tensor or tf.data.Dataset); ``targets``: int labels, one int
        for all, one-hot rows, or None (the model's prediction). ``batch_size``: images per tf.function
        call (default 16; each step runs the tail on batch_size * copies noisy copies). The sum of a
        heatmap is the total capacity of its feature map in bits (``total_bits``), an upper bound on
        the information the image passes through the layer.
        """
        capacity = self._run(x, targets, batch_size, verbose)
        return self.heatmap(capacity)

    def select(self, x, k: int, *, batch_size=None, targets=None) -> np.ndarray:
        """Binary masks of the ``k`` pixels with the most bits of each image (ties: lower index first)."""
        heatmaps = self.explain(x, targets, batch_size=batch_size, verbose=0)
        return topk_mask(heatmaps, check_k("k", k, int(np.prod(heatmaps.shape[1:])))).numpy()

    def get_config(self) -> dict:
        """The method's registry name and settings (for reports)."""
        return {"method": self.name, "layer": self.layer, "beta": self.beta, "steps": self.steps, "lr": self.lr,
                "copies": self.copies, "sigma": self._sigma, "min_std": self._min_std,
                "active_threshold": self._active_threshold, "relu": self._relu,
                "seed": (self.seed if self.seed is None or isinstance(self.seed, int)
                         else np.asarray(self.seed).tolist()),
                "output": self.output_kind, "n_samples": self.n_samples}

    def heatmap(self, capacity) -> np.ndarray:
        """Capacity (N, h, w, c) in nats -> heatmaps (N, H, W) in bits per input pixel (see iba.bits)."""
        return bits_ops.capacity_to_heatmap(capacity, self.input_shape[:2])

    total_bits = staticmethod(bits_ops.total_bits)
    region_bits = staticmethod(bits_ops.region_bits)

    def _run(self, x, targets, batch_size, verbose):
        self._require_estimate("explain")
        image_batch = check_batch_size(batch_size, self.default_batch_size)
        self._check_settings()
        x = check_images("x", x, self.input_shape)
        n = len(x)
        if n == 0:
            raise ValueError("x: expected at least one image, got 0")
        t = as_targets(targets, n, self.n_classes)
        t = np.full(n, -1, np.int32) if t is None else t.astype(np.int32)
        seed = stateless_seed(self.seed)
        if seed is None:
            seed = tf.constant(np.random.SeedSequence().generate_state(2).astype(np.int64))
        noise = self._noise(seed, self.steps, self.copies)
        out = np.zeros((n,) + self.feature_shape, np.float32)
        progress = Progress(n, verbose, "image")
        for start in range(0, n, image_batch):
            stop = min(start + image_batch, n)
            out[start:stop] = self._optimise(
                tf.constant(x[start:stop]), tf.constant(t[start:stop]), seed, noise,
                tf.constant(self.steps, tf.int32), tf.constant(self.beta, tf.float32),
                tf.constant(self.lr, tf.float32), tf.constant(self.copies, tf.int32)).numpy()
            progress.update(stop)
        return out

    def _check_settings(self):
        check_positive("beta", self.beta, allow_zero=True)
        check_int("steps", self.steps, minimum=0)
        check_positive("lr", self.lr)
        check_int("copies", self.copies, minimum=1)
        stateless_seed(self.seed)

    def _noise(self, seed, steps, copies):
        """The standard-normal draws of a call, (steps, copies, h, w, c): step t uses seed fold_in(seed, t).

        With a fixed seed every call draws the same noise (the common random numbers), so it is kept
        between calls when it fits in NOISE_CACHE_BYTES; otherwise (or with seed=None) each step draws
        its own inside the optimisation (same numbers, see _optimise_batch).
        """
        size = 4 * steps * copies * int(np.prod(self.feature_shape))
        if self.seed is None or steps == 0 or size > NOISE_CACHE_BYTES:
            return tf.zeros((0, copies) + self.feature_shape)
        key = (tuple(int(v) for v in seed.numpy()), steps, copies)
        if self._noise_cache is not None and self._noise_cache[0] == key:
            return self._noise_cache[1]
        noise = _draw_noise(seed, tf.constant(steps, tf.int32), tf.constant(copies, tf.int32), self.feature_shape)
        self._noise_cache = (key, noise)
        return noise

    def _cross_entropy_gradient(self, z, targets):
        """d/dZ of the summed mean cross-entropy of the targets over the copies, Z: (N, B, h, w, c).

        Summed over images, so each image's copies get the gradient of its own loss only. A function of
        its own (not inlined into the optimisation loop): oneDNN's fast max-pool gradient needs a direct
        edge from its forward op, which the graph passes of a large loop body do not always keep (the
        plain MaxPoolGrad made a step of the Fashion-MNIST CNN up to 2x slower, from run to run).
        """
        n, copies = tf.shape(z)[0], tf.shape(z)[1]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(z)
            log_p = tf.reshape(self._log_probabilities(tf.reshape(z, (-1,) + self.feature_shape)), [n, copies, -1])
            target_log_p = tf.gather(log_p, targets, axis=2, batch_dims=1)  # (n, copies)
            cross_entropy = tf.reduce_sum(-tf.reduce_mean(target_log_p, axis=1))
        return tape.gradient(cross_entropy, z)

    def _optimise_batch(self, x, targets, seed, noise, steps, beta, lr, copies):
        features = tf.cast(self.head(x, training=False), tf.float32)  # computed once for all steps
        predicted = tf.argmax(self._log_probabilities(features), axis=-1, output_type=tf.int32)
        targets = tf.where(targets < 0, predicted, targets)
        mean, std, active = (tf.convert_to_tensor(v) for v in (self._mean, self._std, self._active))
        kernels = self._step
        reuse = tf.shape(noise)[0] > 0  # the call's noise drawn beforehand (see _noise), else per step

        def body(step, alpha, m, v):
            eps = tf.cond(reuse, lambda: noise[step], lambda: _step_noise(seed, step, copies, self.feature_shape))
            lam, one_minus = kernels.lambdas(alpha)
            z = kernels.noisy_copies(lam, one_minus, features, mean, std, active, eps)
            grad_z = self._tail_gradient(z, targets)
            alpha, m, v = kernels.update(grad_z, z, eps, alpha, lam, one_minus, features, mean, std, active, m, v,
                                         step + 1, beta, lr)
            return step + 1, alpha, m, v

        alpha = tf.fill(tf.shape(features), INITIAL_ALPHA)
        zeros = tf.zeros_like(alpha)
        _, alpha, _, _ = tf.while_loop(lambda step, *_: step < steps, body, (tf.constant(0), alpha, zeros, zeros))
        lam, one_minus = kernels.lambdas(alpha)
        return capacity_op(features, lam, one_minus, mean, std, active)


def _step_noise(seed, step, copies, feature_shape):
    """Step ``step``'s standard-normal draws (copies, h, w, c), seeded by fold_in(seed, step)."""
    shape = tf.concat([[copies], feature_shape], axis=0)
    return tf.random.stateless_normal(shape, seed=tf.random.experimental.stateless_fold_in(seed, step))


@tf.function
def _draw_noise(seed, steps, copies, feature_shape):
    """All steps' draws of a call at once, (steps, copies, h, w, c): the same numbers as _step_noise."""
    return tf.map_fn(lambda step: _step_noise(seed, step, copies, feature_shape), tf.range(steps),
                     fn_output_signature=tf.float32)
