"""Amortised explainers trained once against a black box: L2X, VIBI and CXPlain.

MEED (Liang et al., KDD 2020, Section 4.0.1 and Appendix B.2) compares against these three; "the
structures of explainers are the same for CXP, L2X, VIBI, and Ours" and "the structures of original
models and approximators are the same for L2X, VIBI, and Ours". So every method here builds its
networks with ``baselines.networks.for_blackbox``: the MEED explainer of the input kind and an
approximator with the black box's own architecture. L2X, VIBI and CXPlain do not feed the model's
output to their explainers (MEED, Section 2: "L2X and VIBI only input features to their explainers"),
so the explainer's y input receives zeros (the same networks as MEED's "no-output" ablation).

- ``L2X`` (Chen et al., ICML 2018): E(x) -> Gumbel-softmax top-k relaxation (kernels.gumbel_topk) ->
  approximator A(x * mask), explainer and approximator trained jointly to reproduce the black box's
  soft prediction: min CE(M(x), A(x * V)), V the relaxed k-hot sample (L2X eq. 6).
- ``VIBI`` (Bang et al., AAAI 2021): L2X plus the information-bottleneck term of its eq. 5: the
  selection distribution p(z | x) = softmax(E(x)) is pulled towards a uniform prior r(z) = 1/d with
  weight beta; as in the authors' code the cross-entropy is in bits, to M's predicted class, and the
  KL term is k * KL(r || p) (PyTorch's ``KLDivLoss(log p, r)``), beta = 0.1 (their default).
- ``CXPlain`` (Schwab & Karlen, NeurIPS 2019): no approximator; the explainer's softmax over the
  features is trained with KL(omega || softmax(E(x))) against the normalised Granger-causal importance
  omega_j = max(eps_{X \\ j} - eps_X, 1e-7) / sum_i (...) (CXPlain eq. 2-4), eps the black box's
  cross-entropy w.r.t. the TRUE label (so training needs labels), a feature (or a patch x patch block
  of pixels) removed by setting it to zero. The masked losses are computed once before training, for
  all features of a chunk of samples in one tf.function (groups of masked copies, tf.while_loop).

Training (the contract's ``fit``, as MEED's): construct with the black box and the hyperparameters
(``seed`` fixes the initial weights, the Gumbel noise and the shuffling; the networks are built inside
``kernels.seeds.seeded``, so the caller's global random state is untouched), then
``explainer.fit(x_train, y_train=None, epochs=..., batch_size=...)``, which runs keras ``fit`` (progress
bar, callbacks) on a seeded tf.data pipeline and returns its History (a tf.data.Dataset is passed to
keras' ``fit`` as it is). ``y_train`` (true labels) is required by CXPlain and ignored by L2X / VIBI,
which learn from M(x). Afterwards ``explain(x)`` gives one score per feature and ``select(x, k)`` the
top-k binary masks; ``export(path)`` writes the SavedModel of the contract. Explanations do not depend
on a target class (``targets`` is accepted, checked, and ignored): the explainers see x only.
"""
from __future__ import annotations

import functools
import math
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from baselines import networks
from baselines.base import check_inputs
from eval.protocol import as_targets, check_batch_size, score_shape
from eval.training import epoch_batches, replica_mean, steps_per_epoch
from kernels import gumbel_topk, hooks, topk_mask
from kernels.export import export_serving
from kernels.seeds import seeded, step_seed
from kernels.validation import check_int, check_k, check_positive

#: CXPlain's floor of a Granger-causal importance and of the explainer's probabilities (Keras epsilon).
CXPLAIN_EPSILON = 1e-7


