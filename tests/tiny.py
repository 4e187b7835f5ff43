"""Tiny deterministic models and data shared by the tests (one definition each, used everywhere).

Every builder fixes its weights through explicit initializer seeds, explicit weights or
``kernels.seeds.seeded``, so a test gets the same model whatever ran before it, and no builder changes the
caller's global random state (but ``tabular_mlp(seed=None)``, which builds from it by design).
Classifiers end with a Dense "logits" and a Softmax "probs", like the project's black boxes
(data.models), so ``output="logit"`` finds the logits. A docstring names the known answers a builder's
exact architecture or initialisation serves; where it names none, any weights do (the tests compute
their expected values from the model itself).
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from kernels.seeds import seeded

# --------------------------------------------------------------------------------------------------- data


def images(n: int, shape=(8, 8, 1), seed: int = 0) -> np.ndarray:
    """n arrays of ``shape`` with values uniform in [0, 1) (float32): images, or rows with ``shape=(d,)``."""
    return np.random.default_rng(seed).uniform(size=(n,) + tuple(shape)).astype(np.float32)


def gaussian(n: int, shape, seed: int = 0) -> np.ndarray:
    """n arrays of ``shape`` with independent standard-normal values (float32)."""
    return np.random.default_rng(seed).normal(size=(n,) + tuple(shape)).astype(np.float32)


def token_ids(n: int, length: int = 10, vocab: int = 20, seed: int = 0) -> np.ndarray:
    """n sequences of token ids in [1, vocab) (int32; 0 is PAD)."""
    return np.random.default_rng(seed).integers(1, vocab, size=(n, length)).astype(np.int32)


def localisation_set(n: int, rng: np.random.Generator):
    """16x16 noise with a 4x4 object at a random place: a filled square (class 0) or an X (class 1).

    Returns (x (n, 16, 16, 1), labels (n,), object boxes (n, 16, 16) bool), drawn from ``rng``.
    """
    x = rng.uniform(0, 0.3, size=(n, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    boxes = np.zeros((n, 16, 16), bool)
    shapes = (np.ones((4, 4)), np.clip(np.eye(4) + np.eye(4)[::-1], 0, 1))
    for i in range(n):
        r, c = rng.integers(0, 12, 2)
        x[i, r:r + 4, c:c + 4, 0] += shapes[y[i]]
        boxes[i, r:r + 4, c:c + 4] = True
    return x, y, boxes


def dataset(name: str, x, y, n_train: int, n_val: int, *, class_names=("0", "1"), source: str = "synthetic",
            **per_sample):
    """A data.dataset.Dataset of the arrays ``x``, ``y`` split in order: the first ``n_train`` samples train,
    the next ``n_val`` validate, the rest test; ``feature_shape`` is x's per-sample shape. ``per_sample``
    arrays (``ground_truth=relevant``, ``boxes=boxes``) are split the same way into {split: array} dicts.
    """
    from data.dataset import Dataset

    cut = n_train + n_val

    def split(a):
        return {"train": a[:n_train], "val": a[n_train:cut], "test": a[cut:]}

    return Dataset(name=name, x_train=x[:n_train], y_train=y[:n_train], x_val=x[n_train:cut], y_val=y[n_train:cut],
                   x_test=x[cut:], y_test=y[cut:], feature_shape=tuple(x.shape[1:]), class_names=list(class_names),
                   source=source, **{key: split(value) for key, value in per_sample.items()})


# ------------------------------------------------------------------------------------- linear models


def linear_softmax(shape=(8, 8, 1), n_classes: int = 2, seed: int = 0, name: str = "blackbox",
                   stddev: float = 0.3, bias: bool = False, transform: Callable | None = None,
                   softmax: bool = True) -> keras.Model:
    """softmax(W flatten(t(x)) + b): no dropout, so every forward pass is deterministic (a known-answer model).

    W ~ N(0, stddev^2) and b ~ N(0, 0.1^2) (zeros without ``bias``), seeded by ``seed``; ``transform`` t
    is an elementwise function (a Lambda layer "g"), the identity when None: the logits are then linear
    in x, which the exact-value tests of gradients, IG, occlusion, LIME, INFD and MEED's GI prior read
    off the kernel (``kernel_of``). ``softmax=False``: the output is the linear layer itself, named
    "scores" -- a model without a softmax or a "logits" layer, whose pre-softmax scores cannot be found.
    """
    x = inputs = keras.Input(tuple(shape), name="x")
    if transform is not None:
        x = layers.Lambda(transform, name="g")(x)
    h = layers.Flatten(name="flatten")(x)
    dense = layers.Dense(n_classes, name="logits" if softmax else "scores",
                         kernel_initializer=keras.initializers.RandomNormal(stddev=stddev, seed=seed),
                         bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1) if bias
                         else "zeros")
    h = dense(h)
    return keras.Model(inputs, layers.Softmax(name="probs")(h) if softmax else h, name=name)


def kernel_of(model: keras.Model, layer: str = "logits"):
    """(kernel, bias) of the Dense ``layer`` of a flatten-then-dense model, the kernel reshaped to the
    model's input shape + (n_classes,): kernel[..., c] is class c's weight of every input entry."""
    kernel, bias = model.get_layer(layer).get_weights()
    return kernel.reshape(tuple(model.input_shape[1:]) + (kernel.shape[-1],)), bias


def fixed_dense(input_shape, kernel, bias=None, *, crop=None, softmax: bool = True,
                name: str = "fixed_dense") -> keras.Model:
    """softmax(flatten(x [cropped]) @ kernel + bias) with the given weights (no bias when None).

    ``crop`` (as keras' Cropping2D) makes a model that reads only part of an image; ``softmax=False``
    returns the linear scores themselves (layer "scores"). The weights are the test's known answer.
    """
    kernel = np.asarray(kernel, np.float32)
    x = inputs = keras.Input(tuple(input_shape), name="x")
    if crop is not None:
        x = layers.Cropping2D(crop, name="crop")(x)
    x = layers.Flatten(name="flatten")(x)
    dense = layers.Dense(kernel.shape[-1], use_bias=bias is not None, name="logits" if softmax else "scores",
                         kernel_initializer="zeros")  # no draw from the global generator: set below
    x = dense(x)
    dense.set_weights([kernel] + ([] if bias is None else [np.asarray(bias, np.float32)]))
    return keras.Model(inputs, layers.Softmax(name="probs")(x) if softmax else x, name=name)


def corner_model(size: int, region: int, weights, bias) -> keras.Model:
    """A model of (size, size, 1) images that reads only the top-left region x region pixels:
    logits = (sum of those pixels) * weights + bias (``fixed_dense`` with a crop).

    Known answers: (4, 2, [1, 0], [0, 1]) is class 0 iff that 2x2 sum exceeds 1 (FS-M / FU-M);
    (16, 4, [-s, s], [0, 0]) has class 1's logit minus class 0's = 2 s (sum of the 4x4 corner), the
    only region RISE, LIME and meaningful perturbation can find.
    """
    cut = size - region
    return fixed_dense((size, size, 1), [list(weights)] * (region * region), bias, crop=((0, cut), (0, cut)),
                       name="corner")


# ------------------------------------------------------------------------------------- small networks


def tabular_mlp(d: int = 6, n_classes: int = 2, seed: int | None = 2, name: str = "tiny_mlp", *,
                hidden: int = 8, activation: str = "relu", relu_layer: bool = False) -> keras.Model:
    """One hidden Dense "hidden" (``activation``; with ``relu_layer`` a linear Dense and a separate ReLU
    layer "relu", the two ways guided backpropagation must find a ReLU) and a Dense "logits" on rows (N, d).

    ``seed`` None builds with the caller's random state (an approximator factory that a metric seeds
    itself, as eval.fidelity does).
    """
    with seeded(seed) if seed is not None else contextlib.nullcontext():
        x = keras.Input((d,), name="x")
        if relu_layer:
            h = layers.ReLU(name="relu")(layers.Dense(hidden, name="hidden")(x))
        else:
            h = layers.Dense(hidden, activation=activation, name="hidden")(x)
        h = layers.Dense(n_classes, name="logits")(h)
        return keras.Model(x, layers.Softmax(name="probs")(h), name=name)


def image_cnn(shape=(8, 8, 3), n_classes: int = 3, seed: int = 0, name: str = "tiny_cnn", *,
              hidden: int | None = None) -> keras.Model:
    """A convolution "conv", a max-pool "pool", (a Dense "hidden" with ``hidden`` units) and a dense layer:
    the registry-wide tests' image black box; with ``hidden`` the cascading-randomisation model, whose
    layers with weights are, top first, logits, hidden, conv."""
    with seeded(seed):
        x = inputs = keras.Input(tuple(shape), name="x")
        x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
        x = layers.MaxPooling2D(2, name="pool")(x)
        x = layers.Flatten(name="flatten")(x)
        if hidden is not None:
            x = layers.Dense(hidden, activation="relu", name="hidden")(x)
        x = layers.Dense(n_classes, name="logits")(x)
        return keras.Model(inputs, layers.Softmax(name="probs")(x), name=name)


def gap_cnn(shape=(6, 6, 2), n_classes: int = 3, strides: int = 1, seed: int = 5,
            name: str = "gap_cnn") -> keras.Model:
    """A ReLU convolution "conv", global average pooling "gap" and a Dense "logits".

    Known answer: d logit_c / d A_k(ij) = w[k, c] / (h w) at every position of the conv's map A, so
    Grad-CAM's alpha_k is w[k, c] / (h w) (``strides`` 2 makes the map coarser than the input).
    """
    with seeded(seed):
        x = inputs = keras.Input(tuple(shape), name="x")
        x = layers.Conv2D(4, 3, strides=strides, padding="same", activation="relu", name="conv")(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        x = layers.Dense(n_classes, name="logits")(x)
        return keras.Model(inputs, layers.Softmax(name="probs")(x), name=name)


#: The per-sample shape of ``bottleneck_cnn``'s images.
BOTTLENECK_SHAPE = (16, 16, 1)


def bottleneck_cnn(shape=BOTTLENECK_SHAPE, n_classes: int = 3, seed: int = 0, name: str = "tiny_cnn") -> keras.Model:
    """Two convolutions around a max-pool (pool's map is (8, 8, 8), post-ReLU, with inactive elements;
    conv2's is (8, 8, 8), pre-activation) and global pooling: the IBA tests' black box."""
    with seeded(seed):
        x = keras.Input(tuple(shape), name="x")
        h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
        h = layers.MaxPooling2D(2, name="pool")(h)
        h = layers.Conv2D(8, 3, padding="same", name="conv2")(h)
        h = layers.Activation("relu", name="relu2")(h)
        h = layers.GlobalAveragePooling2D(name="gap")(h)
        h = layers.Dense(n_classes, name="logits")(h)
        return keras.Model(x, layers.Softmax(name="probs")(h), name=name)


def nested_cnn(seed: int = 0) -> keras.Model:
    """An outer functional model "outer" of (16, 16, 3) images calling, once, a functional "backbone" with
    a residual block (conv_a, conv_b + shortcut -> add -> block_out) and a strided ReLU conv "conv_c"
    ((8, 8, 6), the backbone's output, its last convolution), then "gap", "logits" and "probs".

    Known answers: ``conv_b`` is bypassed by the skip connection (cannot be split at); ``gap``'s output
    is rank 2 (no feature map).
    """
    with seeded(seed):
        inner_in = keras.Input((16, 16, 3), name="backbone_in")
        h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inner_in)
        h = layers.Conv2D(4, 3, padding="same", name="conv_b")(h)
        h = layers.Add(name="add")([h, layers.Conv2D(4, 1, name="shortcut")(inner_in)])
        h = layers.Activation("relu", name="block_out")(h)
        h = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv_c")(h)
        backbone = keras.Model(inner_in, h, name="backbone")
        x = keras.Input((16, 16, 3), name="image")
        y = layers.Rescaling(2.0, offset=-1.0, name="preprocess")(x)
        y = backbone(y)
        y = layers.GlobalAveragePooling2D(name="gap")(y)
        y = layers.Dense(3, name="logits")(y)
        return keras.Model(x, layers.Softmax(name="probs")(y), name="outer")


def text_cnn(length: int = 10, vocab: int = 20, n_classes: int = 2, seed: int = 1,
             name: str = "tiny_text") -> keras.Model:
    """An embedding, a Conv1D, global max-pooling and a dense layer: the token-model black box."""
    with seeded(seed):
        ids = keras.Input(shape=(length,), dtype="int32", name="x")
        x = layers.Embedding(vocab, 4, name="embedding")(ids)
        x = layers.Conv1D(5, 3, activation="relu", name="conv")(x)
        x = layers.GlobalMaxPooling1D(name="pool")(x)
        x = layers.Dense(n_classes, name="logits")(x)
        return keras.Model(ids, layers.Softmax(name="probs")(x), name=name)


def trained_like_cnn(seed: int = 3) -> keras.Model:
    """A (6, 6, 1) CNN with a convolution "conv", batch normalisation "bn", dropout and a softmax Dense
    "dense", every weight (moving statistics included) set to N(0.5, 1)^2 values away from its initial
    value, as after training.

    Known answers (model randomisation): re-drawing from the layers' own initializers gives dense's bias
    zeros, bn's gamma and moving variance ones and a Glorot-uniform dense kernel.
    """
    with seeded(seed):  # the weights are set below; the seed only fixes the dropout layer's generator
        x = inputs = keras.Input((6, 6, 1))
        x = layers.Conv2D(3, 3, name="conv")(x)
        x = layers.BatchNormalization(name="bn")(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.1)(x)
        model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="dense")(x))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.5, 1.0, w.shape).astype(np.float32) ** 2 for w in model.get_weights()])
    return model


class ObjectTask(NamedTuple):
    """``object_task``'s trained model, its training images, and ``test_set(n)``: n new images."""

    model: keras.Model
    x_train: np.ndarray
    test_set: Callable


def object_task(seed: int = 0, n_train: int = 1500) -> ObjectTask:
    """A small CNN trained (3 epochs) on ``localisation_set``: the object alone decides the class.

    The layer "features" (16, 16, 16) is where the IBA tests put the bottleneck. Known answers: the test
    accuracy is above 0.9, and the bits (and the information the model needs) concentrate on the 4x4
    object. ``test_set(n)`` draws n images from a copy of the generator that drew the training set
    (the same n images at every call).
    """
    rng = np.random.default_rng(seed)
    x, y, _ = localisation_set(n_train, rng)
    after_training_set = copy.deepcopy(rng)
    with seeded(0):
        inputs = keras.Input((16, 16, 1))
        h = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
        h = layers.Conv2D(16, 3, padding="same", activation="relu", name="features")(h)
        h = layers.Conv2D(32, 3, padding="same", activation="relu")(layers.MaxPooling2D(2)(h))
        outputs = layers.Softmax()(layers.Dense(2)(layers.GlobalMaxPooling2D()(h)))
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return ObjectTask(model, x, lambda n: localisation_set(n, copy.deepcopy(after_training_set)))


# ------------------------------------------------------------------------------------------------ MEED

MEED_SHAPE = (8, 8, 1)


def make_meed(**kwargs):
    """A compiled MEED on (8, 8, 1) images from public pieces: the black box ``linear_softmax(seed=1)``, two
    masked approximators on linear-softmax trunks (seeds 2, 3), ``baselines.networks.image_explainer``,
    k=6, the "ce" adversarial term with lu_weight 0.5, seed 3, SGD(0.1) for both halves; ``kwargs``
    override MEED's options. The same weights at every call: the losses' hand-computed values, the
    resume and export tests compare models built by two calls.
    """
    from baselines import networks
    from meed import MEED

    options = dict(k=6, modality="image", adversarial="ce", lu_weight=0.5, seed=3)
    options.update(kwargs)
    with seeded(0):
        blackbox = linear_softmax(MEED_SHAPE, seed=1)
        approximators = [networks.masked_approximator(linear_softmax(MEED_SHAPE, seed=i + 2, name=f"trunk_{n}"),
                                                      MEED_SHAPE[:2], name=n)
                         for i, n in enumerate(("approximator_s", "approximator_u"))]
        model = MEED(blackbox, networks.image_explainer(MEED_SHAPE), *approximators, **options)
        model.compile(approximator_optimizer=keras.optimizers.SGD(0.1),
                      explainer_optimizer=keras.optimizers.SGD(0.1))
    return model


def meed_batch(n: int = 16, seed: int = 0) -> tf.Tensor:
    """n images for ``make_meed``'s model: ``images(n, (8, 8, 1), seed)`` as a tensor."""
    return tf.constant(images(n, MEED_SHAPE, seed))

