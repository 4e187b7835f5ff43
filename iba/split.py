"""Split a Keras functional model at a named layer into ``head`` (input -> layer output) and ``tail``.

IBA inserts its bottleneck after one layer of a trained network (paper, Section 3.1: "R = f_l(X)"), so
the network is cut in two: ``head(x) = R`` and ``tail(R) = model(x)``. ``split_model`` builds both as
new functional ``keras.Model`` objects that **share** the user's layers (no weights are copied, none
are changed, the user's model object is not modified).

Supported:

- functional models (``keras.Model(inputs, outputs)``) and built ``keras.Sequential`` models, with one
  input and one output;
- a layer of the model itself, or a layer inside a nested model that the outer model calls once (e.g. a
  ``keras.applications`` backbone used as a layer); nesting may be several levels deep;
- a layer whose output is a rank-4 image feature map (N, H, W, C) (channels last) with static H, W, C.

The layer must be a cut point of the graph: every path from the input to the output must go through
it. A skip connection that jumps over the layer (e.g. the input of a residual block, whose shortcut
bypasses the block's convolutions) makes the tail depend on more than the layer's output; that raises
a ValueError naming the layer. In ResNets cut at a block *output* (``conv3_block4_out``), in VGGs at
any layer.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from eval.protocol import OUTPUTS
from kernels import hooks
from kernels.validation import check_choice

SUPPORTED_RANKS = "rank-4 (N, H, W, C) image feature maps (channels last, static H, W, C)"


@dataclass(frozen=True)
class Split:
    """The two halves of a model cut at ``layer_name``.

    Attributes:
        head: input -> the layer's output R, shape (N, h, w, c).
        tail: R -> the model's output (what the user's model returns).
        logits_tail: R -> the input of the model's final softmax when the model ends with a softmax
            layer (``keras.layers.Softmax`` or ``Activation("softmax")``), else None. Cross-entropy on
            these logits is exact where -log(softmax) would underflow.
        layer_name: the name the model was cut at.
        feature_shape: (h, w, c) of R.
        output_kind: "probability" if the model ends with a softmax (a layer or a layer with
            ``activation="softmax"``, searched through nested models), else "logit" (eval.protocol.OUTPUTS).
    """

    head: keras.Model
    tail: keras.Model
    logits_tail: keras.Model | None
    layer_name: str
    feature_shape: tuple
    output_kind: str


def split_model(model, layer_name: str) -> Split:
    """Cut ``model`` after the layer ``layer_name`` (searched in the model and in nested models).

    Raises ValueError for an unknown name (listing close names), a layer that is not a rank-4 feature
    map, a layer used more than once (shared), a nested model called more than once, a model with
    several inputs or outputs, or a layer that a skip connection bypasses.
    """
    graph = _functional(model, "model")
    if not isinstance(layer_name, str):
        raise TypeError(f"layer: expected a layer name (str), got {layer_name!r}")
    hooks.check_model("model", graph)
    path = _find(graph, layer_name)
    if path is None:
        names = sorted({layer.name for layer in hooks.all_layers(graph)})
        close = difflib.get_close_matches(layer_name, names, n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(repr(c) for c in close)}" if close else ""
        raise ValueError(
            f"layer: no layer named {layer_name!r} in model {model.name!r} or its nested models{hint} "
            f"({len(names)} layers in all; model.summary(expand_nested=True) lists them)"
        )
    output_kind = "probability" if _ends_with_softmax(graph) else "logit"
    head, tail = _split(graph, path, layer_name)
    logits_tail = None
    softmax_input = _final_softmax_input(graph)
    if softmax_input is not None:
        base = keras.Model(graph.inputs[0], softmax_input, name=f"{graph.name}_logits")
        _, logits_tail = _split(base, path, layer_name)
    shape = tuple(head.outputs[0].shape[1:])
    return Split(head=head, tail=tail, logits_tail=logits_tail, layer_name=layer_name,
                 feature_shape=tuple(int(s) for s in shape), output_kind=output_kind)


# --- graph helpers -------------------------------------------------------------------------------


def _functional(model, name):
    """The functional graph of ``model`` (Sequential models keep one in ``_functional``)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{name}: expected a keras.Model, got {type(model).__name__}")
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise ValueError(
                f"{name}: the Sequential model {model.name!r} is not built; give it an Input (or call "
                "it on data) first"
            )
        return graph
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            f"{name}: expected a functional (or Sequential) keras.Model, got a subclassed model "
            f"{type(model).__name__!r} whose graph cannot be cut; rebuild it with the functional API"
        )
    return model


def _nodes(graph):
    return [node for nodes in graph._nodes_by_depth.values() for node in nodes]


def _layer_nodes(graph, layer):
    return [node for node in _nodes(graph) if node.operation is layer]


def _children(graph):
    """Layers of ``graph`` in graph order (the Input layers included)."""
    return list(graph.layers)


def _nested(layer):
    if isinstance(layer, keras.Model):
        try:
            return _functional(layer, layer.name)
        except (TypeError, ValueError):
            return None
    return None


def _find(graph, name):
    """Chain of layers [nested_model, ..., layer] from ``graph`` down to the layer called ``name``."""
    for layer in _children(graph):
        if layer.name == name:
            return [layer]
    for layer in _children(graph):
        inner = _nested(layer)
        if inner is not None:
            rest = _find(inner, name)
            if rest is not None:
                return [layer] + rest
    return None


