"""Registry-driven tests: every method on numpy / tensor / tf.data inputs, batch sizes None / 1 / 32, int and
one-hot targets, on a tiny image model and a tiny embedding text model; and the bad-input errors."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import baselines

# Small hyperparameters so that the whole grid stays fast.
FAST = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"n_samples": 4},
    "vargrad": {"n_samples": 4},
    "occlusion": {"patch_size": 4, "stride": 2},
    "rise": {"n_masks": 8},
    "lime": {"n_samples": 16},
    "kernel_shap": {"n_samples": 16},
    "meaningful_perturbation": {"steps": 3},
    "infd": {"n_samples": 256},
    "l2x": {"k": 4},
    "vibi": {"k": 4},
}


def make(name, model, hyper=None):
    """The method ``name`` for ``model`` (``hyper``: default FAST's); trainable (amortised) methods get one
    tiny epoch of training first."""
    explainer = baselines.get(name, model, verbose=0, **(FAST.get(name, {}) if hyper is None else hyper))
    if getattr(explainer, "trainable_explainer", False):
        x = np.random.default_rng(5).uniform(size=(4,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
        if explainer.embedding is not None:
            x = np.random.default_rng(5).integers(1, explainer.embedding.input_dim, size=x.shape).astype(np.int32)
        explainer.fit_explainer(x, np.arange(4) % int(model.outputs[0].shape[-1]), epochs=1, batch_size=2)
    return explainer


@pytest.fixture(scope="module")
def image_model():
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input(shape=(8, 8, 3), name="x")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, layers.Softmax(name="probs")(x), name="tiny_cnn")
    data = np.random.default_rng(0).uniform(size=(3, 8, 8, 3)).astype(np.float32)
    return model, data


@pytest.fixture(scope="module")
def text_model():
    keras.utils.set_random_seed(1)
    ids = keras.Input(shape=(10,), dtype="int32", name="x")
    x = layers.Embedding(20, 4, name="embedding")(ids)
    x = layers.Conv1D(5, 3, activation="relu", name="conv")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    x = layers.Dense(2, name="logits")(x)
    model = keras.Model(ids, layers.Softmax(name="probs")(x), name="tiny_text")
    data = np.random.default_rng(1).integers(1, 20, size=(3, 10)).astype(np.int32)
    return model, data


def test_names_and_aliases():
    assert baselines.names() == [
        "gradient", "saliency", "gradient_input", "integrated_gradients", "smoothgrad", "vargrad",
        "guided_backprop", "gradcam", "guided_gradcam", "occlusion", "rise", "lime", "kernel_shap",
        "meaningful_perturbation", "infd", "random", "centered_gaussian", "l2x", "vibi", "cxplain"]
    assert set(baselines.ALIASES.values()) <= set(baselines.names())
    assert "seed" in baselines.hyperparameters("smoothgrad") and "output" in baselines.hyperparameters("gi")
    assert "output" not in baselines.hyperparameters("random")


@pytest.mark.parametrize("name", baselines.names())
def test_every_method_on_every_input_kind_batch_size_and_target_form(name, image_model):
    model, x = image_model
    explainer = make(name, model)
    targets = np.array([0, 2, 1])
    reference = explainer.explain(x, targets)
    assert reference.shape == (3, 8, 8) and reference.dtype == np.float32 and np.all(np.isfinite(reference))
    onehot = np.eye(3, dtype=np.float32)[targets]
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(2)
    for inputs in (x, tf.constant(x), dataset):
        for batch_size in (None, 1, 32):
            for t in (targets, onehot):
                got = explainer.explain(inputs, targets=t, batch_size=batch_size)
                np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7,
                                           err_msg=f"{name} {type(inputs).__name__} {batch_size}")
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(explainer.explain(x), explainer.explain(x, predicted), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", baselines.names())
def test_every_method_on_a_token_model(name, text_model):
    model, ids = text_model
    explainer = make(name, model, {"patch_size": 2} if name == "occlusion" else None)
    reference = explainer.explain(ids, targets=[1, 0, 1])
    assert reference.shape == (3, 10) and np.all(np.isfinite(reference))
    for inputs in (tf.constant(ids), tf.data.Dataset.from_tensor_slices(ids).batch(2)):
        for batch_size in (None, 1):
            got = explainer.explain(inputs, targets=np.eye(2)[[1, 0, 1]], batch_size=batch_size)
            np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------ bad inputs

def test_unknown_method_lists_the_known_ones(image_model):
    with pytest.raises(ValueError, match="name: unknown value 'gradcm'.*did you mean 'gradcam'.*integrated_gradients"):
        baselines.get("gradcm", image_model[0])
    with pytest.raises(TypeError, match="smoothgrad: unknown hyperparameter.*'stdev'.*accepted"):
        baselines.get("smoothgrad", image_model[0], stdev=0.1)
    with pytest.raises(TypeError, match="model: expected a keras.Model"):
        baselines.get("gradient", lambda x: x)


def test_gradcam_needs_a_conv_layer(image_model):
    keras.utils.set_random_seed(2)
    inputs = keras.Input(shape=(8, 8, 3))
    dense_only = keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="layer: the model .* has no convolutional layer"):
        baselines.get("gradcam", dense_only)
    with pytest.raises(ValueError, match="layer: unknown value 'conv2'.*did you mean 'conv'"):
        baselines.get("gradcam", image_model[0], layer="conv2")
    with pytest.raises(ValueError, match="layer: expected a feature map .* 'logits' has an output of rank 2"):
        baselines.get("guided_gradcam", image_model[0], layer="logits")


def test_bad_targets_batch_size_and_inputs(image_model):
    model, x = image_model
    explainer = baselines.get("gradient", model, verbose=0)
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        explainer.explain(x, targets=[0, 1, 3])
    with pytest.raises(ValueError, match="targets: expected 3 integer labels"):
        explainer.explain(x, targets=[0, 1])
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        explainer.explain(x, batch_size=0)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1"):
        baselines.get("occlusion", model, batch_size=-1)
    bad = x.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        explainer.explain(bad)
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \(N, 8, 8, 3\)"):
        explainer.explain(x[..., :1])
    with pytest.raises(ValueError, match="output: unknown value 'logits'"):
        baselines.get("gradient", model, output="logits")
    with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
        baselines.get("integrated_gradients", model, steps=0)
    with pytest.raises(ValueError, match="baseline: expected a number or an array broadcastable"):
        baselines.get("integrated_gradients", model, baseline=np.zeros((8, 8, 2)))
    with pytest.raises(ValueError, match="patch_size: expected at most the input size"):
        baselines.get("occlusion", model, patch_size=9)


def test_logit_output_needs_a_softmax_or_a_logits_layer():
    inputs = keras.Input(shape=(4,))
    raw = keras.Model(inputs, layers.Dense(2, name="scores")(inputs))
    with pytest.raises(ValueError, match="output: 'logit' needs the pre-softmax scores"):
        baselines.get("gradient", raw, output="logit")


def test_token_ids_are_checked(text_model):
    model, ids = text_model
    explainer = baselines.get("gradient", model, verbose=0)
    with pytest.raises(ValueError, match=r"x: expected token ids in \[0, 19\]"):
        explainer.explain(np.full((1, 10), 20))
    with pytest.raises(TypeError, match="x: expected integer token ids"):
        explainer.explain(np.full((1, 10), 1.5))
    with pytest.raises(ValueError, match=r"baseline: expected a token id in \[0, 19\]"):
        baselines.get("occlusion", model, baseline=-1)
