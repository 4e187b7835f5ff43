"""Layer hooks: read, replace or re-route an intermediate layer of a Keras model without sub-models.

Several packages need the inside of a model: gradient baselines differentiate with respect to the
embedding output of a token model and Grad-CAM with respect to the last convolutional feature map;
IBA inserts its bottleneck after an intermediate layer; MEED masks the embedding output; ``output="logit"``
reads the pre-softmax scores. Building ``keras.Model(layer.output, model.output)`` sub-models for that
breaks on nested models (a backbone inside a classifier) and on subclassed models, and copies nothing
but costs a rebuild per layer. Instead, a hook temporarily replaces the ``call`` of one layer *object*
(the idea of xplique's ``watch_layer``): every way the layer is reached -- functional graph, Sequential,
nested model, subclassed ``call`` -- goes through ``layer.call``, so the hook sees it.

Hooks are meant to be entered inside the caller's tf.function while it traces: the replaced ``call``
is part of the traced graph and the layer is restored on exit, so the model is unchanged outside the
``with`` block and the traced function keeps working afterwards. In a graph, the work a hook makes
useless (the rest of the model after a captured layer, the layers before a substituted one) is pruned
by TensorFlow; eagerly it runs and is discarded.

Every hook checks that the layer was called exactly once per forward pass (a layer shared at two
places of the model would make "its output" ambiguous) -- see :class:`Recorder`.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import keras
import tensorflow as tf

from kernels.validation import check_choice

# Keras layer classes whose output is a spatial feature map (Grad-CAM's "convolutional layer").
CONV_TYPES = tuple(
    getattr(keras.layers, name)
    for name in ("Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D",
                 "DepthwiseConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
    if hasattr(keras.layers, name)
)


def check_model(name: str, model) -> keras.Model:
    """Raise TypeError unless ``model`` is a built Keras model with one input and one output tensor."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{name}: expected a keras.Model, got {type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(f"{name}: expected a built model with known inputs and outputs (a functional or "
                         f"Sequential model, or a subclassed model called once), got {model.name!r}")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{name}: expected a model with one input and one output, got {len(inputs)} inputs "
                         f"and {len(outputs)} outputs ({model.name!r})")
    return model


def all_layers(model) -> list:
    """Every layer of ``model`` in model order, nested models followed by their own layers (depth first)."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        if isinstance(layer, keras.Model) or getattr(layer, "layers", None):
            found.extend(all_layers(layer))
    return found


def find_layer(model, layer, *, name: str = "layer"):
    """The layer called ``layer`` (searched in nested models too), or ``layer`` itself if it is a Layer."""
    if isinstance(layer, keras.layers.Layer):
        if not any(candidate is layer for candidate in all_layers(model)):
            raise ValueError(f"{name}: the layer {layer.name!r} is not part of the model {model.name!r}")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"{name}: expected a layer name or a keras Layer, got {layer!r}")
    layers = {candidate.name: candidate for candidate in reversed(all_layers(model))}
    return layers[check_choice(name, layer, layers)]


def _compute_layers(model) -> list:
    return [layer for layer in all_layers(model)
            if not isinstance(layer, keras.layers.InputLayer) and not isinstance(layer, keras.Model)]


def embedding_layer(model):
    """The model's first computing layer if it is an ``Embedding`` (a token model), else None."""
    layers = _compute_layers(model)
    if layers and isinstance(layers[0], keras.layers.Embedding):
        return layers[0]
    return None


#: What a model takes as input, by modality (``modality``): the one place inputs are told apart.
MODALITIES = ("image", "text", "tabular", "sequence", "tensor")


def modality(model) -> str:
    """"text" (token ids into a first Embedding layer), "image" (N, H, W, C), "tabular" (N, d),
    "sequence" (N, T, F), or "tensor" (any other rank). Explanations have one score per pixel of an
    image (channels reduced) and one per entry of every other input (eval.protocol.score_shape)."""
    if embedding_layer(model) is not None:
        if len(model.inputs[0].shape) != 2:
            raise ValueError(f"model: expected token ids (N, L) for a model starting with an Embedding, got "
                             f"input shape {tuple(model.inputs[0].shape)}")
        return "text"
    return {3: "image", 1: "tabular", 2: "sequence"}.get(len(model.inputs[0].shape) - 1, "tensor")


