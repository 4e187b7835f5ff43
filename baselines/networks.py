"""Explainer and approximator architectures shared by the amortised explainers (MEED, L2X, VIBI, CXPlain).

MEED's Appendix B.2: "The structures of explainers are the same for CXP, L2X, VIBI, and Ours. The
structures of original models and approximators are the same for L2X, VIBI, and Ours." The builders
live here, below both ``baselines`` and ``meed`` in the dependency order, so that every amortised
method gets exactly the same capacity. Architectures follow the released MEED code
(reference/meed_original_code.md, "Architectures") and the paper's Appendix B (Tables 6-7):

- An explainer maps the input x and the black box's output y to one logit per feature: (N, H, W) for
  images, (N, L) for word sequences, (N, T, F) for time series, (N, h, w) for the ImageNet patch grid.
- An approximator takes x and a (relaxed or binary) mask with the explainer's output shape and predicts
  y from the masked input: masked features become zero (pixels; word embeddings for IMDB; the masked
  4x4 patches for ImageNet), as in the paper's x~_S (Section 3.2).
"""
from __future__ import annotations

import keras
from keras import layers

from data.models import imdb_trunk
from kernels import hooks


# --------------------------------------------------------------------------------------------------
# Explainers
# --------------------------------------------------------------------------------------------------

def image_explainer(input_shape=(28, 28, 1), n_classes: int = 2, name: str = "explainer") -> keras.Model:
    """MEED Table 7: y -> linear Dense(H*W) as an extra channel, then three 3x3 'same' convolutions."""
    height, width = int(input_shape[0]), int(input_shape[1])
    x = keras.Input(shape=tuple(input_shape), name="x")
    y = keras.Input(shape=(n_classes,), name="y")
    y_map = layers.Reshape((height, width, 1), name="y_map")(layers.Dense(height * width, name="y_dense")(y))
    h = layers.Concatenate(axis=-1, name="x_and_y")([x, y_map])
    h = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(h)
    h = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(h)
    h = layers.Conv2D(1, 3, padding="same", name="conv_logits")(h)
    logits = layers.Reshape((height, width), name="logits")(h)
    return keras.Model([x, y], logits, name=name)


def text_explainer(input_shape=(400,), n_classes: int = 2, vocab_size: int = 5000, embedding_dim: int = 50,
                   name: str = "explainer") -> keras.Model:
    """The L2X IMDB selector with MEED's y branch (three-layer MLP of 100 units, Appendix B).

    Global branch: GlobalMaxPool(first conv) -> Dense 100 relu, concatenated with the y branch; local
    branch: two more convolutions; the global vector is tiled over the positions and joined to the
    local features, then 1x1 convolutions give one logit per word.
    """
    length = int(input_shape[0])
    ids = keras.Input(shape=(length,), dtype="int32", name="x")
    y = keras.Input(shape=(n_classes,), name="y")
    emb = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    first = layers.Conv1D(100, 3, padding="same", activation="relu", name="conv_first")(emb)
    global_vec = layers.Dense(100, activation="relu", name="global_dense")(
        layers.GlobalMaxPooling1D(name="global_pool")(first))
    y_vec = layers.Dense(100, name="y_dense1")(y)
    y_vec = layers.Dense(100, activation="relu", name="y_dense2")(y_vec)
    y_vec = layers.Dense(100, activation="relu", name="y_dense3")(y_vec)
    global_vec = layers.Concatenate(name="global_and_y")([global_vec, y_vec])
    local = layers.Conv1D(100, 3, padding="same", activation="relu", name="conv_local1")(first)
    local = layers.Conv1D(100, 3, padding="same", activation="relu", name="conv_local2")(local)
    tiled = layers.RepeatVector(length, name="tile_global")(global_vec)
    h = layers.Concatenate(name="local_and_global")([tiled, local])
    h = layers.Dropout(0.2, name="dropout")(h)
    h = layers.Conv1D(100, 1, activation="relu", name="conv_mix")(h)
    h = layers.Conv1D(1, 1, name="conv_logits")(h)
    logits = layers.Reshape((length,), name="logits")(h)
    return keras.Model([ids, y], logits, name=name)


