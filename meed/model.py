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
with E's logits before sampling (eq. 12). Train it with ``fit`` (arrays get MEED's seeded, resumable
epoch order, eval.training.epoch_batches); it follows the explainer contract of eval.protocol.
"""
from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from eval.protocol import as_inputs, as_targets, check_batch_size, score_shape
from eval.training import epoch_batches, replica_mean, steps_per_epoch
from kernels import gumbel_topk, sliced_wasserstein, topk_mask, upsample_nearest
from kernels.perturb import blend
from kernels.seeds import step_seed
from kernels.validation import check_choice, check_int, check_k, check_positive
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
        seed: seeds the Gumbel / SWD noise (a stateless function of the seed and the step) and the order
            of ``fit``'s epochs.

    ``meed.build(preset, blackbox)`` assembles one for a paper setting (and sets ``preset``, whose epochs
    and batch size are ``fit``'s defaults).
    """

    name: ClassVar[str] = "meed"
    #: Trained with ``fit`` before explaining (the contract's ``requires_fit``); labels are not needed.
    requires_fit: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False

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
        self.preset = None
        self.ablation = None
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

    @property
    def model(self):
        """The explained black box (the contract's ``model``; frozen)."""
        return self.blackbox

    def prior_m(self):
        """The m of eq. 12-13: the epoch number (1 with the legacy ``fixed_m``)."""
        return tf.constant(1, tf.int64) if self.legacy.fixed_m else self.epoch.value

    def noise_seed(self, slot: int):
        """Stateless seed of one of the four noise draws of a step: [seed, 4 * step + slot]
        (kernels.seeds.step_seed), step = the explainer optimiser's iteration count. A function of the
        checkpointed step, so a resumed run draws the same noise."""
        return step_seed(self.seed, self.explainer_optimizer.iterations, slot, slots=4)

    def _explainer_input_y(self, y):
        return y if self.use_output else tf.zeros_like(y)

    def sample_mask(self, logits, log_r, slot: int):
        """Fuse the prior (eq. 12) and draw a relaxed k-hot mask (eq. 5)."""
        fused = logits if log_r is None else prior_ops.fuse(logits, log_r, self.prior_m())
        mask = gumbel_topk(fused, self.k, self.tau, seed=self.noise_seed(slot), legacy=self.legacy.sampling_bug)
        return fused, mask

    @staticmethod
    def _ce(target, probs):
        return tf.reduce_mean(keras.losses.categorical_crossentropy(target, probs))

    def _swd(self, probs, y, slot: int):
        return sliced_wasserstein(probs, y, self.n_projections, seed=self.noise_seed(slot))

    def mask_inputs(self, x, mask):
        """x with the unselected features set to 0 (kernels.blend) by a binary mask on the explainer's grid:
        pixels (all channels), words (id 0 = PAD), entries; the patch grid upsampled to pixels first."""
        if self.modality == "patches":
            mask = upsample_nearest(mask, self.patch)
        return blend(x, mask)

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

    def fit(self, x=None, y=None, batch_size=None, epochs=None, verbose="auto", callbacks=None,
            validation_data=None, initial_epoch: int = 0, **kwargs):
        """keras.Model.fit with the epoch counter m of eq. 12-13 attached.

        Arrays (numpy or tensors; ``y`` is ignored: MEED learns M(x)) are fed as MEED's epoch order
        (eval.training.epoch_batches with ``seed``: epoch e's order is a function of (seed, e), partial
        batches dropped), so ``initial_epoch`` resumes exactly; ``epochs`` and ``batch_size`` default to
        the preset's. A tf.data.Dataset is passed to keras as it is. ``validation_data``: x_val or
        (x_val, y_val), scored by ``test_step`` (FS-M / FU-M with hard masks).
        """
        callbacks = list(callbacks or [])
        if not any(isinstance(c, EpochCounter) for c in callbacks):
            callbacks.insert(0, EpochCounter())
        if isinstance(validation_data, (tuple, list)):
            validation_data = validation_data[0]
        epochs = (self.preset.epochs if self.preset is not None else 1) if epochs is None else epochs
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset carries its own order
            return super().fit(x, epochs=epochs, verbose=verbose, callbacks=callbacks,
                               validation_data=validation_data, initial_epoch=initial_epoch, **kwargs)
        x = self._check_x(x)
        epochs = check_int("epochs", epochs, minimum=1)
        batch_size = check_batch_size(batch_size, self.preset.batch_size if self.preset is not None else 32)
        return super().fit(epoch_batches(x, batch_size, self.seed, initial_epoch, epochs), epochs=epochs,
                           initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch(len(x), batch_size),
                           validation_data=validation_data, callbacks=callbacks, verbose=verbose, shuffle=False,
                           **kwargs)

    def _approximator_variables(self):
        variables = list(self.approximator_s.trainable_variables)
        if self.use_ail:
            variables += list(self.approximator_u.trainable_variables)
        return variables

    def prepare(self, data):
        """x, y = M(x), E's y input and the log-prior of a batch (computed once per batch: M is frozen)."""
        x = data[0] if isinstance(data, (tuple, list)) else data
        y = self.blackbox(x, training=False)
        log_r = None
        if self.use_prior:
            log_r = prior_ops.log_prior(self._prior_fn(x, y), legacy_sign=self.legacy.prior_sign)
        return x, y, self._explainer_input_y(y), log_r

    def approximator_step(self, x, y, y_in, log_r):
        """(1) Update A_s and A_u with E frozen: min L_s + w * L_u (eq. 7). Returns (loss, L_s, L_u)."""
        variables = self._approximator_variables()
        with tf.GradientTape() as tape:
            _, mask = self.sample_mask(self.explainer([x, y_in], training=True), log_r, slot=0)
            ls = self._ce(y, self.approximator_s([x, mask], training=True))
            loss, lu = ls, tf.constant(0.0)
            if self.use_ail:
                probs_u = self.approximator_u([x, 1.0 - mask], training=True)
                lu = self._ce(y, probs_u) if self.adversarial == "ce" else self._swd(probs_u, y, slot=1)
                loss = ls + self.lu_weight * lu
            scaled = replica_mean(loss)  # inside the tape: the gradient is taken of it
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
            fused, mask = self.sample_mask(logits, log_r, slot=2)
            loss = self._ce(y, self.approximator_s([x, mask], training=True))
            if self.use_ail:
                probs_u = self.approximator_u([x, 1.0 - mask], training=True)
                if self.adversarial == "ce":
                    loss += self.lu_weight * self._ce(1.0 - y, probs_u)
                else:
                    loss -= self.lu_weight * self._swd(probs_u, y, slot=3)
            if log_r is not None and self.le_weight > 0:
                loss += self.le_weight * prior_ops.prior_loss(fused, logits, self.prior_m())
            scaled = replica_mean(loss)
        self.explainer_optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    def train_step(self, data):
        """One batch as in the released code: the approximator update, then the explainer update, each
        with fresh Gumbel noise."""
        x, y, y_in, log_r = self.prepare(data)
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

    def _conditioning(self, targets, conditioning, n: int):
        """The y that E is conditioned on: None (y = M(x), computed per batch) or rows (N, classes).

        ``targets`` (class labels or one-hot rows, as every explainer takes them) become one-hot rows: why
        would M output that class? ``conditioning`` gives probability rows as they are -- e.g. the clean
        input's M(x) for the released code's SEN, which does not recompute y for perturbed inputs.
        """
        if conditioning is not None:
            if targets is not None:
                raise ValueError("conditioning: give targets (class labels) or conditioning (probability rows), "
                                 "not both")
            rows = np.asarray(conditioning)
            if rows.shape != (n, self.n_classes) or rows.dtype.kind not in "fiu" or not np.all(np.isfinite(rows)):
                raise ValueError(f"conditioning: expected finite probability rows of shape {(n, self.n_classes)}, "
                                 f"got shape {rows.shape}")
            if rows.min() < 0 or not np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
                raise ValueError("conditioning: expected rows of probabilities (>= 0, summing to 1), got rows "
                                 f"summing to [{rows.sum(axis=1).min():.4g}, {rows.sum(axis=1).max():.4g}] with "
                                 f"minimum {rows.min():.4g}")
            return rows.astype(np.float32)
        if targets is None:
            return None
        return np.eye(self.n_classes, dtype=np.float32)[as_targets(targets, n, self.n_classes)]

    def explainer_logits(self, x, targets=None, *, batch_size: int | None = None, conditioning=None):
        """E's logits on its own grid, computed in batches (``targets`` / ``conditioning``: see ``_conditioning``)."""
        x = self._check_x(x)
        batch_size = check_batch_size(batch_size, 256)
        y = self._conditioning(targets, conditioning, len(x))
        out = []
        for start in range(0, len(x), batch_size):
            stop = start + batch_size
            xb = tf.convert_to_tensor(x[start:stop], dtype=self.x_dtype)
            out.append(self._logits(xb, None if y is None else tf.constant(y[start:stop])).numpy())
        return np.concatenate(out, axis=0)

    def explain(self, x, targets=None, *, batch_size: int | None = None, conditioning=None) -> np.ndarray:
        """Per-feature scores: the explainer's own logits (no prior), one per pixel / word / entry.

        Follows the explainer contract: images give (N, H, W) (patch logits repeated over their pixels
        in the "patches" setting), words (N, L). ``targets`` None conditions E on y = M(x); class labels
        condition it on their one-hot rows; ``conditioning`` on given probability rows.
        """
        logits = self.explainer_logits(x, targets, batch_size=batch_size, conditioning=conditioning)
        if self.modality == "patches":
            logits = np.repeat(np.repeat(logits, self.patch, axis=1), self.patch, axis=2)
        return logits.reshape((len(logits),) + score_shape(self.input_spec_shape))

    def select(self, x, k: int | None = None, *, batch_size: int | None = None, targets=None,
               conditioning=None) -> np.ndarray:
        """Binary masks of the top-k features of each sample (k defaults to the trained k)."""
        k = self.k if k is None else check_k("k", k, int(np.prod(self.mask_shape)))
        mask = topk_mask(self.explainer_logits(x, targets, batch_size=batch_size, conditioning=conditioning),
                         k).numpy()
        if self.modality == "patches":
            mask = np.repeat(np.repeat(mask, self.patch, axis=1), self.patch, axis=2)
        return mask

    def get_config(self) -> dict:
        """The method's registry name and settings (the contract's, for reports; MEED is saved with
        ``save_weights`` checkpoints or ``export``, not rebuilt from this)."""
        return {"method": type(self).name, "preset": None if self.preset is None else self.preset.name, "k": self.k,
                "modality": self.modality, "adversarial": self.adversarial, "lu_weight": self.lu_weight,
                "le_weight": self.le_weight, "tau": self.tau, "seed": self.seed, "ablation": self.ablation,
                "use_output": self.use_output, "use_ail": self.use_ail, "use_prior": self.use_prior,
                "legacy": self.legacy.enabled()}

    def export(self, path, *, k: int | None = None) -> str:
        """Write a SavedModel whose ``serving_default`` takes raw x and returns scores and the top-k mask
        (k: the trained k unless given)."""
        from meed.export import export_explainer

        return export_explainer(self, path, k=self.k if k is None else check_k("k", k, int(np.prod(self.mask_shape))))