def _single_node(graph, layer, what):
    nodes = _layer_nodes(graph, layer)
    if len(nodes) != 1:
        raise ValueError(
            f"layer: {what} {layer.name!r} is called {len(nodes)} times in {graph.name!r}; a bottleneck "
            "needs a layer (and nested model) that is used exactly once"
        )
    node = nodes[0]
    if len(node.input_tensors) != 1 and what == "nested model":
        raise ValueError(f"layer: nested model {layer.name!r} has {len(node.input_tensors)} inputs; expected 1")
    if len(node.output_tensors) != 1:
        raise ValueError(
            f"layer: {what} {layer.name!r} has {len(node.output_tensors)} outputs; expected 1 feature map"
        )
    return node


def _check_feature_map(layer, tensor):
    shape = tuple(tensor.shape)
    if len(shape) != 4 or any(s is None for s in shape[1:]):
        raise ValueError(
            f"layer: the output of {layer.name!r} has shape {shape}; the bottleneck supports only "
            f"{SUPPORTED_RANKS}. Choose a convolutional layer (e.g. a block output) instead"
        )
    if not keras.backend.is_float_dtype(tensor.dtype):
        raise ValueError(f"layer: the output of {layer.name!r} has dtype {tensor.dtype}; expected a float feature map")


def _sub_model(inputs, outputs, graph, layer_name, part):
    try:
        return keras.Model(inputs, outputs, name=f"{graph.name}_{part}")
    except ValueError as err:
        if part != "tail":
            raise
        raise ValueError(
            f"layer: cannot cut {graph.name!r} at {layer_name!r}: the part after it also needs tensors "
            "computed before it (a skip connection bypasses the layer). Choose a layer every path goes "
            f"through, e.g. a block output ({err})"
        ) from None


def _split(graph, path, layer_name):
    """Head and tail of ``graph`` for the chain ``path`` (see ``_find``)."""
    layer = path[0]
    graph_in, graph_out = graph.inputs[0], graph.outputs[0]
    if len(path) == 1:
        if isinstance(layer, keras.layers.InputLayer):
            feature = layer.output
        else:
            feature = _single_node(graph, layer, "layer").output_tensors[0]
        _check_feature_map(layer, feature)
        head = _sub_model(graph_in, feature, graph, layer_name, "head")
        if feature is graph_out:  # cut at the (nested) model's output: the tail is the identity
            r = keras.Input(shape=tuple(feature.shape[1:]), dtype=feature.dtype, name=f"{graph.name}_feature")
            return head, keras.Model(r, r, name=f"{graph.name}_tail")
        tail = _sub_model(feature, graph_out, graph, layer_name, "tail")
        return head, tail
    # The layer sits inside a nested model: cut the nested model, then wrap its halves with the parts of
    # this graph before and after the nested model's call.
    node = _single_node(graph, layer, "nested model")
    inner_head, inner_tail = _split(_functional(layer, layer.name), path[1:], layer_name)
    call_in, call_out = node.input_tensors[0], node.output_tensors[0]
    x = keras.Input(shape=tuple(graph_in.shape[1:]), dtype=graph_in.dtype, name=f"{graph.name}_input")
    h = x
    if call_in is not graph_in:
        h = _sub_model(graph_in, call_in, graph, layer_name, "pre")(h)
    head = keras.Model(x, inner_head(h), name=f"{graph.name}_head")
    feature_shape = tuple(inner_head.outputs[0].shape[1:])
    r = keras.Input(shape=feature_shape, dtype=inner_head.outputs[0].dtype, name=f"{graph.name}_feature")
    t = inner_tail(r)
    if call_out is not graph_out:
        t = _sub_model(call_out, graph_out, graph, layer_name, "tail")(t)
    tail = keras.Model(r, t, name=f"{graph.name}_tail")
    return head, tail


def _final_softmax_input(graph):
    """The input tensor of the model's final Softmax layer (top level only), or None."""
    op = graph.outputs[0]._keras_history.operation
    if hooks.is_softmax_layer(op):
        if isinstance(op, keras.layers.Softmax) and op.axis not in (-1, 1):
            return None
        nodes = _layer_nodes(graph, op)
        if len(nodes) == 1 and len(nodes[0].input_tensors) == 1 and len(nodes[0].input_tensors[0].shape) == 2:
            return nodes[0].input_tensors[0]
    return None


def _ends_with_softmax(graph) -> bool:
    op = graph.outputs[0]._keras_history.operation
    if hooks.is_softmax_layer(op) or hooks.is_softmax(getattr(op, "activation", None)):
        return True
    inner = _nested(op)
    return inner is not None and _ends_with_softmax(inner)


_TINY = float(np.finfo(np.float32).tiny)


def log_probability_fn(split: Split, output: str = "auto"):
    """(function R -> log-probabilities (N, classes) in float32, the output kind used) for a Split.

    ``output``: "auto" (the split's own kind), "probability" or "logit" (how to read the model's output).
    The cross-entropy reads the logits before a final Softmax layer when there is one (exact
    log-softmax), the logits the model returns, or the log of its (clipped) probabilities.
    """
    check_choice("output", output, ("auto",) + OUTPUTS)
    kind = split.output_kind if output == "auto" else output
    if kind == "probability" and split.logits_tail is not None:
        tail, source = split.logits_tail, "logit"
    else:
        tail, source = split.tail, kind

    def log_probabilities(z):
        out = tf.cast(tail(z, training=False), tf.float32)
        if source == "logit":
            return tf.nn.log_softmax(out, axis=-1)
        return tf.math.log(tf.maximum(out, _TINY))

    return log_probabilities, kind