class AmortisedExplainer(keras.Model):
    """Shared parts: the black box, the MEED-architecture networks, ``fit``, ``explain``, ``select``, ``export``.

    Args (shared by L2X, VIBI and CXPlain):
        model: the black box (a built Keras model, one input, softmax output); never trained.
        k: features to select (required by L2X / VIBI, whose training samples k-hot masks; optional
            for CXPlain, where it is only ``select``'s default).
        learning_rate: of the Adam optimiser (1e-3, L2X's choice).
        batch_size: default of ``fit_explainer`` / ``explain`` / ``select``.
        seed: initial weights, noise and shuffling (same seed, same explainer).
        verbose: keras ``fit`` verbosity of ``fit`` (0 silent, 1 progress bar, 2 one line per epoch).
    """

    name: ClassVar[str] = ""
    #: They are trained with ``fit`` before explaining (the contract's ``requires_fit``).
    requires_fit: ClassVar[bool] = True
    #: Explanations do not depend on the target class.
    uses_targets: ClassVar[bool] = False
    #: Whether training needs the true labels (CXPlain).
    needs_labels: ClassVar[bool] = False
    #: Whether the method trains an approximator next to the explainer.
    uses_approximator: ClassVar[bool] = True
    #: Whether k is needed for training.
    needs_k: ClassVar[bool] = True

    def __init__(self, model, *, k: int | None = None, learning_rate: float = 1e-3, batch_size: int = 32,
                 seed: int = 0, verbose: int = 1):
        super().__init__(name=type(self).name)
        self.blackbox = hooks.check_model("model", model)
        output_shape = tuple(model.outputs[0].shape)
        if len(output_shape) != 2 or output_shape[-1] is None:
            raise ValueError(f"model: expected an output of shape (N, n_classes), got {output_shape}")
        self.n_classes = int(output_shape[-1])
        self.input_spec_shape = tuple(model.inputs[0].shape[1:])
        if any(d is None for d in self.input_spec_shape):
            raise ValueError(f"model: expected a fixed input shape, got {(None,) + self.input_spec_shape}")
        self.embedding = hooks.embedding_layer(model)
        self.modality = hooks.modality(model)
        self.seed = check_int("seed", seed, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.verbose = check_int("verbose", int(verbose), minimum=0)
        check_positive("learning_rate", learning_rate)
        with seeded(self.seed):
            self.explainer, self.approximator = networks.for_blackbox(model, approximator=self.uses_approximator)
        self.mask_shape = tuple(int(s) for s in self.explainer.output_shape[1:])
        self.n_features = int(np.prod(self.mask_shape))
        if k is None and self.needs_k:
            raise ValueError(f"k: {type(self).__name__} samples k-hot masks in training; expected the number of "
                             f"features to select (1 <= k <= {self.n_features}), got None")
        self.k = None if k is None else check_k("k", k, self.n_features)
        self.hyper = {"k": self.k, "learning_rate": float(learning_rate), "seed": self.seed}
        self.loss_tracker = keras.metrics.Mean(name="loss")
        # One tf.function per instance (functools.partial: TF keys its retracing warning by code object).
        self._logits_fn = tf.function(functools.partial(type(self)._logits_chunk, self), reduce_retracing=True,
                                      autograph=False)
        self.compile(optimizer=keras.optimizers.Adam(learning_rate))
        self.optimizer.build(self._trained_variables())
        self.built = True  # every part is an already-built functional model

    # ----------------------------------------------------------------------------------- training

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _trained_variables(self):
        variables = list(self.explainer.trainable_variables)
        if self.approximator is not None:
            variables += list(self.approximator.trainable_variables)
        return variables

    def _explainer_logits(self, x, training=False):
        """E(x, 0): one logit per feature; the y input gets zeros (no model-output feedback)."""
        zeros = tf.zeros([tf.shape(x)[0], self.n_classes], tf.float32)
        return self.explainer([x, zeros], training=training)

    @property
    def model(self):
        """The explained black box (the contract's ``model``; never trained)."""
        return self.blackbox

    def noise_seed(self):
        """Stateless seed of this step's Gumbel draw: [seed, optimiser step] (kernels.seeds.step_seed), a
        function of the checkpointed step, so a resumed run draws the same noise."""
        return step_seed(self.seed, self.optimizer.iterations)

    def call(self, x, training=False):
        return self._explainer_logits(x, training=training)

    def train_step(self, data):
        inputs, target = (data[0], data[1]) if isinstance(data, (tuple, list)) else (data, None)
        variables = self._trained_variables()
        with tf.GradientTape() as tape:
            loss = self._loss(inputs, target, training=True)
            scaled = replica_mean(loss)  # inside the tape: the gradient is taken of it
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        inputs, target = (data[0], data[1]) if isinstance(data, (tuple, list)) else (data, None)
        self.loss_tracker.update_state(self._loss(inputs, target, training=False))
        return {"loss": self.loss_tracker.result()}

    def _loss(self, x, target, training):  # pragma: no cover - abstract
        raise NotImplementedError

    def _training_targets(self, x, y):
        """What the dataset pairs with x: None (the loss computes M(x) itself) or CXPlain's omega."""
        return None

    def _arrays(self, x, y):
        """What training reads per sample: x, or (x, target) where the loss needs a precomputed target."""
        target = self._training_targets(x, y)
        return x if target is None else (x, target)

    def fit(self, x=None, y=None, batch_size=None, epochs: int = 1, verbose=None, callbacks=None,
            validation_data=None, **kwargs):
        """Train on inputs ``x`` (labels ``y``: needed by CXPlain) with keras ``fit``; returns its History.

        Arrays are fed as the project's seeded epoch batches (eval.training.epoch_batches: epoch e's
        order is a function of (seed, e), the same under a tf.distribute strategy, partial batches
        dropped); a tf.data.Dataset goes to keras' ``fit`` unchanged. ``validation_data`` is x_val or
        (x_val, y_val) (CXPlain needs y_val); the validation loss is the training objective with hard
        top-k masks (L2X / VIBI) or on the validation Granger targets.
        """
        verbose = self.verbose if verbose is None else verbose
        if isinstance(x, tf.data.Dataset):
            return super().fit(x, epochs=epochs, verbose=verbose, callbacks=callbacks,
                               validation_data=validation_data, **kwargs)
        x = self._check_x(x)
        y = self._check_labels(y, len(x))
        epochs = check_int("epochs", epochs, minimum=1)
        batch_size = check_batch_size(batch_size, self.batch_size)
        validation = None
        if validation_data is not None:
            x_val, y_val = (validation_data if isinstance(validation_data, (tuple, list))
                            else (validation_data, None))
            x_val = self._check_x(x_val)
            validation = tf.data.Dataset.from_tensor_slices(
                self._arrays(x_val, self._check_labels(y_val, len(x_val), "validation_data"))).batch(batch_size)
        data = epoch_batches(self._arrays(x, y), batch_size, self.seed, 0, epochs)
        return super().fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch(len(x), batch_size),
                           validation_data=validation, callbacks=callbacks, verbose=verbose,
                           shuffle=False, **kwargs)  # the batches carry their own seeded order

    def fit_explainer(self, x, y=None, **kwargs):
        """Deprecated name of ``fit`` (the README once showed it); same arguments."""
        return self.fit(x, y, **kwargs)

    # ---------------------------------------------------------------------------------- explaining

    def _check_x(self, x) -> np.ndarray:
        return check_inputs(x, self.blackbox, self.input_spec_shape, self.embedding)

    def _check_labels(self, y, n: int, name: str = "y"):
        if y is None:
            if self.needs_labels:
                raise ValueError(f"{name}: {type(self).__name__} is trained against the true labels; expected "
                                 f"{n} labels, got None")
            return None
        return as_targets(y, n, self.n_classes, name=name)

    def _logits_chunk(self, x):
        return self._explainer_logits(x, training=False)

    def explainer_logits(self, x, batch_size: int | None = None) -> np.ndarray:
        """E's logits (N, *mask shape), computed in chunks of ``batch_size``."""
        x = self._check_x(x)
        batch_size = check_batch_size(batch_size, self.batch_size)
        out = [self._logits_fn(tf.convert_to_tensor(x[i:i + batch_size])).numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out, axis=0).astype(np.float32)

    def _scores(self, logits):
        """The explanation scores from E's logits (a tensor op): the logits themselves."""
        return logits

    def explain(self, x, targets=None, *, batch_size: int | None = None) -> np.ndarray:
        """One score per feature, (N, H, W) / (N, L) / (N, d): the explainer's logits (CXPlain: the
        softmax importance distribution). ``targets`` is checked and ignored (see the module docstring)."""
        logits = self.explainer_logits(x, batch_size)
        as_targets(targets, len(logits), self.n_classes)
        scores = np.asarray(self._scores(tf.constant(logits)), dtype=np.float32)
        return scores.reshape((len(logits),) + score_shape(self.input_spec_shape))

    def select(self, x, k: int | None = None, *, batch_size: int | None = None) -> np.ndarray:
        """Binary masks of the top-k features of each sample (k defaults to the trained k)."""
        if k is None:
            if self.k is None:
                raise ValueError(f"k: expected the number of features to select (1 <= k <= {self.n_features}); "
                                 f"this {type(self).__name__} was built without a default k")
            k = self.k
        k = check_k("k", k, self.n_features)
        return topk_mask(self.explainer_logits(x, batch_size), k).numpy()

    def export(self, path, *, k: int | None = None) -> str:
        """Write a SavedModel whose ``serving_default`` takes raw x and returns ``scores`` (as ``explain``)
        and ``mask`` (the top-k binary mask, k = the argument or the default k); return the path."""
        k = self.k if k is None else check_k("k", k, self.n_features)
        if k is None:
            raise ValueError(f"k: the exported mask needs a k; pass export(path, k=...) or build this "
                             f"{type(self).__name__} with k")
        explainer, n_classes, to_scores = self.explainer, self.n_classes, self._scores

        def serve(x):
            logits = explainer([x, tf.zeros([tf.shape(x)[0], n_classes], tf.float32)], training=False)
            return {"scores": to_scores(logits), "mask": topk_mask(logits, k)}

        signature = tf.TensorSpec((None,) + self.input_spec_shape, self.blackbox.inputs[0].dtype, name="x")
        return export_serving(path, serve, signature, track=(explainer,))

    def get_config(self) -> dict:
        """The method's registry name and hyper-parameters (the contract's, for reports; not a Keras
        serialisation config: amortised explainers are saved with ``save_weights`` or ``export``)."""
        return {"method": type(self).name, **self.hyper}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.hyper.items())
        return f"{type(self).__name__}({self.blackbox.name!r}, {args})"