def _unet_block(h, width: int, name: str):
    for i in range(2):
        h = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv{i + 1}")(h)
        h = layers.BatchNormalization(name=f"{name}_bn{i + 1}")(h)
        h = layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act{i + 1}")(h)
    return h


def unet_explainer(input_shape=(224, 224, 3), n_classes: int = 2, patch: int = 4,
                   name: str = "explainer") -> keras.Model:
    """The ImageNet-setting U-Net: logits on the (H/patch, W/patch) grid of patches.

    y -> Dense(H*W, relu) as an extra channel; encoder widths 8, 16, 32, 64 (max-pool 2 after each),
    bottleneck 128 with dropout .5, transposed-convolution decoder 64, 32, 16, 8 with skip connections
    and dropout .5; then MaxPool(patch) and a linear 1x1 convolution (reference, "Architectures").
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height % 16 or width % 16 or height % patch or width % patch:
        raise ValueError(f"input_shape: expected height and width divisible by 16 and by patch={patch}, "
                         f"got {tuple(input_shape)}")
    x = keras.Input(shape=tuple(input_shape), name="x")
    y = keras.Input(shape=(n_classes,), name="y")
    y_map = layers.Reshape((height, width, 1), name="y_map")(
        layers.Dense(height * width, activation="relu", name="y_dense")(y))
    h = layers.Concatenate(axis=-1, name="x_and_y")([x, y_map])
    skips = []
    for width_ in (8, 16, 32, 64):
        h = _unet_block(h, width_, f"down{width_}")
        skips.append(h)
        h = layers.MaxPooling2D(2, name=f"pool{width_}")(h)
    h = _unet_block(h, 128, "bottleneck")
    h = layers.Dropout(0.5, name="bottleneck_dropout")(h)
    for width_, skip in zip((64, 32, 16, 8), reversed(skips)):
        h = layers.Conv2DTranspose(width_, 2, strides=2, padding="same", name=f"up{width_}_transpose")(h)
        h = layers.Concatenate(name=f"up{width_}_skip")([h, skip])
        h = layers.Dropout(0.5, name=f"up{width_}_dropout")(h)
        h = _unet_block(h, width_, f"up{width_}")
    h = layers.MaxPooling2D(patch, name="patch_pool")(h)
    h = layers.Conv2D(1, 1, name="conv_logits")(h)
    logits = layers.Reshape((height // patch, width // patch), name="logits")(h)
    return keras.Model([x, y], logits, name=name)


def sequence_explainer(input_shape=(3, 643), n_classes: int = 2, units: int = 128,
                       name: str = "explainer") -> keras.Model:
    """The TGD-setting explainer: y mapped linearly to the input's shape and joined on the feature
    axis (Appendix B), a stacked LSTM, and a per-step linear read-out of one logit per feature."""
    steps, features = int(input_shape[0]), int(input_shape[1])
    x = keras.Input(shape=(steps, features), name="x")
    y = keras.Input(shape=(n_classes,), name="y")
    y_map = layers.Reshape((steps, features), name="y_map")(layers.Dense(steps * features, name="y_dense")(y))
    h = layers.Concatenate(axis=-1, name="x_and_y")([x, y_map])
    h = layers.LSTM(units, return_sequences=True, name="lstm1")(h)
    h = layers.LSTM(units, return_sequences=True, name="lstm2")(h)
    logits = layers.Dense(features, name="logits")(h)
    return keras.Model([x, y], logits, name=name)


def tabular_explainer(input_shape=(10,), n_classes: int = 2, units: int = 100,
                      name: str = "explainer") -> keras.Model:
    """For flat features (the L2X synthetic tasks): [x, y] -> two ReLU layers of 100 -> one logit per
    feature (L2X's selector for these tasks, with MEED's model-output feedback as an extra input)."""
    d = int(input_shape[0])
    x = keras.Input(shape=(d,), name="x")
    y = keras.Input(shape=(n_classes,), name="y")
    h = layers.Concatenate(name="x_and_y")([x, y])
    h = layers.Dense(units, activation="relu", name="dense1")(h)
    h = layers.Dense(units, activation="relu", name="dense2")(h)
    logits = layers.Dense(d, name="logits")(h)
    return keras.Model([x, y], logits, name=name)


# --------------------------------------------------------------------------------------------------
# Approximators A(x, mask)
# --------------------------------------------------------------------------------------------------

def masked_approximator(trunk: keras.Model, mask_shape, *, patch: int = 1,
                        name: str = "approximator") -> keras.Model:
    """A(x, mask) = trunk(x * mask): the black box's architecture on the masked input.

    ``mask_shape`` is the explainer's output shape: (H, W) for images (shared by all channels, and on a
    coarser grid upsampled x``patch`` by nearest neighbour for the ImageNet setting, where x is
    MobileNet-preprocessed to [-1, 1] so that a zero is mid-grey), or x's own shape otherwise.
    """
    input_shape = tuple(trunk.input_shape[1:])
    mask_shape = tuple(int(s) for s in mask_shape)
    x = keras.Input(shape=input_shape, name="x")
    mask = keras.Input(shape=mask_shape, name="mask")
    m = mask
    if len(input_shape) == 3 and len(mask_shape) == 2:
        m = layers.Reshape(mask_shape + (1,), name="mask_channel")(m)
        if patch > 1:
            m = layers.UpSampling2D(patch, interpolation="nearest", name="mask_up")(m)
    masked = layers.Multiply(name="apply_mask")([x, m])
    return keras.Model([x, mask], trunk(masked), name=name)


def text_approximator(input_shape=(400,), n_classes: int = 2, vocab_size: int = 5000, embedding_dim: int = 50,
                      name: str = "approximator") -> keras.Model:
    """The IMDB word CNN with its own embedding multiplied by the mask (masked word = zero vector)."""
    length = int(input_shape[0])
    ids = keras.Input(shape=(length,), dtype="int32", name="x")
    mask = keras.Input(shape=(length,), name="mask")
    emb = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    masked = layers.Multiply(name="apply_mask")([emb, layers.Reshape((length, 1))(mask)])
    return keras.Model([ids, mask], imdb_trunk(masked, n_classes), name=name)


# --------------------------------------------------------------------------------------------------
# The setting of an arbitrary black box
# --------------------------------------------------------------------------------------------------

def for_blackbox(model: keras.Model, *, approximator: bool = True):
    """(explainer, approximator or None) with the MEED architectures of ``model``'s setting.

    The explainer is the preset's for the input kind (image, words, flat features, time series). The
    approximator has the black box's own architecture, as in MEED and L2X: a fresh clone of ``model``
    (new weights, same layers) applied to the masked input; for token models the IMDB word CNN with its
    own embedding multiplied by the mask (a masked word is a zero vector), which is what MEED, L2X and
    VIBI use for text. The setting is ``kernels.hooks.modality(model)``.
    """
    input_shape = tuple(int(s) for s in model.inputs[0].shape[1:])
    n_classes = int(model.outputs[0].shape[-1])
    modality = hooks.modality(model)
    if modality == "text":
        embedding = hooks.embedding_layer(model)
        words = {"vocab_size": int(embedding.input_dim), "embedding_dim": int(embedding.output_dim)}
        return (text_explainer(input_shape, n_classes, **words),
                text_approximator(input_shape, n_classes, **words) if approximator else None)
    if modality == "image":
        explainer, mask_shape = image_explainer(input_shape, n_classes), input_shape[:2]
    elif modality == "tabular":
        explainer, mask_shape = tabular_explainer(input_shape, n_classes), input_shape
    elif modality == "sequence":
        explainer, mask_shape = sequence_explainer(input_shape, n_classes), input_shape
    else:
        raise ValueError(f"model: expected inputs (N, H, W, C), (N, d), (N, T, F) or token ids, got input shape "
                         f"{(None,) + input_shape}")
    if not approximator:
        return explainer, None
    trunk = keras.models.clone_model(model)
    return explainer, masked_approximator(trunk, mask_shape, name="approximator")
