"""MEED: an amortised explainer trained with adversarial infidelity learning (Liang et al., KDD 2020).

``MEED`` is a ``keras.Model`` holding the frozen black box M, the explainer E(x, y) and the two
approximators A_s (sees the selected features) and A_u (sees the unselected ones). Its ``train_step``
does what the released code does per batch (reference/meed_original_code.md, "Training loop"):

1. an update of A_s and A_u with E frozen (eq. 7):  min L_s + w * L_u;
2. an update of E with A_s and A_u frozen (eq. 8):  min L_s - L_u, realised as cross-entropy to the
   flipped target 1 - y (CE variants, Appendix B.1) or as - w * SWD (sliced Wasserstein variants),
   plus w_e * L_e (eq. 13) when the prior is on;

on the same batch, each with fresh Gumbel noise (eq. 5), with two optimisers. The targets are M's soft
probabilities y = M(x); y is also E's second input ("model-output feedback"). The GI prior is fused
with E's logits before sampling (eq. 12). Train it with ``fit``.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from eval.protocol import as_inputs, as_targets, score_shape
from kernels import gumbel_topk, sliced_wasserstein, topk_mask, upsample_nearest
from kernels.validation import check_choice, check_k, check_positive
from meed import prior as prior_ops
from meed.presets import Legacy

MODALITIES = ("image", "text", "patches", "sequence", "tabular")


class EpochCounter(keras.callbacks.Callback):
    """Keeps ``model.epoch`` (the m of eq. 12-13, counted from 1) in step with ``fit``'s epochs."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(epoch + 1)