class L2X(AmortisedExplainer):
    """Learning to Explain (Chen et al., 2018): explainer + Gumbel top-k + approximator, jointly trained.

    Extra args: ``tau``: temperature of the Gumbel-softmax relaxation (0.5, MEED's sampling layer).
    """

    name = "l2x"

    def __init__(self, model, *, tau: float = 0.5, **kwargs):
        super().__init__(model, **kwargs)
        check_positive("tau", tau)
        self.tau = float(tau)
        self.hyper["tau"] = self.tau

    def _sample_mask(self, logits, training):
        if training:
            return gumbel_topk(logits, self.k, self.tau, seed=self.noise_seed())
        return topk_mask(logits, self.k)

    def _prediction_loss(self, y, probs):
        """L2X: cross-entropy of A(x_S) to the black box's soft prediction (its code trains on M's outputs)."""
        return tf.reduce_mean(keras.losses.categorical_crossentropy(y, probs))

    def _loss(self, x, target, training):
        y = self.blackbox(x, training=False)
        logits = self._explainer_logits(x, training=training)
        probs = self.approximator([x, self._sample_mask(logits, training)], training=training)
        return self._prediction_loss(y, probs) + self.regulariser(logits)

    def regulariser(self, logits):
        """The term added to the prediction loss for the explainer's logits (N, ...): 0 for L2X."""
        return tf.constant(0.0)


