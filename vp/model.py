"""VP (Variational Perturbations): an amortised explainer q_theta(s | x) trained with the SOFT top-k.

The model (paper Section 3, eqs. 2-5). The explainer (vp.networks) maps x to the mean mu and the
log-variance log nu of a diagonal Gaussian over an attribution map s at (H / m, W / m), upsampled
bilinearly to H x W. One training step on a batch (the frozen classifier f gives y = f(x), its softmax):

    s = mu + sqrt(nu) * eps,  eps ~ N(0, I)                     (reparameterisation)
    k = clip(r * HW, 1, HW - 1),  r ~ U(0, 1), one per batch     (p(k) of eq. 4)
    mask = SOFT-top-k(upsample(s), k)                           (Xie et al. 2020; kernels.soft_topk)
    x~ = x * mask + b * (1 - mask)                               (eq. 2; b the baseline)
    loss = KL(f(x) || f(x~)) + beta * KL(q(s | x) || N(0, I))    (eq. 5: (*) and (**))

with beta = 1 / (1000 HW) for MNIST-sized inputs and 1 / (100 HW) for CUB / ImageNet-sized ones (HW = the
input size). The likelihood term (*) is the KL divergence of the classifier's outputs (paper eq. 3 models
p(y | x, s, k) through f(x~)); the KL (**) is summed over the map's (H / m)(W / m) entries. nVP
(``variational=False``) has no variance branch and no KL term: mu goes to the top-k directly.

``topk_on`` says where the top-k acts: "input" (default) on s upsampled to H x W -- the paper's tau acts
on s in R^{H x W} -- or "map" on s at (H / m, W / m), its mask then upsampled. Baselines b (Section 3.1,
footnotes 1-3): "blur" (the image blurred with a Gaussian: RISE's substrate, kernel 11, sigma 5 px, scaled
with the side beyond 28 px), "noise" (Gaussian noise, std 0.2 around 0), "mean" (the per-channel mean of
the image plus the same noise). The noise of a step is drawn statelessly from (seed, step), so a resumed
run and a MirroredStrategy run draw what a single-device run draws.

Inference needs no classifier: ``explain(x)`` = mu upsampled (one forward pass); ``explain_distribution``
gives (mu, sigma) upsampled and ``sample(x, n)`` draws maps from q. ``export(path, k=...)`` writes the
SavedModel of the contract ({"scores", "mask"}, plus "sigma" for VP).
"""
from __future__ import annotations

import functools
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from baselines.base import check_inputs
from eval.protocol import as_targets, check_batch_size
from eval.training import epoch_batches, replica_mean, steps_per_epoch
from kernels import hooks
from kernels.export import export_serving
from kernels.image import gaussian_blur
from kernels.perturb import blend
from kernels.seeds import replica_draw, seeded, step_seed
from kernels.soft_topk import soft_topk
from kernels.topk import topk_mask
from kernels.validation import check_bool, check_choice, check_int, check_k, check_positive, k_or_default
from vp.networks import LARGE, LOG_VARIANCE_BOUND, SMALL, check_upsample, explainer_network

BASELINES = ("blur", "noise", "mean")
TOPK_ON = ("input", "map")
#: The blur baseline at 28 px (RISE's substrate: kernel 11, sigma 5) and the std of the noise baselines.
BLUR_SIGMA, BLUR_SIDE, NOISE_STD = 5.0, 28, 0.2
#: Inputs up to this side are "MNIST-sized" (beta = 1 / (1000 HW), a 5-layer explainer); larger are "large".
SMALL_SIDE = 64