def last_conv_layer(model):
    """The last convolutional layer (Conv1D/2D/3D, separable, depthwise, transposed) of ``model``, or None."""
    convs = [layer for layer in _compute_layers(model) if isinstance(layer, CONV_TYPES)]
    return convs[-1] if convs else None


def output_rank(layer):
    """Rank of the layer's (single) output tensor where the functional graph knows it, else None."""
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


class Recorder:
    """What a hook saw during one forward pass: the tensors it recorded and the number of calls."""

    def __init__(self, layer):
        self.layer = layer
        self.values: list = []
        self.calls = 0

    @property
    def value(self):
        """The one recorded tensor; ValueError if the layer was not called exactly once."""
        self.check_once()
        return self.values[-1]

    def check_once(self):
        if self.calls != 1:
            raise ValueError(
                f"layer: {self.layer.name!r} was called {self.calls} times in one forward pass; a hook needs "
                f"a layer that the model calls exactly once (not a shared or unused layer)"
            )


@contextlib.contextmanager
def intercept(layer, fn: Callable) -> Iterator[Recorder]:
    """Within the block, ``layer(...)`` computes ``fn(original_call, *args, **kwargs)``.

    Yields a :class:`Recorder` counting the calls. The layer's own ``call`` is restored on exit (hooks
    nest: an inner hook wraps the outer one and restores it).
    """
    recorder = Recorder(layer)
    had_own = "call" in layer.__dict__
    previous = layer.__dict__.get("call")
    original = layer.call

    def hooked(*args, **kwargs):
        recorder.calls += 1
        return fn(original, *args, **kwargs)

    object.__setattr__(layer, "call", hooked)
    try:
        yield recorder
    finally:
        if had_own:
            object.__setattr__(layer, "call", previous)
        else:
            object.__delattr__(layer, "call")


@contextlib.contextmanager
def capture(layer, what: str = "output") -> Iterator[Recorder]:
    """Record the layer's output (or its first input, ``what="input"``) in the yielded Recorder."""
    check_choice("what", what, ("output", "input"))

    def record(original, *args, **kwargs):
        out = original(*args, **kwargs)
        recorder.values.append(out if what == "output" else args[0])
        return out

    with intercept(layer, record) as recorder:
        yield recorder


@contextlib.contextmanager
def substitute(layer, value) -> Iterator[Recorder]:
    """The layer returns ``value`` instead of computing its output (its inputs are ignored)."""

    def replace(original, *args, **kwargs):
        return value

    with intercept(layer, replace) as recorder:
        yield recorder


def layer_output(model, layer, x, **call_kwargs):
    """The output of ``layer`` when ``model`` runs on ``x`` (inside a tf.function only that part runs)."""
    with capture(layer) as recorder:
        model(x, **call_kwargs)
    return recorder.value


def run_from(model, layer, value, x, **call_kwargs):
    """``model``'s output on ``x`` with the output of ``layer`` replaced by ``value``.

    ``x`` supplies what the rest of the model still reads from the input (e.g. the padding mask of an
    Embedding with ``mask_zero``); it must have ``value``'s batch size.
    """
    with substitute(layer, value) as recorder:
        out = model(x, **call_kwargs)
    recorder.check_once()
    return out


# ---------------------------------------------------------------------------------------------- logits

LOGIT_LAYER_NAME = "logits"


def is_softmax(fn) -> bool:
    """Whether the activation function ``fn`` is a softmax (Keras' own or any function named ``softmax``)."""
    return fn is keras.activations.softmax or getattr(fn, "__name__", "") == "softmax"


def is_softmax_layer(layer) -> bool:
    """Whether ``layer`` is a ``Softmax`` layer or an ``Activation("softmax")`` (not a Dense with a softmax)."""
    return isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and is_softmax(layer.activation))