class VIBI(L2X):
    """Variational information bottleneck for interpretation (Bang et al.): L2X + beta * k * KL(r || p(z|x)).

    Extra args: ``beta``: weight of the information term (0.1, the authors' default).
    """

    name = "vibi"

    def __init__(self, model, *, beta: float = 0.1, **kwargs):
        super().__init__(model, **kwargs)
        check_positive("beta", beta, allow_zero=True)
        self.beta = float(beta)
        self.hyper["beta"] = self.beta

    def _prediction_loss(self, y, probs):
        """Cross-entropy in bits to M's predicted class (the authors' ``CrossEntropyLoss / log 2``)."""
        labels = tf.one_hot(tf.argmax(y, axis=-1), self.n_classes)
        return tf.reduce_mean(keras.losses.categorical_crossentropy(labels, probs)) / math.log(2.0)

    def regulariser(self, logits):
        """beta * k * KL(uniform || softmax(logits)), averaged over the batch (VIBI eq. 5, their code)."""
        flat = tf.reshape(logits, [tf.shape(logits)[0], -1])
        log_p = tf.nn.log_softmax(flat, axis=-1)
        d = tf.cast(tf.shape(flat)[1], tf.float32)
        kl = -tf.math.log(d) - tf.reduce_mean(log_p, axis=-1)  # sum_j (1/d) (log(1/d) - log p_j)
        return self.beta * float(self.k) * tf.reduce_mean(kl)


