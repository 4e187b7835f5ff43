"""The masking paper's mask optimiser (Gupta et al., NeurIPS 2022, Appendix A, eq. 6), batched.

For an image x and a label a, a mask M = up_s(sigmoid(W)) with parameters W at (H / s, W / s) (W = 0 at the
start, M = 0.5; ``up_s`` bilinear, half-pixel centres: PyTorch's align_corners=False) is learned by Adam
(lr 0.05, 2,000 steps) to minimise

    L(W) = mean_j [-log f(M x + (1 - M) xbar_j, a)] + lambda_TV TV(M) + lambda_1 ||M||_1          (eq. 6)

with J distractors xbar_j drawn with replacement, fresh at every step, from a pool of training images
(``fit(x_train)``: a seeded subset of ``pool_size`` = 1,000 images, the paper's), TV the squared anisotropic
total variation (kernels.total_variation) and ||M||_1 the plain sum, both on the upsampled mask. The
scores are the learned masks M (values in (0, 1)): high where the label's evidence is.

- Batched: all (image, label) pairs of a chunk (``batch_size`` pairs, so ``batch_size`` x J composites per
  forward pass) are optimised together in one tf.while_loop inside a tf.function; the loss is the sum of the
  independent per-pair losses, so every pair's gradient (and its own Adam state) is what a separate run gives.
  The released code divides the summed loss by the batch size; Adam is invariant to that scale (but for its
  epsilon), and summing keeps a mask independent of the batch it was learned in.
- Seeded: step t draws its J pool indices with the stateless seed [seed, t], the same for every pair of the
  call, so a mask depends on (seed, image, label) only -- the same masks for any ``batch_size``, one image at
  a time or all at once, for ``explain`` and ``explain_labels`` alike. (The released code draws unseeded,
  independently per image.)
- Several labels per image: ``explain_labels(x, labels="top2" | "all" | [...])`` learns one mask per
  (image, label) pair (the paper learns a mask for every evaluated label); ``explain(x, targets)`` is one
  label per image (the contract).
- The released code's quirks as options: ``loss="double_softmax"`` applies cross-entropy to the mean over
  the distractors of the softmax probabilities (its double softmax) instead of eq. 6's mean of -log f;
  ``class_subset`` restricts the softmax to a list of labels (the demo's six-label wrapper; targets must be
  in it, and targets=None means the most probable label of the subset).
- ``output``: "probability" (log of the model's output, floored at the smallest normal float32) or "logit"
  (log_softmax of the pre-softmax scores: the same values, stable where a probability underflows).

Presets: ``imagenet`` (s = 4, lambda_1 = 2e-5, lambda_TV = 0.01: the README command), ``cifar`` (s = 1,
lambda_1 = 1e-3, lambda_TV = 0.01; the appendix sweeps lambda_TV over ``TV_GRID``), ``auto`` (imagenet for
images whose smaller side is at least 128 pixels, cifar otherwise). ``scale``, ``l1`` and ``tv`` override a
preset.
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import tensorflow as tf

from baselines.base import Baseline, check_seed
from eval.completeness import check_class_subset, evaluated_labels
from eval.progress import Progress
from eval.protocol import as_inputs, as_targets, check_batch_size
from kernels.image import total_variation
from kernels.optim import adam_step
from kernels.perturb import blend
from kernels.seeds import step_seed
from kernels.validation import check_choice, check_int, check_positive

PRESETS = {
    "imagenet": {"scale": 4, "l1": 2e-5, "tv": 0.01},
    "cifar": {"scale": 1, "l1": 1e-3, "tv": 0.01},
}
#: The TV weights of the appendix tables (Tables 2, 4, 6, 8).
TV_GRID = (0.0, 0.001, 0.01, 0.1)
#: ``preset="auto"`` uses the imagenet preset from this image side on.
AUTO_SIDE = 128
LOSSES = ("paper", "double_softmax")
SCALES = (1, 4)
#: The paper's pool and distractors per image per step.
PAPER_POOL, PAPER_DISTRACTORS = 1000, 10
#: A pool needs at least this many images.
MIN_POOL = 2
#: Optimisation steps per tf.function call (the progress bar's granularity; the masks do not depend on it).
SEGMENT = 50
_TINY = float(np.finfo(np.float32).tiny)


def not_fitted(what: str) -> RuntimeError:
    """The error of every call that needs the distractor pool before ``fit`` ran."""
    return RuntimeError(f"{what}: no distractor pool yet; call fit(x_train) first (the paper draws distractors "
                        f"from {PAPER_POOL:,} training images)")


class MaskOptimisation(Baseline):
    """Masks learned per (image, label) against distractor images (Gupta et al., NeurIPS 2022, eq. 6; module
    docstring). Images only; ``fit(x_train)`` sets the distractor pool before explaining.

    Args:
        preset: "auto" (default), "imagenet" or "cifar": the defaults of ``scale``, ``l1`` and ``tv``.
        scale: the mask's upsampling factor s (1 or 4 in the paper; any int dividing H and W).
        l1: lambda_1, the weight of ||M||_1 (>= 0).
        tv: lambda_TV, the weight of TV(M) (>= 0; the appendix sweeps 0, 0.001, 0.01, 0.1).
        steps: Adam steps (default 2000, the paper's).
        learning_rate: Adam's step size (default 0.05).
        distractors: J, distractors per pair per step, drawn with replacement (default 10).
        pool_size: images kept by ``fit`` as the distractor pool, a seeded subset (default 1000; None: all).
        loss: "paper" (eq. 6: mean over distractors of -log f, default) or "double_softmax" (the released
            code: cross-entropy of the mean probability over distractors).
        class_subset: restrict the softmax to these class ids (the released demo's label list), or None.
        seed: the pool's subset and the distractor draws.
        output: "probability" (default) or "logit": where log f is read (module docstring).
        batch_size: (image, label) pairs per chunk (default 10, the released code's), each step runs
            batch_size x distractors composites through the model.
        verbose: 0 silent; 1 a progress bar over the steps when the call is long; 2 always.
    """

    name = "masking"
    requires_fit: ClassVar[bool] = True

    def __init__(self, model, *, preset: str = "auto", scale=None, l1=None, tv=None, steps: int = 2000,
                 learning_rate: float = 0.05, distractors: int = PAPER_DISTRACTORS, pool_size=PAPER_POOL,
                 loss: str = "paper", class_subset=None, seed: int = 0, output: str = "probability",
                 batch_size: int = 10, verbose: int = 1):
        super().__init__(model, output=output, batch_size=batch_size, verbose=verbose)
        if not self.is_image or len(self.input_shape) != 3 or self.score_shape is None:
            raise ValueError(f"model: mask optimisation needs an image model (N, H, W, C) with a static shape, "
                             f"got inputs (N, {self.input_shape})")
        height, width = self.score_shape
        self.preset = check_choice("preset", preset, ("auto", *PRESETS))
        resolved = ("imagenet" if min(height, width) >= AUTO_SIDE else "cifar") if preset == "auto" else preset
        defaults = PRESETS[resolved]
        self.scale = check_int("scale", defaults["scale"] if scale is None else scale, minimum=1)
        if height % self.scale or width % self.scale:
            raise ValueError(f"scale: expected a factor that divides the image size {height}x{width}, "
                             f"got {self.scale}")
        l1, tv = defaults["l1"] if l1 is None else l1, defaults["tv"] if tv is None else tv
        check_positive("l1", l1, allow_zero=True)
        check_positive("tv", tv, allow_zero=True)
        check_positive("learning_rate", learning_rate)
        self.l1, self.tv, self.learning_rate = float(l1), float(tv), float(learning_rate)
        self.steps = check_int("steps", steps, minimum=1)
        self.distractors = check_int("distractors", distractors, minimum=1)
        self.pool_size = None if pool_size is None else check_int("pool_size", pool_size, minimum=MIN_POOL)
        self.loss = check_choice("loss", loss, LOSSES)
        self.class_subset = check_class_subset(class_subset, self.n_classes)
        self.seed = check_seed(seed)
        self.mask_shape = (height // self.scale, width // self.scale)
        self._pool = None
        self._columns = None if self.class_subset is None else tf.constant(self.class_subset, tf.int32)
        position = np.arange(self.n_classes, dtype=np.int32)  # class id -> column of log f
        if self.class_subset is not None:
            position = np.full(self.n_classes, -1, np.int32)
            position[list(self.class_subset)] = np.arange(len(self.class_subset))
        self._position = tf.constant(position)
        self.hyper.update(preset=self.preset, scale=self.scale, l1=self.l1, tv=self.tv, steps=self.steps,
                          learning_rate=self.learning_rate, distractors=self.distractors, pool_size=self.pool_size,
                          loss=self.loss, class_subset=None if self.class_subset is None else list(self.class_subset),
                          seed=self.seed)

    # ------------------------------------------------------------------------------------ fit

    def fit(self, x, y=None, *, epochs=None, batch_size=None, verbose=None):
        """Keep a seeded subset of ``pool_size`` images of ``x`` (N, H, W, C) as the distractor pool; returns self.

        ``x``: numpy, a tensor or a tf.data.Dataset of images (or (images, labels) tuples) of the model's input
        shape, at least 2 images (all of them when fewer than ``pool_size``). Nothing is trained: ``y``,
        ``epochs``, ``batch_size`` and ``verbose`` are accepted so that every explainer's fit takes the same call.
        """
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if value is not None:
                check_int(name, value, minimum=1)
        x = self._check_inputs(as_inputs("x", x))
        if len(x) < MIN_POOL:
            raise ValueError(f"x: expected at least {MIN_POOL} images for the distractor pool, got {len(x)}")
        count = len(x) if self.pool_size is None else min(self.pool_size, len(x))
        chosen = np.sort(np.random.default_rng(self.seed).choice(len(x), count, replace=False))
        self._pool = tf.constant(x[chosen])
        self._functions.clear()  # traced functions captured the previous pool
        return self

    @property
    def pool(self) -> np.ndarray | None:
        """The distractor pool (K, H, W, C) that ``fit`` kept (None before)."""
        return None if self._pool is None else self._pool.numpy()

    # --------------------------------------------------------------------------------- explain

    def explain(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """Masks (N, H, W) float32 in (0, 1), one per image for ``targets`` (None: the model's prediction,
        within ``class_subset`` if set). ``batch_size``: images per chunk (default: the constructor's)."""
        x = self._check_inputs(x)
        if self._pool is None:
            raise not_fitted("explain")
        targets = as_targets(targets, len(x), self.n_classes)
        if targets is None:
            targets = self._predict(x, batch_size)
        self._check_in_subset("targets", targets)
        return self._optimise(x, np.arange(len(x)), targets, batch_size)

    def explain_labels(self, x, labels="top2", *, batch_size=None) -> np.ndarray:
        """Masks (N, L, H, W) for several labels per image: "top1" / "top2" (the model's most probable labels,
        in order), "all" (every class, or every class of ``class_subset``), a list of class ids (the same for
        every image) or an (N, L) int array. ``batch_size``: (image, label) pairs per chunk."""
        x = self._check_inputs(x)
        if self._pool is None:
            raise not_fitted("explain_labels")
        if isinstance(labels, str):
            probabilities = np.asarray(self.model.predict(x, batch_size=check_batch_size(batch_size, 256),
                                                          verbose=0))
            label_ids = evaluated_labels(probabilities, labels, class_subset=self.class_subset)
        else:
            label_ids = evaluated_labels(np.zeros((len(x), self.n_classes)), labels, class_subset=self.class_subset)
        n, n_labels = label_ids.shape
        masks = self._optimise(x, np.repeat(np.arange(n), n_labels), label_ids.ravel(), batch_size)
        return masks.reshape((n, n_labels) + masks.shape[1:])

    def _check_in_subset(self, name: str, targets):
        if self.class_subset is not None and not np.isin(targets, self.class_subset).all():
            raise ValueError(f"{name}: expected labels of class_subset {list(self.class_subset)}, got "
                             f"{sorted(set(np.asarray(targets).tolist()) - set(self.class_subset))[:10]}")

    def _predict(self, x, batch_size) -> np.ndarray:
        predict, chunk = self._function("_predict_chunk"), check_batch_size(batch_size, 256)
        return np.concatenate([predict(tf.constant(x[i:i + chunk])).numpy() for i in range(0, len(x), chunk)])

    def _predict_chunk(self, x):
        scores = self.model(x, training=False)
        if self._columns is not None:
            return tf.gather(self._columns, tf.argmax(tf.gather(scores, self._columns, axis=1), axis=-1,
                                                      output_type=tf.int32))
        return tf.argmax(scores, axis=-1, output_type=tf.int32)

    def _optimise(self, x, pair_image, pair_label, batch_size) -> np.ndarray:
        """Masks (P, H, W) of the pairs (image index, label), ``batch_size`` pairs per chunk."""
        chunk = check_batch_size(batch_size, self.batch_size)
        n_pairs = len(pair_image)
        segment = self._function("_segment")
        masks = np.empty((n_pairs,) + tuple(self.score_shape), np.float32)
        n_chunks = math.ceil(n_pairs / chunk)
        progress = Progress(n_chunks * self.steps, self.verbose, "step")
        for c, start in enumerate(range(0, n_pairs, chunk)):
            stop = min(n_pairs, start + chunk)
            xc = tf.constant(x[pair_image[start:stop]])
            tc = tf.constant(pair_label[start:stop], tf.int32)
            state = self.initial_state(stop - start)
            for t0 in range(0, self.steps, SEGMENT):
                t1 = min(self.steps, t0 + SEGMENT)
                state = segment(xc, tc, state, tf.constant(t0), tf.constant(t1))
                progress.update(c * self.steps + t1)
            masks[start:stop] = self.masks(state[0]).numpy()
        return masks

    def _explain_chunk(self, x, targets, index):
        """The whole optimisation of a chunk in one graph (the exported SavedModel's computation)."""
        del index  # the draws are shared by every pair of a step
        if self._pool is None:
            raise not_fitted("export")
        state = self.initial_state(tf.shape(x)[0])
        weights, _, _ = self._segment(x, targets, state, tf.constant(0), tf.constant(self.steps))
        return self.masks(weights)

    # ---------------------------------------------------------------------- the optimisation

    def initial_state(self, n):
        """(W, Adam's first and second moments) of n pairs: zeros (n, H / s, W / s)."""
        zeros = tf.zeros(tf.concat([tf.reshape(n, [1]), tf.constant(self.mask_shape, tf.int32)], axis=0))
        return zeros, zeros, zeros

    def masks(self, weights):
        """M = up_s(sigmoid(W)): (P, H / s, W / s) parameters -> (P, H, W) masks."""
        masks = tf.sigmoid(weights)
        if self.scale == 1:
            return masks
        return tf.image.resize(masks[..., None], self.score_shape, method="bilinear")[..., 0]

    def composites(self, masks, x, distractors):
        """M x + (1 - M) xbar_j for masks (P, H, W), images (P, H, W, C), distractors (J, H, W, C):
        (P, J, H, W, C)."""
        return blend(x[:, None], masks[:, None, :, :, None], distractors[None])

    def log_probabilities(self, rows):
        """log f(rows) (R, C') over the evaluated classes (all of them, or ``class_subset``)."""
        if self.output == "logit":
            logits = self._forward(rows)
            return tf.nn.log_softmax(logits if self._columns is None else tf.gather(logits, self._columns, axis=1))
        probabilities = self._forward(rows)
        if self._columns is None:
            return tf.math.log(tf.maximum(probabilities, _TINY))
        kept = tf.gather(probabilities, self._columns, axis=1)
        return tf.math.log(tf.maximum(kept, _TINY)) - tf.math.log(tf.reduce_sum(kept, axis=1, keepdims=True))

    def objective(self, weights, x, targets, distractors):
        """The per-pair loss (P,) of eq. 6 (or the double softmax) for parameters (P, H / s, W / s), images
        (P, H, W, C), int targets (P,) and the step's distractors (J, H, W, C)."""
        masks = self.masks(weights)
        composite = self.composites(masks, x, distractors)
        n_pairs, n_distractors = tf.shape(composite)[0], tf.shape(composite)[1]
        log_f = self.log_probabilities(tf.reshape(composite, tf.concat([[-1], tf.shape(x)[1:]], axis=0)))
        log_f = tf.reshape(log_f, tf.stack([n_pairs, n_distractors, -1]))  # (P, J, C')
        column = tf.gather(self._position, targets)
        if self.loss == "paper":
            data = -tf.reduce_mean(tf.gather(log_f, column, axis=2, batch_dims=1), axis=1)
        else:  # cross-entropy (a softmax) of the mean probability over the distractors
            mean_probability = tf.reduce_mean(tf.exp(log_f), axis=1)
            data = -tf.gather(tf.nn.log_softmax(mean_probability), column, axis=1, batch_dims=1)
        return data + self.tv * total_variation(masks) + self.l1 * tf.reduce_sum(masks, axis=[1, 2])

    def draw(self, step):
        """The J distractors (J, H, W, C) of step ``step``: pool indices with the stateless seed [seed, step]."""
        index = tf.random.stateless_uniform([self.distractors], step_seed(self.seed, step),
                                            maxval=tf.shape(self._pool)[0], dtype=tf.int32)
        return tf.gather(self._pool, index)

    def _segment(self, x, targets, state, start, stop):
        """Adam steps start .. stop - 1 on the state (W, first, second) of a chunk of pairs."""
        x = tf.cast(x, tf.float32)
        targets = tf.cast(targets, tf.int32)

        def step(t, weights, first, second):
            distractors = self.draw(t)
            with tf.GradientTape() as tape:
                tape.watch(weights)
                loss = tf.reduce_sum(self.objective(weights, x, targets, distractors))
            grad = tape.gradient(loss, weights)
            weights, first, second = adam_step(weights, grad, first, second, t + 1, self.learning_rate)
            return t + 1, weights, first, second

        _, weights, first, second = tf.while_loop(lambda t, *_: t < stop, step, (start, *state))
        return weights, first, second