class MEED(keras.Model):
    """The MEED explainer with its approximators, for one black box.

    Args:
        blackbox: the model to explain (frozen; maps x to class probabilities).
        explainer: E, a Keras model [x, y] -> one logit per feature (the mask's shape).
        approximator_s, approximator_u: A_s, A_u, Keras models [x, mask] -> class probabilities.
        k: number of features to select (1 <= k <= number of mask entries).
        modality: "image" (mask (N, H, W) over pixels), "text" (mask (N, L) over words; the prior is
            taken w.r.t. the black box's "embedding" layer), "patches" (mask on a grid of
            ``patch`` x ``patch`` pixel patches), "sequence" and "tabular" (mask with x's own shape).
        adversarial: "ce" or "swd" (the form of l_u); lu_weight: w; n_projections: SWD directions.
        le_weight: weight of L_e (eq. 13). tau: Gumbel-softmax temperature.
        use_output, use_ail, use_prior: the paper's ablations (Table 2); False removes y from E's
            input (E gets zeros instead), the L_u terms, or the GI prior, respectively.
        legacy: the released code's quirks to reproduce (see ``meed.presets.Legacy``).
        seed: seeds the Gumbel / SWD noise (a stateless function of the seed and the step).
    """

    def __init__(self, blackbox, explainer, approximator_s, approximator_u, *, k: int, modality: str = "image",
                 adversarial: str = "ce", lu_weight: float = 1.0, n_projections: int = 128,
                 le_weight: float = 0.0, tau: float = 0.5, patch: int = 1, use_output: bool = True,
                 use_ail: bool = True, use_prior: bool = True, legacy: Legacy = Legacy(), seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.modality = check_choice("modality", modality, MODALITIES)
        self.adversarial = check_choice("adversarial", adversarial, ("ce", "swd"))
        self.blackbox = blackbox
        self.blackbox.trainable = False
        self.explainer = explainer
        self.approximator_s = approximator_s
        self.approximator_u = approximator_u
        self.mask_shape = tuple(int(s) for s in explainer.output_shape[1:])
        self.k = check_k("k", k, int(np.prod(self.mask_shape)))
        check_positive("tau", tau)
        check_positive("lu_weight", lu_weight, allow_zero=True)
        check_positive("le_weight", le_weight, allow_zero=True)
        self.tau, self.lu_weight, self.le_weight = float(tau), float(lu_weight), float(le_weight)
        self.n_projections, self.patch = int(n_projections), int(patch)
        self.legacy = legacy
        self.use_output, self.use_ail = bool(use_output), bool(use_ail)
        self.use_prior = bool(use_prior) and not legacy.no_prior
        self.input_spec_shape = tuple(int(s) for s in blackbox.input_shape[1:])
        self.x_dtype = blackbox.inputs[0].dtype
        self.n_classes = int(blackbox.output_shape[-1])
        self.seed = int(seed)
        self.epoch = keras.Variable(1, dtype="int64", trainable=False, name="epoch")
        self._prior_fn = self._make_prior_fn() if self.use_prior else None
        self.trackers = {name: keras.metrics.Mean(name=name) for name in
                         ("loss_approximators", "loss_explainer", "ls", "lu")}
        self.val_trackers = {name: keras.metrics.Mean(name=name) for name in ("ls", "lu", "fs_m", "fu_m")}
        self.built = True  # every part is an already-built functional model

    # ----------------------------------------------------------------------------------------------
    # Pieces of the objective
    # ----------------------------------------------------------------------------------------------

    def _make_prior_fn(self):
        """GI prior scores on the mask's grid (reference, "Prior / warm start")."""
        if self.modality == "text":
            embedding = self.blackbox.get_layer("embedding")
            tail = keras.Model(embedding.output, self.blackbox.output, name="blackbox_tail")
            return lambda x, y: prior_ops.gradient_input_scores(
                lambda e: tail(e, training=False), embedding(x), y, channel_axis=-1)
        channel_axis = None if self.modality in ("sequence", "tabular") else -1
        return lambda x, y: prior_ops.gradient_input_scores(
            lambda v: self.blackbox(v, training=False), x, y, channel_axis=channel_axis,
            patch=self.patch if self.modality == "patches" else 1)

    def _m(self):
        return tf.constant(1, tf.int64) if self.legacy.fixed_m else self.epoch.value

    def _noise_seed(self, slot: int):
        """Stateless seed of one noise draw: (seed, 4 * step + slot), step = the explainer optimiser's
        iteration count. A function of the checkpointed step, so a resumed run draws the same noise."""
        step = tf.cast(self.explainer_optimizer.iterations, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), 4 * step + slot])

    def _explainer_input_y(self, y):
        return y if self.use_output else tf.zeros_like(y)

    def _sample(self, logits, log_r, slot: int):
        """Fuse the prior (eq. 12) and draw a relaxed k-hot mask (eq. 5)."""
        fused = logits if log_r is None else prior_ops.fuse(logits, log_r, self._m())
        mask = gumbel_topk(fused, self.k, self.tau, seed=self._noise_seed(slot), legacy=self.legacy.sampling_bug)
        return fused, mask

    @staticmethod
    def _ce(target, probs):
        return tf.reduce_mean(keras.losses.categorical_crossentropy(target, probs))

    def _swd(self, probs, y, slot: int):
        return sliced_wasserstein(probs, y, self.n_projections, seed=self._noise_seed(slot))

    def mask_inputs(self, x, mask):
        """x with the unselected features removed by a (binary) mask on the explainer's grid."""
        if self.modality == "text":
            return x * tf.cast(mask, x.dtype)  # masked word -> id 0 (PAD)
        if self.modality in ("sequence", "tabular"):
            return x * mask
        if self.modality == "patches":
            mask = upsample_nearest(mask, self.patch)
        return x * mask[..., None]

    # ----------------------------------------------------------------------------------------------
    # Keras API
    # ----------------------------------------------------------------------------------------------

    def call(self, x, training=False):
        """E's logits for x, with y = M(x) computed inside (no prior: the prior affects training only)."""
        y = self.blackbox(x, training=False)
        return self.explainer([x, self._explainer_input_y(y)], training=training)

    @property
    def metrics(self):
        return list(self.trackers.values()) + list(self.val_trackers.values())

    def compile(self, approximator_optimizer=None, explainer_optimizer=None, **kwargs):
        """Two optimisers: one for A_s and A_u (eq. 7), one for E (eq. 8)."""
        super().compile(**kwargs)
        self.approximator_optimizer = approximator_optimizer or keras.optimizers.Adadelta(learning_rate=1.0)
        self.explainer_optimizer = explainer_optimizer or keras.optimizers.Adadelta(learning_rate=1.0)
        self.approximator_optimizer.build(self._approximator_variables())
        self.explainer_optimizer.build(self.explainer.trainable_variables)

    def fit(self, *args, callbacks=None, **kwargs):
        """keras.Model.fit with the epoch counter m of eq. 12-13 attached."""
        callbacks = list(callbacks or [])
        if not any(isinstance(c, EpochCounter) for c in callbacks):
            callbacks.insert(0, EpochCounter())
        if args and isinstance(args[0], tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset carries its own order (meed.training)
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def _approximator_variables(self):
        variables = list(self.approximator_s.trainable_variables)
        if self.use_ail:
            variables += list(self.approximator_u.trainable_variables)
        return variables

    def _prepare(self, data):
        """x, y = M(x), E's y input and the log-prior (computed once per batch: M is frozen)."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        y = self.blackbox(x, training=False)
        log_r = None
        if self.use_prior:
            log_r = prior_ops.log_prior(self._prior_fn(x, y), legacy_sign=self.legacy.prior_sign)
        return x, y, self._explainer_input_y(y), log_r

    @staticmethod
    def _replica_scale():
        # Gradients are summed over replicas by the optimisers: each replica scales its mean loss.
        return tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)

    def approximator_step(self, x, y, y_in, log_r):
        """(1) Update A_s and A_u with E frozen: min L_s + w * L_u (eq. 7). Returns (loss, L_s, L_u)."""
        variables = self._approximator_variables()
        with tf.GradientTape() as tape:
            _, mask = self._sample(self.explainer([x, y_in], training=True), log_r, slot=0)
            ls = self._ce(y, self.approximator_s([x, mask], training=True))
            loss, lu = ls, tf.constant(0.0)
            if self.use_ail:
                probs_u = self.approximator_u([x, 1.0 - mask], training=True)
                lu = self._ce(y, probs_u) if self.adversarial == "ce" else self._swd(probs_u, y, slot=1)
                loss = ls + self.lu_weight * lu
            scaled = loss / self._replica_scale()
        self.approximator_optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss, ls, lu

    def explainer_step(self, x, y, y_in, log_r):
        """(2) Update E with A_s and A_u frozen: min L_s - L_u (eq. 8) [+ w_e * L_e, eq. 13].

        CE variants minimise w * CE(1 - y, A_u) (the flipped target of Appendix B.1); SWD variants
        subtract w * SWD(A_u, y). Returns the loss.
        """
        variables = self.explainer.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.explainer([x, y_in], training=True)
            fused, mask = self._sample(logits, log_r, slot=2)
            loss = self._ce(y, self.approximator_s([x, mask], training=True))
            if self.use_ail:
                probs_u = self.approximator_u([x, 1.0 - mask], training=True)
                if self.adversarial == "ce":
                    loss += self.lu_weight * self._ce(1.0 - y, probs_u)
                else:
                    loss -= self.lu_weight * self._swd(probs_u, y, slot=3)
            if log_r is not None and self.le_weight > 0:
                loss += self.le_weight * prior_ops.prior_loss(fused, logits, self._m())
            scaled = loss / self._replica_scale()
        self.explainer_optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    def train_step(self, data):
        """One batch as in the released code: the approximator update, then the explainer update, each
        with fresh Gumbel noise."""
        x, y, y_in, log_r = self._prepare(data)
        loss_a, ls, lu = self.approximator_step(x, y, y_in, log_r)
        loss_e = self.explainer_step(x, y, y_in, log_r)
        for name, value in (("loss_approximators", loss_a), ("loss_explainer", loss_e), ("ls", ls), ("lu", lu)):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        """Validation with hard top-k masks: approximator losses and FS-M / FU-M on the batch."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        y = self.blackbox(x, training=False)
        mask = topk_mask(self.explainer([x, self._explainer_input_y(y)], training=False), self.k)
        self.val_trackers["ls"].update_state(self._ce(y, self.approximator_s([x, mask], training=False)))
        self.val_trackers["lu"].update_state(self._ce(y, self.approximator_u([x, 1.0 - mask], training=False)))
        label = tf.argmax(y, axis=-1)
        for name, kept in (("fs_m", mask), ("fu_m", 1.0 - mask)):
            pred = tf.argmax(self.blackbox(self.mask_inputs(x, kept), training=False), axis=-1)
            self.val_trackers[name].update_state(tf.cast(tf.equal(pred, label), tf.float32))
        return {name: t.result() for name, t in self.val_trackers.items()}

    # ----------------------------------------------------------------------------------------------
    # Explaining
    # ----------------------------------------------------------------------------------------------

    def _check_x(self, x):
        x = as_inputs("x", x)
        if tuple(x.shape[1:]) != self.input_spec_shape:
            raise ValueError(f"x: expected inputs of shape (N, {', '.join(map(str, self.input_spec_shape))}) "
                             f"to match the black box, got {x.shape}")
        return x

    @tf.function(reduce_retracing=True)
    def _logits(self, x, y):
        if y is None:
            y = self.blackbox(x, training=False)
        return self.explainer([x, self._explainer_input_y(y)], training=False)

    def _conditioning(self, targets, n: int):
        """The y that E is conditioned on: None (y = M(x), computed per batch), or rows of (N, classes).

        Integer labels become one-hot rows (why would M output that class?); rows of probabilities are
        used as given — e.g. the clean input's y for the released code's SEN, which does not recompute
        y for perturbed inputs.
        """
        if targets is None:
            return None
        t = np.asarray(targets)
        if t.ndim == 2 and t.dtype.kind == "f":
            if t.shape != (n, self.n_classes) or not np.all(np.isfinite(t)):
                raise ValueError(f"targets: expected finite rows of shape {(n, self.n_classes)}, got {t.shape}")
            return t.astype(np.float32)
        return np.eye(self.n_classes, dtype=np.float32)[as_targets(t, n, self.n_classes)]

    def explainer_logits(self, x, targets=None, batch_size: int | None = 256):
        """E's logits on its own grid, computed in batches (see ``_conditioning`` for ``targets``)."""
        x = self._check_x(x)
        batch_size = 256 if batch_size is None else batch_size
        check_positive("batch_size", batch_size)
        y = self._conditioning(targets, len(x))
        out = []
        for start in range(0, len(x), int(batch_size)):
            stop = start + int(batch_size)
            xb = tf.convert_to_tensor(x[start:stop], dtype=self.x_dtype)
            out.append(self._logits(xb, None if y is None else tf.constant(y[start:stop])).numpy())
        return np.concatenate(out, axis=0)

    def explain(self, x, targets=None, batch_size: int | None = 256) -> np.ndarray:
        """Per-feature scores: the explainer's own logits (no prior), one per pixel / word / entry.

        Follows the Explainer protocol: images give (N, H, W) (patch logits repeated over their pixels
        in the "patches" setting), words (N, L).
        """
        logits = self.explainer_logits(x, targets, batch_size)
        if self.modality == "patches":
            logits = np.repeat(np.repeat(logits, self.patch, axis=1), self.patch, axis=2)
        return logits.reshape((len(logits),) + score_shape(self.input_spec_shape))

    def select(self, x, k: int | None = None, targets=None, batch_size: int | None = 256) -> np.ndarray:
        """Binary masks of the top-k features of each sample (k defaults to the trained k)."""
        k = self.k if k is None else check_k("k", k, int(np.prod(self.mask_shape)))
        mask = topk_mask(self.explainer_logits(x, targets, batch_size), k).numpy()
        if self.modality == "patches":
            mask = np.repeat(np.repeat(mask, self.patch, axis=1), self.patch, axis=2)
        return mask

    def export(self, path) -> str:
        """Write a SavedModel whose ``serving_default`` takes raw x and returns scores and top-k mask."""
        from meed.export import export_explainer

        return export_explainer(self, path)