class CXPlain(AmortisedExplainer):
    """Causal explanations (Schwab & Karlen, 2019): the explainer's softmax learns the Granger importance.

    Extra args:
        patch: for images, features are removed in patch x patch blocks (CXPlain's downsampling
            factor) and a block's importance is shared equally by its pixels (1 = every pixel alone).
        internal_batch_size: masked copies evaluated per black-box call when computing the targets.
    """

    name = "cxplain"
    needs_labels = True
    uses_approximator = False
    needs_k = False

    def __init__(self, model, *, patch: int = 1, internal_batch_size: int = 4096, **kwargs):
        super().__init__(model, **kwargs)
        self.patch = check_int("patch", patch, minimum=1)
        self.internal_batch_size = check_int("internal_batch_size", internal_batch_size, minimum=1)
        if self.patch > 1:
            if self.modality != "image":
                raise ValueError(f"patch: blocks of features exist for images only; expected 1 for a "
                                 f"{self.modality} model, got {patch}")
            height, width = self.mask_shape
            if height % self.patch or width % self.patch:
                raise ValueError(f"patch: expected a divisor of the image size {height}x{width}, got {patch}")
        self.grid = (tuple(s // self.patch for s in self.mask_shape) if self.modality == "image"
                     else self.mask_shape)
        self.n_units = int(np.prod(self.grid))
        self.hyper["patch"] = self.patch
        self._granger_fn = tf.function(functools.partial(type(self)._granger_chunk, self), reduce_retracing=True,
                                      autograph=False)

    def _scores(self, logits):
        """CXPlain's explanation: the softmax importance distribution over all features of a sample."""
        return tf.reshape(tf.nn.softmax(tf.reshape(logits, [tf.shape(logits)[0], -1]), axis=-1), tf.shape(logits))

    def _loss(self, x, target, training):
        """KL(omega || softmax(E(x))), both clipped to [1e-7, 1] as in CXPlain's causal loss."""
        logits = tf.reshape(self._explainer_logits(x, training=training), [tf.shape(x)[0], -1])
        attention = tf.clip_by_value(tf.nn.softmax(logits, axis=-1), CXPLAIN_EPSILON, 1.0)
        omega = tf.reshape(target, tf.shape(logits))
        return tf.reduce_mean(tf.reduce_sum(omega * tf.math.log(omega / attention), axis=-1))

    def _training_targets(self, x, y):
        return self.granger_importance(x, y)

    def granger_importance(self, x, y, batch_size: int | None = None) -> np.ndarray:
        """CXPlain's normalised Granger-causal importance omega (N, *mask shape), each row summing to 1.

        omega_j = max(eps(x without unit j) - eps(x), 1e-7) / sum over units, clipped to [1e-7, 1];
        eps = cross-entropy of the black box w.r.t. the true label ``y``; a unit is one feature or one
        patch x patch block of pixels, removed by zeroing it (ids -> 0 = PAD for words). A block's value
        is split equally among its pixels.
        """
        x = self._check_x(x)
        labels = as_targets(y, len(x), self.n_classes, name="y")
        if labels is None:
            raise ValueError(f"y: CXPlain's importance is the loss increase w.r.t. the true label; expected "
                             f"{len(x)} labels, got None")
        batch_size = self.batch_size if batch_size is None else check_int("batch_size", batch_size, minimum=1)
        out = [self._granger_fn(tf.convert_to_tensor(x[i:i + batch_size]),
                                   tf.constant(labels[i:i + batch_size], tf.int32)).numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out, axis=0).reshape((len(x),) + self.mask_shape)

    def _remove_units(self, x, units):
        """Copies of each sample of x (c, ...) with one unit of ``units`` (G,) zeroed: (c * G, ...)."""
        keep = 1.0 - tf.one_hot(units, self.n_units)  # (G, n_units)
        if self.modality == "image":
            keep = tf.reshape(keep, (-1,) + self.grid)
            keep = tf.repeat(tf.repeat(keep, self.patch, axis=1), self.patch, axis=2)[..., None]
        else:
            keep = tf.reshape(keep, (-1,) + self.mask_shape)
        masked = x[:, None] * tf.cast(keep, x.dtype)[None]
        return tf.reshape(masked, tf.concat([[-1], tf.shape(x)[1:]], axis=0))

    def _granger_chunk(self, x, labels):
        c = tf.shape(x)[0]
        onehot = tf.one_hot(labels, self.n_classes)
        full = keras.losses.categorical_crossentropy(onehot, self.blackbox(x, training=False))  # (c,)
        group = tf.maximum(self.internal_batch_size // c, 1)
        n_groups = (self.n_units + group - 1) // group
        deltas = tf.TensorArray(tf.float32, size=n_groups, infer_shape=False)

        def body(g, deltas):
            units = tf.range(g * group, tf.minimum((g + 1) * group, self.n_units))
            probs = self.blackbox(self._remove_units(x, units), training=False)
            targets = tf.repeat(onehot, tf.shape(units)[0], axis=0)
            removed = tf.reshape(keras.losses.categorical_crossentropy(targets, probs), [c, -1])
            return g + 1, deltas.write(g, tf.transpose(removed - full[:, None]))  # (G, c)

        _, deltas = tf.while_loop(lambda g, _: g < n_groups, body, (tf.constant(0), deltas))
        delta = tf.maximum(tf.transpose(deltas.concat()), CXPLAIN_EPSILON)  # (c, n_units)
        omega = tf.clip_by_value(delta / tf.reduce_sum(delta, axis=1, keepdims=True), CXPLAIN_EPSILON, 1.0)
        if self.modality == "image" and self.patch > 1:
            omega = tf.reshape(omega, (-1,) + self.grid)
            omega = tf.repeat(tf.repeat(omega, self.patch, axis=1), self.patch, axis=2) / float(self.patch ** 2)
        return tf.reshape(omega, [c, -1])
