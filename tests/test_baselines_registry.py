"""The baselines in the registry (their names, the deprecated ``baselines.get`` / ``names``), and their
bad-input errors; every method's contract (input kinds, batch sizes, targets, export) is tests/test_contract.py."""
import numpy as np
import pytest

import baselines
from eval import registry
from tests import tiny


def test_names_aliases_and_the_deprecated_entry_points(image_model):
    assert registry.names("baselines") == baselines.names() == [
        "gradient", "saliency", "gradient_input", "integrated_gradients", "smoothgrad", "vargrad",
        "guided_backprop", "gradcam", "guided_gradcam", "occlusion", "rise", "lime", "kernel_shap",
        "meaningful_perturbation", "extremal_perturbation", "perceptual_ball", "infd", "random", "centered_gaussian",
        "l2x", "vibi", "cxplain", "real_time_saliency", "classifier_agnostic"]
    assert {alias: registry.spec(alias).name for alias in ("grad", "gi", "ig", "mp", "ep", "ap", "realtime", "ca")} == {
        "grad": "gradient", "gi": "gradient_input", "ig": "integrated_gradients", "mp": "meaningful_perturbation",
        "ep": "extremal_perturbation", "ap": "perceptual_ball", "realtime": "real_time_saliency",
        "ca": "classifier_agnostic"}
    assert registry.spec("smoothgrad").accepts("seed") and registry.spec("gi").accepts("output")
    assert not registry.spec("random").accepts("output")
    model, x = image_model
    np.testing.assert_array_equal(baselines.get("gi", model, verbose=0).explain(x),
                                  registry.get("gradient_input", model, verbose=0).explain(x))


# ------------------------------------------------------------------------------------------ bad inputs

def test_unknown_method_lists_the_known_ones(image_model):
    with pytest.raises(ValueError, match="name: unknown value 'gradcm'.*did you mean 'gradcam'.*integrated_gradients"):
        registry.get("gradcm", image_model[0])
    with pytest.raises(TypeError, match="smoothgrad: unknown hyperparameter.*'stdev'.*accepted"):
        registry.get("smoothgrad", image_model[0], stdev=0.1)
    with pytest.raises(TypeError, match="model: expected a keras.Model"):
        registry.get("gradient", lambda x: x)


def test_gradcam_needs_a_conv_layer(image_model):
    dense_only = tiny.linear_softmax((8, 8, 3), n_classes=3)
    with pytest.raises(ValueError, match="layer: the model .* has no convolutional layer"):
        registry.get("gradcam", dense_only)
    with pytest.raises(ValueError, match="layer: unknown value 'conv2'.*did you mean 'conv'"):
        registry.get("gradcam", image_model[0], layer="conv2")
    with pytest.raises(ValueError, match="layer: expected a feature map .* 'logits' has an output of rank 2"):
        registry.get("guided_gradcam", image_model[0], layer="logits")


def test_bad_targets_batch_size_and_inputs(image_model):
    model, x = image_model
    explainer = registry.get("gradient", model, verbose=0)
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        explainer.explain(x, targets=[0, 1, 3])
    with pytest.raises(ValueError, match="targets: expected 3 integer labels"):
        explainer.explain(x, targets=[0, 1])
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        explainer.explain(x, batch_size=0)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1"):
        registry.get("occlusion", model, batch_size=-1)
    bad = x.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        explainer.explain(bad)
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \(N, 8, 8, 3\)"):
        explainer.explain(x[..., :1])
    with pytest.raises(ValueError, match="output: unknown value 'logits'"):
        registry.get("gradient", model, output="logits")
    with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
        registry.get("integrated_gradients", model, steps=0)
    with pytest.raises(ValueError, match="baseline: expected a number or an array broadcastable"):
        registry.get("integrated_gradients", model, baseline=np.zeros((8, 8, 2)))
    with pytest.raises(ValueError, match="patch_size: expected at most the input size"):
        registry.get("occlusion", model, patch_size=9)


def test_logit_output_needs_a_softmax_or_a_logits_layer():
    raw = tiny.linear_softmax((4,), softmax=False)
    with pytest.raises(ValueError, match="output: 'logit' needs the pre-softmax scores"):
        registry.get("gradient", raw, output="logit")


def test_token_ids_are_checked(text_model):
    model, ids = text_model
    explainer = registry.get("gradient", model, verbose=0)
    with pytest.raises(ValueError, match=r"x: expected token ids in \[0, 19\]"):
        explainer.explain(np.full((1, 10), 20))
    with pytest.raises(TypeError, match="x: expected integer token ids"):
        explainer.explain(np.full((1, 10), 1.5))
    with pytest.raises(ValueError, match=r"baseline: expected a token id in \[0, 19\]"):
        registry.get("occlusion", model, baseline=-1)