class VP(keras.Model):
    """Variational Perturbations (module docstring): ``VP(classifier, upsample=2).fit(x_train)``, then
    ``explain(x)`` -> (N, H, W) attribution maps (the posterior mean).

    Args:
        model: the frozen classifier f (a built Keras model, softmax output); never trained.
        upsample: m, the map is at (H / m, W / m) (a power of two dividing H and W; 2 for 28 px, 8 for 224).
        variational: True for VP, False for nVP.
        baseline: "blur" (default), "noise" or "mean".
        beta: weight of the KL term; default 1 / (1000 HW) for inputs up to 64 px, else 1 / (100 HW).
        topk_on: "input" (default) or "map" (see the module docstring).
        epsilon, iterations: of the SOFT top-k (0.1 and 200, the authors' defaults).
        depth, width: of the explainer network (default 5 / 32 up to 64 px, 12 / 32 above).
        k: the default k of ``select`` / ``export`` (optional; training samples its own k).
        learning_rate: Adam's (1e-3; the paper does not say).
        batch_size, seed, verbose: as every amortised explainer (``seed`` fixes weights and noise).
    """

    name: ClassVar[str] = "vp"
    requires_fit: ClassVar[bool] = True
    #: The map explains the classifier's whole output: it does not depend on a target class.
    uses_targets: ClassVar[bool] = False

    def __init__(self, model, *, upsample: int = 2, variational: bool = True, baseline: str = "blur", beta=None,
                 topk_on: str = "input", epsilon: float = 0.1, iterations: int = 200, depth=None, width=None,
                 k: int | None = None, learning_rate: float = 1e-3, batch_size: int = 32, seed: int = 0,
                 verbose: int = 1):
        super().__init__(name="vp" if variational else "nvp")
        self.classifier = hooks.check_model("model", model)
        self.input_spec_shape = tuple(model.inputs[0].shape[1:])
        if len(self.input_spec_shape) != 3 or any(d is None for d in self.input_spec_shape):
            raise ValueError(f"model: VP explains image classifiers with a fixed input shape (N, H, W, C), got "
                             f"{(None,) + self.input_spec_shape}")
        output_shape = tuple(model.outputs[0].shape)
        if len(output_shape) != 2 or output_shape[-1] is None:
            raise ValueError(f"model: expected an output of shape (N, n_classes), got {output_shape}")
        self.n_classes = int(output_shape[-1])
        height, width_px = self.input_spec_shape[:2]
        self.score_shape = (height, width_px)
        self.n_pixels = height * width_px
        self.upsample = check_upsample(upsample, self.input_spec_shape)
        self.map_shape = (height // self.upsample, width_px // self.upsample)
        self.variational = check_bool("variational", variational)
        self.baseline = check_choice("baseline", baseline, BASELINES)
        self.topk_on = check_choice("topk_on", topk_on, TOPK_ON)
        small = max(height, width_px) <= SMALL_SIDE
        if beta is None:
            beta = 1.0 / ((1000.0 if small else 100.0) * self.n_pixels)
        check_positive("beta", beta, allow_zero=True)
        self.beta = float(beta)
        check_positive("epsilon", epsilon)
        self.epsilon = float(epsilon)
        self.iterations = check_int("iterations", iterations, minimum=1)
        family = SMALL if small else LARGE
        self.depth = family["depth"] if depth is None else check_int("depth", depth, minimum=2)
        self.width = family["width"] if width is None else check_int("width", width, minimum=1)
        self.k = None if k is None else check_k("k", k, self.n_pixels)
        self.seed = check_int("seed", seed, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.verbose = check_int("verbose", int(verbose), minimum=0)
        check_positive("learning_rate", learning_rate)
        side = max(height, width_px)
        self.blur_sigma = BLUR_SIGMA * max(1.0, side / BLUR_SIDE)
        self.blur_kernel = 2 * round(self.blur_sigma) + 1  # 11 at sigma 5, RISE's kernel
        with seeded(self.seed):
            self.explainer = explainer_network(self.input_spec_shape, self.upsample, variational=self.variational,
                                               depth=self.depth, width=self.width)
        self.hyper = {"upsample": self.upsample, "variational": self.variational, "baseline": self.baseline,
                      "beta": self.beta, "topk_on": self.topk_on, "epsilon": self.epsilon,
                      "iterations": self.iterations, "depth": self.depth, "width": self.width, "k": self.k,
                      "learning_rate": float(learning_rate), "seed": self.seed}
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "likelihood", "kl", "k")}
        self._moments_fn = tf.function(functools.partial(type(self)._moments, self), reduce_retracing=True)
        self.compile(optimizer=keras.optimizers.Adam(learning_rate))
        self.optimizer.build(self.explainer.trainable_variables)
        self.built = True

    # ------------------------------------------------------------------------------------ the model

    @property
    def model(self):
        """The explained classifier (the contract's ``model``; never trained)."""
        return self.classifier

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        """The explainer's raw output (N, H / m, W / m, 2 or 1)."""
        return self.explainer(x, training=training)

    def _moments(self, x):
        """(mu, log nu) at the map resolution, (N, h, w) each; log nu = None for nVP."""
        out = self.explainer(x, training=False)
        if not self.variational:
            return out[..., 0], None
        return out[..., 0], tf.clip_by_value(out[..., 1], -LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND)

    def upsampled(self, maps):
        """Maps (N, h, w) -> (N, H, W), bilinear (half-pixel centres)."""
        if self.upsample == 1:
            return maps
        return tf.image.resize(maps[..., None], self.score_shape, method="bilinear")[..., 0]

    def perturbation_baseline(self, x, seed):
        """The baseline b of the perturbed input, same shape as x (Section 3.1, footnotes 1-3)."""
        if self.baseline == "blur":
            return gaussian_blur(x, self.blur_sigma, kernel_size=self.blur_kernel)
        noise = NOISE_STD * replica_draw(tf.random.stateless_normal, tf.shape(x), seed)
        if self.baseline == "noise":
            return noise
        return tf.reduce_mean(x, axis=[1, 2], keepdims=True) + noise

    def sample_k(self, seed):
        """This batch's k: r * HW with r ~ U(0, 1), clipped to [1, HW - 1] (HW of where the top-k acts)."""
        n = self.n_pixels if self.topk_on == "input" else int(np.prod(self.map_shape))
        ratio = tf.random.stateless_uniform([], seed)
        return tf.clip_by_value(ratio * n, 1.0, n - 1.0)

    def relaxed_mask(self, s, k):
        """SOFT top-k of maps s (N, h, w) as a mask (N, H, W) in [0, 1] (where ``topk_on`` says)."""
        if self.topk_on == "input":
            return soft_topk(self.upsampled(s), k, epsilon=self.epsilon, iterations=self.iterations)
        return self.upsampled(soft_topk(s, k, epsilon=self.epsilon, iterations=self.iterations))

    def losses_of(self, x, step):
        """(likelihood term, KL term, k) of eq. 5 on a batch x at optimiser step ``step`` (a training draw)."""
        y = tf.stop_gradient(self.classifier(x, training=False))
        out = self.explainer(x, training=True)
        mu = out[..., 0]
        if self.variational:
            log_var = tf.clip_by_value(out[..., 1], -LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND)
            eps = replica_draw(tf.random.stateless_normal, tf.shape(mu), step_seed(self.seed, step, 0, 3))
            s = mu + tf.exp(0.5 * log_var) * eps
            kl = gaussian_kl(mu, log_var)
        else:
            s, kl = mu, tf.zeros([tf.shape(x)[0]])
        k = self.sample_k(step_seed(self.seed, step, 1, 3))
        mask = self.relaxed_mask(s, k)
        perturbed = blend(x, mask, self.perturbation_baseline(x, step_seed(self.seed, step, 2, 3)))
        y_perturbed = self.classifier(perturbed, training=False)
        likelihood = kl_divergence(y, y_perturbed)
        return tf.reduce_mean(likelihood), tf.reduce_mean(kl), k

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        variables = self.explainer.trainable_variables
        with tf.GradientTape() as tape:
            likelihood, kl, k = self.losses_of(x, self.optimizer.iterations)
            loss = likelihood + self.beta * kl
            scaled = replica_mean(loss)
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        for name, value in (("loss", loss), ("likelihood", likelihood), ("kl", kl), ("k", k)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        likelihood, kl, k = self.losses_of(x, self.optimizer.iterations)
        for name, value in (("loss", likelihood + self.beta * kl), ("likelihood", likelihood), ("kl", kl),
                            ("k", k)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose=None, callbacks=None,
            validation_data=None, initial_epoch: int = 0, **kwargs):
        """Train the explainer on images ``x`` (``y`` is accepted and not used: VP learns from f(x)) with
        keras ``fit``; returns its History. Arrays are fed as seeded epoch batches (eval.training), so a
        run resumed at ``initial_epoch`` sees the batches an uninterrupted one would; a tf.data.Dataset
        goes to keras unchanged. ``validation_data``: validation images (the same objective, no update)."""
        verbose = self.verbose if verbose is None else verbose
        if isinstance(x, tf.data.Dataset):
            return super().fit(x, epochs=epochs, verbose=verbose, callbacks=callbacks,
                               validation_data=validation_data, initial_epoch=initial_epoch, **kwargs)
        x = self._check_x(x, require_finite=True)
        epochs = check_int("epochs", epochs, minimum=1)
        initial_epoch = check_int("initial_epoch", initial_epoch, minimum=0)
        batch_size = check_batch_size(batch_size, self.batch_size)
        if batch_size > len(x):
            raise ValueError(f"batch_size: expected at most the {len(x)} training images (partial batches are "
                             f"dropped), got {batch_size}")
        validation = None
        if validation_data is not None:
            x_val = validation_data[0] if isinstance(validation_data, (tuple, list)) else validation_data
            validation = tf.data.Dataset.from_tensor_slices(self._check_x(x_val)).batch(batch_size)
        data = epoch_batches(x, batch_size, self.seed, initial_epoch, epochs)
        return super().fit(data, epochs=epochs, initial_epoch=initial_epoch,
                           steps_per_epoch=steps_per_epoch(len(x), batch_size), validation_data=validation,
                           callbacks=callbacks, verbose=verbose, shuffle=False, **kwargs)

    # ---------------------------------------------------------------------------------- explaining

    def _check_x(self, x, *, require_finite: bool = False) -> np.ndarray:
        x = check_inputs(x, self.classifier, self.input_spec_shape, None)
        if require_finite and not np.all(np.isfinite(x)):
            raise ValueError("x: expected finite training images, got NaN or Inf values")
        return x

    def _chunks(self, x, batch_size):
        """(mu, log nu or None) at the map resolution for all of x, numpy, in chunks of ``batch_size``."""
        x = self._check_x(x)
        batch_size = check_batch_size(batch_size, self.batch_size)
        mus, log_vars = [], []
        for start in range(0, len(x), batch_size):
            mu, log_var = self._moments_fn(tf.convert_to_tensor(x[start:start + batch_size]))
            mus.append(mu.numpy())
            if log_var is not None:
                log_vars.append(log_var.numpy())
        return np.concatenate(mus), (np.concatenate(log_vars) if log_vars else None)

    def explain(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """The attribution maps (N, H, W): mu upsampled. ``targets`` is checked and ignored (the map explains
        the classifier's whole output, as the paper's L2X comparison says)."""
        mu, _ = self._chunks(x, batch_size)
        as_targets(targets, len(mu), self.n_classes)
        return self.upsampled(tf.constant(mu)).numpy()

    def explain_distribution(self, x, *, batch_size=None):
        """(mu, sigma), each (N, H, W): the posterior's mean and standard deviation, upsampled (VP only)."""
        if not self.variational:
            raise ValueError("variational: nVP has no variance branch; explain_distribution needs VP "
                             "(variational=True)")
        mu, log_var = self._chunks(x, batch_size)
        sigma = np.exp(0.5 * log_var)
        return self.upsampled(tf.constant(mu)).numpy(), self.upsampled(tf.constant(sigma)).numpy()

    def sample(self, x, n: int, *, seed: int = 0, batch_size=None) -> np.ndarray:
        """``n`` maps per input drawn from q(s | x) at the map resolution and upsampled: (N, n, H, W)."""
        n = check_int("n", n, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        mu, log_var = self._chunks(x, batch_size)
        if log_var is None:
            return np.repeat(self.upsampled(tf.constant(mu)).numpy()[:, None], n, axis=1)
        eps = tf.random.stateless_normal((len(mu), n) + self.map_shape, [seed, 0])
        draws = mu[:, None] + np.exp(0.5 * log_var)[:, None] * eps.numpy()
        up = self.upsampled(tf.reshape(tf.constant(draws, tf.float32), (-1,) + self.map_shape))
        return tf.reshape(up, (len(mu), n) + self.score_shape).numpy()

    def select(self, x, k: int | None = None, *, batch_size=None) -> np.ndarray:
        """Binary masks (N, H, W) of the ``k`` highest-scoring pixels (default: the constructor's k)."""
        k = self._check_k(k)
        return topk_mask(self.explain(x, batch_size=batch_size), k).numpy()

    def _check_k(self, k):
        return k_or_default(k, self.k, self.n_pixels, type(self).__name__)

    def export(self, path, *, k: int | None = None) -> str:
        """Write a SavedModel whose ``serving_default(x)`` returns {"scores", "mask"} (and "sigma" for VP):
        the upsampled mean, its top-k mask and the upsampled standard deviation; no classifier inside."""
        k = self._check_k(k)
        method = self

        def serve(x):
            mu, log_var = method._moments(tf.cast(x, tf.float32))
            scores = method.upsampled(mu)
            out = {"scores": scores, "mask": topk_mask(scores, k)}
            if log_var is not None:
                out["sigma"] = method.upsampled(tf.exp(0.5 * log_var))
            return out

        return export_serving(path, serve, tf.TensorSpec((None,) + self.input_spec_shape, tf.float32, name="x"),
                              track=(self.explainer,))

    def get_config(self) -> dict:
        """The method's registry name ("vp" or "nvp") and hyper-parameters (for reports)."""
        return {"method": "vp" if self.variational else "nvp", **self.hyper}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.hyper.items())
        return f"{type(self).__name__}({self.classifier.name!r}, {args})"


def gaussian_kl(mu, log_var):
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) per sample of maps (N, h, w) -> (N,): the sum over the map
    of 0.5 (mu^2 + nu - 1 - log nu), the closed form of eq. 5's (**) for the standard Gaussian prior."""
    return 0.5 * tf.reduce_sum(tf.square(mu) + tf.exp(log_var) - 1.0 - log_var, axis=[1, 2])


def kl_divergence(p, q):
    """KL(p || q) per row of two probability batches (N, K) -> (N,), with q floored at 1e-7 (Keras'
    epsilon) so that a class the perturbed input drives to 0 gives a large finite loss."""
    p = tf.clip_by_value(p, 0.0, 1.0)
    return tf.reduce_sum(tf.where(p > 0, p * (tf.math.log(tf.maximum(p, 1e-7)) - tf.math.log(tf.maximum(q, 1e-7))),
                                  0.0), axis=-1)


class NVP(VP):
    """nVP: VP without the variance branch and the KL term (Section 4.1): mu goes to the top-k directly.
    The same arguments as VP; ``variational`` is fixed to False."""

    name: ClassVar[str] = "nvp"

    def __init__(self, model, **kwargs):
        if kwargs.pop("variational", False):
            raise ValueError("variational: nVP is VP with variational=False; got variational=True (use VP)")
        super().__init__(model, variational=False, **kwargs)
