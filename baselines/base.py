"""The explainer contract (eval.protocol) implemented once for every baseline: inputs, targets, chunks,
progress, outputs, top-k selection and SavedModel export.

A baseline subclasses :class:`Baseline` and writes one method, ``_explain_chunk(x, targets, index)``: the
scores of a whole chunk of inputs as TensorFlow ops. ``explain`` does the rest:

- inputs: numpy, tensors or a tf.data.Dataset (of x or (x, y)), checked against the model's input shape
  (eval.protocol.as_inputs: rank, dtype, NaN/Inf -> errors naming ``x``);
- targets: int labels or one-hot rows (eval.protocol.as_targets); None = the model's prediction (argmax);
- ``batch_size`` inputs per chunk, each chunk one call of the method's tf.function (traced once per
  method instance, ``reduce_retracing`` so a smaller last chunk does not retrace every time);
- the project's one progress bar (eval.progress) when ``verbose`` and the call is long;
- one score per feature: (N, H, W) images, (N, L) token sequences, (N, d) tabular rows (eval.protocol).

``select(x, k)`` is the top-k of ``explain``; ``export(path, k=...)`` writes the same computation as a
SavedModel (``serving_default(x)`` -> {"scores", "mask"}, targets = the model's prediction), loadable
without this project; ``get_config()`` names the method and its hyper-parameters.

What is differentiated ("features"): the input itself, or for token models (int ids whose first layer is
an ``Embedding``) the embedding output, reached with a layer hook (kernels.hooks) -- no sub-model. The
class scores are the model's output (``output="probability"``) or its pre-softmax scores
(``output="logit"``; kernels.hooks.find_logits says where they are looked for).

Methods that evaluate the model many times per input (IG steps, SmoothGrad noise, occlusion patches) run
them inside the same tf.function in groups of at most ``internal_batch_size`` rows (a tf.while_loop over
groups, each group one batched forward/backward pass over chunk x group rows built with tf.repeat and
broadcasting): memory stays bounded and no Python loop runs per sample, step or patch.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ClassVar

import numpy as np
import tensorflow as tf

from eval.progress import Progress
from eval.protocol import as_inputs, as_targets, check_batch_size, check_output, score_shape
from kernels import hooks
from kernels.export import export_serving
from kernels.gradients import target_gradient
from kernels.topk import topk_mask
from kernels.validation import check_int, check_k


class Baseline:
    """Base class of the baselines: ``Method(model, **hyper).explain(x, targets=None, batch_size=None)``.

    Args (shared by every method):
        model: a built Keras model with one input and one output (class probabilities).
        output: "probability" (the model's output, default) or "logit" (pre-softmax scores).
        batch_size: inputs per chunk when ``explain`` gets none (default 32).
        verbose: 0 silent; 1 a progress bar when the call is estimated to take more than ~2 s; 2 always.
    """

    name: ClassVar[str] = ""
    #: Whether the scores depend on the target class (controls do not, and skip the prediction).
    uses_targets: ClassVar[bool] = True
    #: Whether the method has an ``output`` option (controls have not).
    uses_output: ClassVar[bool] = True
    #: Baselines explain right away: nothing to fit (the contract's ``requires_fit``).
    requires_fit: ClassVar[bool] = False

    def __init__(self, model, *, output: str = "probability", batch_size: int = 32, verbose: int = 1):
        self.model = hooks.check_model("model", model)
        self.output = check_output(output)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.verbose = check_int("verbose", int(verbose) if isinstance(verbose, bool) else verbose, minimum=0)
        self.input_shape = tuple(model.inputs[0].shape[1:])
        output_shape = tuple(model.outputs[0].shape)
        if len(output_shape) != 2 or output_shape[-1] is None:
            raise ValueError(f"model: expected an output of shape (N, n_classes), got {output_shape}")
        self.n_classes = int(output_shape[-1])
        self.modality = hooks.modality(model)
        self.embedding = hooks.embedding_layer(model)
        self.is_image = self.modality == "image"
        self.score_shape = score_shape(self.input_shape) if all(d is not None for d in self.input_shape) else None
        self.logits = hooks.find_logits(model) if self.output == "logit" else None
        self.hyper: dict = {"output": self.output} if self.uses_output else {}
        self._functions: dict = {}

    # ------------------------------------------------------------------------------------ public API

    def explain(self, x, targets=None, *, batch_size=None) -> np.ndarray:
        """Scores of every feature of ``x`` for ``targets`` (None: the model's predictions), float32 numpy.

        Shapes: (N, H, W) for images (N, H, W, C), (N, L) for token ids (N, L), (N, d) for rows (N, d)
        (other inputs: x's shape). ``batch_size``: inputs per call (default: the constructor's).
        """
        return self._chunked("_explain_chunk", x, targets, batch_size)

    def _chunked(self, method: str, x, targets, batch_size) -> np.ndarray:
        """``explain``'s loop for any chunk method ``method(x, targets, index)`` of the class (by name).

        Checks x and targets, predicts the targets when none are given, runs the method's tf.function
        (one per method name and instance) chunk by chunk with the progress bar; numpy out.
        """
        x = self._check_inputs(x)
        n = len(x)
        chunk = check_batch_size(batch_size, self.batch_size)
        if self.max_chunk is not None:  # a method whose per-input state is large (INFD's d x d Gram)
            chunk = min(chunk, self.max_chunk)
        targets = as_targets(targets, n, self.n_classes)
        run, predict = self._function(method), self._function("_predict_chunk")
        scores = None
        progress = Progress(n, self.verbose)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            xc = tf.convert_to_tensor(x[start:stop])
            if targets is not None:
                tc = tf.constant(targets[start:stop], tf.int32)
            elif self.uses_targets:
                tc = predict(xc)
            else:
                tc = tf.zeros([stop - start], tf.int32)
            out = run(xc, tc, tf.range(start, stop, dtype=tf.int64)).numpy()
            if scores is None:
                scores = np.empty((n,) + out.shape[1:], np.float32)
            scores[start:stop] = out
            progress.update(stop)
        return scores

    def _function(self, method: str):
        """The instance's tf.function of the class method ``method`` (traced once, ``reduce_retracing``).

        functools.partial: TF's retracing warning keys functions by their code object, so bound methods of
        many instances of one class would look like one function retracing.
        """
        if method not in self._functions:
            self._functions[method] = tf.function(functools.partial(getattr(type(self), method), self),
                                                  reduce_retracing=True)
        return self._functions[method]

    #: The most inputs per chunk whatever ``batch_size`` asks (None: no limit); scores do not depend on it.
    max_chunk: int | None = None

    def select(self, x, k: int, *, batch_size=None, targets=None) -> np.ndarray:
        """Binary masks (float32 {0, 1}) of the ``k`` highest scores of each input (ties: lower index first)."""
        scores = self.explain(x, targets, batch_size=batch_size)
        return topk_mask(scores, check_k("k", k, int(np.prod(scores.shape[1:])))).numpy()

    def export(self, path, *, k: int) -> str:
        """Write a SavedModel at ``path`` whose ``serving_default(x)`` returns ``{"scores", "mask"}``: the
        scores of ``explain`` for the model's predicted class, and their top-``k`` mask; return the path.

        The serving function runs the method's own batched computation on the whole batch it gets.
        """
        if self.score_shape is None:
            raise ValueError(f"model: export needs a static input shape, got (N, {self.input_shape})")
        k = check_k("k", k, int(np.prod(self.score_shape)))
        method = self

        def serve(x):
            x = tf.cast(x, tf.int32) if method.embedding is not None else tf.cast(x, tf.float32)
            targets = method._predict_chunk(x) if method.uses_targets else tf.zeros([tf.shape(x)[0]], tf.int32)
            scores = method._explain_chunk(x, targets, tf.range(tf.shape(x)[0], dtype=tf.int64))
            scores = tf.reshape(scores, (-1,) + tuple(method.score_shape))  # a static score shape for the mask
            return {"scores": scores, "mask": topk_mask(scores, k)}

        dtype = tf.int32 if self.embedding is not None else tf.float32
        return export_serving(path, serve, tf.TensorSpec((None,) + self.input_shape, dtype, name="x"),
                              track=(self.model,))

    def get_config(self) -> dict:
        """The method's registry name and hyper-parameters (for reports)."""
        return {"method": self.name, **self.hyper}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({self.model.name!r}{', ' if args else ''}{args})"

    # ------------------------------------------------------------------------------ for subclasses

    def _explain_chunk(self, x, targets, index):  # pragma: no cover - abstract
        """Scores (c, *score_shape) of a chunk x (c, ...) for int targets (c,); index = global sample ids."""
        raise NotImplementedError

    def _predict_chunk(self, x):
        return tf.cast(tf.argmax(self.model(x, training=False), axis=-1), tf.int32)

    def _onehot(self, targets):
        return tf.one_hot(targets, self.n_classes, dtype=tf.float32)

    def _forward(self, x):
        """Class scores (probabilities or logits, per ``output``) of the model on inputs x."""
        if self.logits is None:
            return self.model(x, training=False)
        return hooks.class_logits(self.model, x, self.logits, training=False)

    def _features(self, x):
        """What gradients are taken with respect to: x, or the embedding output for token models."""
        if self.embedding is None:
            return tf.cast(x, tf.float32)
        return hooks.layer_output(self.model, self.embedding, x, training=False)

    def _class_scores(self, features, x, *, guided: bool = False):
        """Class scores with ``features`` fed in (token models: as the embedding output; x gives the ids)."""
        with contextlib.ExitStack() as stack:
            if guided:
                stack.enter_context(hooks.guided_relu(self.model))
            if self.embedding is None:
                return self._forward(features)
            recorder = stack.enter_context(hooks.substitute(self.embedding, features))
            out = self._forward(x)
            recorder.check_once()
            return out

    def _gradients(self, features, x, onehot, *, guided: bool = False):
        """d (target class score) / d features for every row (the shared kernels.gradients op)."""
        grads, _ = target_gradient(lambda f: self._class_scores(f, x, guided=guided), features, onehot)
        return grads

    @property
    def _has_feature_axis(self) -> bool:
        """Whether the last axis of the features is reduced (image channels, embedding dimensions)."""
        return self.is_image or self.embedding is not None

    def _reduce(self, values, how: str):
        """One score per feature: reduce the channel / embedding axis ('sum_abs', 'max_abs' or 'sum')."""
        if how == "sum_abs":
            values = tf.abs(values)
        elif how == "max_abs":
            values = tf.abs(values)
            return tf.reduce_max(values, axis=-1) if self._has_feature_axis else values
        return tf.reduce_sum(values, axis=-1) if self._has_feature_axis else values

    def _grouped(self, n: int, chunk, body, state, max_rows: int):
        """Run ``state = body(j, valid, state)`` over the indices j of range(n) in groups of G.

        G = ceil(n / n_groups) with n_groups = ceil(n * chunk / max_rows) (clipped to [1, n]): a group is
        evaluated as chunk x G rows. The last group holds only the remaining indices (fewer rows rather
        than padded ones: 50 IG steps in groups of 8 evaluate 50 points, not 56), so ``valid`` (j < n) is
        all true; bodies may still use it as a mask.
        """
        chunk = tf.cast(chunk, tf.int32)
        n_groups = tf.clip_by_value((n * chunk + max_rows - 1) // max_rows, 1, n)
        size = (n + n_groups - 1) // n_groups
        n_groups = (n + size - 1) // size  # no empty trailing group

        def loop(g, state):
            j = g * size + tf.range(tf.minimum(size, n - g * size))
            return g + 1, body(j, j < n, state)

        _, state = tf.while_loop(lambda g, _: g < n_groups, loop, (tf.constant(0), state))
        return state

    # -------------------------------------------------------------------------------------- inputs

    def _check_inputs(self, x) -> np.ndarray:
        return check_inputs(x, self.model, self.input_shape, self.embedding)


def check_seed(seed) -> int:
    """A method's ``seed``: an int >= 0 (the same seed gives the same scores)."""
    return check_int("seed", seed, minimum=0)


def check_inputs(x, model, input_shape, embedding) -> np.ndarray:
    """``x`` as numpy inputs of ``model`` (float32, or int32 token ids checked against the Embedding).

    Shared by every explainer of this package: rank and shape against ``input_shape``, no empty batch,
    and for token models integer ids inside the embedding's vocabulary.
    """
    x = as_inputs("x", x)
    expected = tuple(input_shape)
    if x.ndim - 1 != len(expected) or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        want = "(N, " + ", ".join("?" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"x: expected inputs of shape {want} for the model {model.name!r}, got {x.shape}")
    if len(x) == 0:
        raise ValueError("x: expected at least one input, got an empty batch")
    if embedding is None:
        return x.astype(np.float32, copy=False)
    if x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise TypeError("x: expected integer token ids for a model starting with an Embedding, "
                        "got non-integer values")
    vocab = int(embedding.input_dim)
    if x.min() < 0 or x.max() >= vocab:
        raise ValueError(f"x: expected token ids in [0, {vocab - 1}] (the Embedding's input_dim), "
                         f"got values in [{x.min()}, {x.max()}]")
    return x.astype(np.int32)


def row_seeds(seed: int, index, n: int, j):
    """Stateless seeds (rows, 2) for sample index i (c,) and draw j (G,): [seed, i * n + j].

    The draws of a sample depend on its position in the whole call and on the draw number only, not on
    the chunk or group sizes: the same scores for any batch_size / internal_batch_size.
    """
    counters = tf.reshape(index[:, None] * n + tf.cast(j, tf.int64)[None, :], [-1])
    return tf.stack([tf.fill(tf.shape(counters), tf.constant(seed, tf.int64)), counters], axis=1)


def stateless_rows(seeds, shape, kind: str = "normal"):
    """One stateless draw of ``shape`` per row seed: (rows, *shape)."""
    draw = tf.random.stateless_normal if kind == "normal" else tf.random.stateless_uniform
    return tf.map_fn(lambda s: draw(shape, seed=s), seeds, fn_output_signature=tf.float32)