def find_logits(model):
    """Where the pre-softmax class scores of ``model`` are: ``(layer, mode)``, or ValueError.

    In order: (1) a layer named ``"logits"`` anywhere in the model (the convention of data.models: a
    Dense "logits" followed by a Softmax "probs"): its output; (2) a final ``Softmax`` layer or
    ``Activation("softmax")``: its input; (3) a final layer with ``activation="softmax"`` (e.g. a Dense):
    its output with the activation switched to linear.
    """
    for layer in all_layers(model):
        if layer.name == LOGIT_LAYER_NAME and not isinstance(layer, keras.Model):
            return layer, "output"
    last = model.layers[-1] if model.layers else None
    while isinstance(last, keras.Model) and last.layers:
        last = last.layers[-1]
    if is_softmax_layer(last):
        return last, "input"
    if last is not None and is_softmax(getattr(last, "activation", None)):
        return last, "activation"
    raise ValueError(
        f"output: 'logit' needs the pre-softmax scores, but the model {model.name!r} has no layer named "
        f"{LOGIT_LAYER_NAME!r} and does not end with a softmax (Softmax layer, Activation('softmax') or "
        f"activation='softmax'); use output='probability'"
    )


def linear_activation(layer):
    """Context: within the block ``layer.activation`` is the identity (a Dense/Conv with a softmax, say)."""
    return _replace_activation(layer, keras.activations.linear)


def class_logits(model, x, where, **call_kwargs):
    """The pre-softmax scores of ``model`` on ``x``; ``where`` is :func:`find_logits`' answer."""
    layer, mode = where
    if mode == "activation":
        with linear_activation(layer):
            return model(x, **call_kwargs)
    with capture(layer, "output" if mode == "output" else "input") as recorder:
        model(x, **call_kwargs)
    return recorder.value


# ------------------------------------------------------------------------------------- guided backprop

def _is_relu(fn) -> bool:
    return getattr(fn, "__name__", "") == "relu"


@tf.custom_gradient
def _guided_relu(x):
    y = tf.nn.relu(x)

    def grad(dy):
        # Springenberg et al.: pass the gradient only where the input and the incoming gradient are positive.
        return dy * tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)

    return y, grad


def _guided(fn):
    """Guided version of an elementwise activation ``fn``: local derivative times the positive part of dy."""

    def guided_fn(x, *args, **kwargs):
        @tf.custom_gradient
        def inner(x):
            y = fn(x, *args, **kwargs)

            def grad(dy):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    again = fn(x, *args, **kwargs)
                return tape.gradient(again, x, output_gradients=tf.nn.relu(dy))

            return y, grad

        return inner(tf.convert_to_tensor(x))

    return guided_fn


@contextlib.contextmanager
def guided_relu(model) -> Iterator[int]:
    """Within the block, every ReLU of ``model`` back-propagates with the guided-backpropagation rule.

    Covers ``activation="relu"`` of any layer (Dense, Conv, Activation, ...) and ``ReLU`` layers (their
    own forward pass, with max_value/threshold/negative_slope, and its local derivative). Forward values
    are unchanged. Yields the number of ReLUs replaced (0: the guided gradient is the plain gradient).
    """
    with contextlib.ExitStack() as stack:
        count = 0
        for layer in _compute_layers(model):
            if isinstance(layer, keras.layers.ReLU):
                stack.enter_context(intercept(layer, lambda original, x, *a, **k: _guided(original)(x, *a, **k)))
                count += 1
            elif _is_relu(getattr(layer, "activation", None)):
                stack.enter_context(_replace_activation(layer, _guided_relu))
                count += 1
        yield count


@contextlib.contextmanager
def _replace_activation(layer, fn):
    had_own = "activation" in layer.__dict__
    previous = layer.__dict__.get("activation")
    object.__setattr__(layer, "activation", fn)
    try:
        yield
    finally:
        if had_own:
            object.__setattr__(layer, "activation", previous)
        else:
            object.__delattr__(layer, "activation")
