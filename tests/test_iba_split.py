"""iba.split: cutting functional Keras models (nested ones included) into head and tail."""
import keras
import numpy as np
import pytest
from keras import layers

from iba import SUPPORTED_RANKS, split_model
from tests import tiny


def test_split_inside_a_nested_model_reproduces_the_model():
    model = tiny.nested_cnn()
    x = tiny.images(2, (16, 16, 3))
    for name in ("block_out", "conv_c", "backbone", "preprocess", "image"):
        split = split_model(model, name)
        features = split.head(x)
        assert split.feature_shape == tuple(features.shape[1:])
        np.testing.assert_allclose(split.tail(features), model(x), atol=1e-6)
        np.testing.assert_allclose(keras.ops.softmax(split.logits_tail(features)), model(x), atol=1e-6)
        assert split.output_kind == "probability"
    assert split_model(model, "block_out").feature_shape == (16, 16, 4)


def test_split_of_sequential_and_logit_models():
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(3, 3, name="c"), layers.Flatten(),
                            layers.Dense(2, name="out")])
    split = split_model(seq, "c")
    x = tiny.images(2, (8, 8, 1))
    np.testing.assert_allclose(split.tail(split.head(x)), seq(x), atol=1e-6)
    assert split.output_kind == "logit" and split.logits_tail is None


def test_split_keras_applications_resnet50_and_vgg16():
    x = 255.0 * tiny.images(2, (64, 64, 3))
    keras.utils.set_random_seed(0)
    resnet = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    split = split_model(resnet, "conv3_block4_out")
    assert split.feature_shape == (8, 8, 512) and split.output_kind == "probability"
    np.testing.assert_allclose(split.tail(split.head(x)), resnet(x), atol=1e-5)
    vgg = keras.applications.VGG16(weights=None, input_shape=(64, 64, 3))
    split = split_model(vgg, "block4_conv1")
    assert split.feature_shape == (8, 8, 512)
    np.testing.assert_allclose(split.tail(split.head(x)), vgg(x), atol=1e-5)


def test_split_of_a_backbone_nested_in_a_classifier():
    keras.utils.set_random_seed(0)
    backbone = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    x = keras.Input((32, 32, 3))
    h = layers.GlobalMaxPooling2D()(backbone(x, training=False))
    model = keras.Model(x, layers.Dense(4, activation="softmax")(h))
    split = split_model(model, "block3_conv1")
    assert split.feature_shape == (8, 8, 256) and split.output_kind == "probability"
    assert split.logits_tail is None  # softmax inside Dense: no separate logits
    images = 255.0 * tiny.images(2, (32, 32, 3))
    np.testing.assert_allclose(split.tail(split.head(images)), model(images), atol=1e-5)


def test_split_does_not_modify_the_model():
    model = tiny.nested_cnn()
    x = tiny.images(2, (16, 16, 3))
    before_out, before_w = model(x).numpy(), [w.numpy().copy() for w in model.weights]
    n_layers = len(model.layers)
    split_model(model, "block_out")
    split_model(model, "conv_c")
    np.testing.assert_array_equal(model(x), before_out)
    assert len(model.layers) == n_layers
    for a, b in zip(model.weights, before_w):
        np.testing.assert_array_equal(a.numpy(), b)


def test_unknown_layer_lists_close_names():
    with pytest.raises(ValueError, match=r"no layer named 'block_ot'.*close names: 'block_out'"):
        split_model(tiny.nested_cnn(), "block_ot")
    with pytest.raises(TypeError, match="layer"):
        split_model(tiny.nested_cnn(), 3)


def test_non_feature_map_layer_says_which_ranks_are_supported():
    with pytest.raises(ValueError, match=r"'gap' has shape \(None, 6\).*rank-4 \(N, H, W, C\)") as err:
        split_model(tiny.nested_cnn(), "gap")
    assert SUPPORTED_RANKS in str(err.value)


def test_layer_bypassed_by_a_skip_connection_is_rejected():
    with pytest.raises(ValueError, match="skip connection bypasses"):
        split_model(tiny.nested_cnn(), "conv_b")


def test_shared_layers_and_non_models_are_rejected():
    keras.utils.set_random_seed(0)
    conv = layers.Conv2D(3, 3, padding="same", name="shared")
    x = keras.Input((8, 8, 3))
    model = keras.Model(x, layers.Flatten()(conv(conv(x))))
    with pytest.raises(ValueError, match="called 2 times"):
        split_model(model, "shared")
    with pytest.raises(TypeError, match="keras.Model"):
        split_model(lambda t: t, "shared")


def test_backbone_called_twice_is_rejected():
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((8, 8, 3))
    backbone = keras.Model(inner_in, layers.Conv2D(3, 3, padding="same", name="inner_conv")(inner_in), name="twice")
    x = keras.Input((8, 8, 3))
    model = keras.Model(x, layers.Flatten()(backbone(backbone(x))))
    with pytest.raises(ValueError, match="nested model 'twice' is called 2 times"):
        split_model(model, "inner_conv")
