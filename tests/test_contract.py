"""The explainer contract, registry-driven: every registered method on numpy / tensor / tf.data inputs, batch
sizes None / 1 / 32, int and one-hot targets; select, get_config; export + reload in a fresh process for every
method that exports; the registry's lookups and errors."""
import json

import numpy as np
import pytest
import tensorflow as tf

from eval import registry
from eval.protocol import Explainer
from tests import tiny
from tests.helpers import run_python

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # IBA's "few samples" warning on tiny data

# Small hyper-parameters so that the whole grid stays fast; the methods that need one get their layer / k.
FAST = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"n_samples": 4},
    "vargrad": {"n_samples": 4},
    "occlusion": {"patch_size": 4, "stride": 2},
    "rise": {"n_masks": 8},
    "lime": {"n_samples": 16},
    "kernel_shap": {"n_samples": 16},
    "meaningful_perturbation": {"steps": 3},
    "extremal_perturbation": {"steps": 3},
    "perceptual_ball": {"steps": 10},
    "real_time_saliency": {"base_channels": 8},
    "classifier_agnostic": {"channels": 8, "save_freq": 1, "f_size": 2},
    "vp": {"iterations": 10, "width": 4, "k": 4},
    "masking": {"steps": 3, "distractors": 2},
    "nvp": {"iterations": 10, "width": 4, "k": 4},
    "infd": {"n_samples": 256},
    "l2x": {"k": 4},
    "vibi": {"k": 4},
    "meed": {"preset": "fashion_mnist", "k": 4},
    "iba": {"layer": "conv", "steps": 3},
    "iba_readout": {"layer": "conv", "readout_layers": ["conv", "pool"]},
}
#: Methods whose image-only design leaves out token models.
IMAGE_ONLY = ("iba", "iba_readout", "meed", "extremal_perturbation", "perceptual_ball", "real_time_saliency",
              "classifier_agnostic", "vp", "nvp", "masking")
#: Without targets MEED explains the model's whole output M(x) (its model-output feedback), not the argmax.
SOFT_DEFAULT = ("meed",)


def make(name, model, x, hyper=None):
    """The method ``name`` for ``model``, fitted (one tiny epoch) when it requires fitting."""
    method = registry.spec(name)
    hyper = dict(FAST.get(name, {}) if hyper is None else hyper)
    if method.accepts("verbose"):
        hyper["verbose"] = 0
    explainer = method.build(model, **hyper)
    if method.requires_fit:
        explainer.fit(x, np.arange(len(x)) % int(model.outputs[0].shape[-1]), epochs=1, batch_size=2, verbose=0)
    return explainer


@pytest.fixture(scope="module")
def fitted(image_model):
    """Every registered method, built and fitted once for the tiny image model."""
    model, _ = image_model
    x = tiny.images(4, (8, 8, 3), seed=5)
    return {name: make(name, model, x) for name in registry.names()}


@pytest.mark.parametrize("name", registry.names())
def test_every_method_on_every_input_kind_batch_size_and_target_form(name, image_model, fitted):
    model, x = image_model
    explainer = fitted[name]
    assert isinstance(explainer, Explainer)
    targets = np.array([0, 2, 1])
    reference = explainer.explain(x, targets)
    assert reference.shape == (3, 8, 8) and reference.dtype == np.float32 and np.all(np.isfinite(reference))
    onehot = np.eye(3, dtype=np.float32)[targets]
    dataset = tf.data.Dataset.from_tensor_slices((x, targets)).batch(2)
    # Meaningful perturbation optimises a mask per image with Adam: float rounding of batched kernels grows.
    atol = 1e-5 if name == "meaningful_perturbation" else 1e-6
    for inputs in (x, tf.constant(x), dataset):
        for batch_size in (None, 1, 32):
            for t in (targets, onehot):
                got = explainer.explain(inputs, targets=t, batch_size=batch_size)
                np.testing.assert_allclose(got, reference, rtol=1e-5, atol=atol,
                                           err_msg=f"{name} {type(inputs).__name__} {batch_size}")
    if name not in SOFT_DEFAULT:
        predicted = model.predict(x, verbose=0).argmax(axis=1)
        np.testing.assert_allclose(explainer.explain(x), explainer.explain(x, predicted), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("name", registry.names())
def test_select_is_the_top_k_of_the_scores_and_get_config_names_the_method(name, image_model, fitted):
    model, x = image_model
    explainer = fitted[name]
    masks = explainer.select(x, 5)
    assert masks.shape == (3, 8, 8) and set(np.unique(masks)) <= {0.0, 1.0}
    np.testing.assert_array_equal(masks.reshape(3, -1).sum(axis=1), [5, 5, 5])
    scores = explainer.explain(x).reshape(3, -1)
    chosen = masks.reshape(3, -1).astype(bool)
    # Every selected feature scores at least as high as every unselected one.
    assert np.all(scores[chosen].reshape(3, 5).min(axis=1) >= scores[~chosen].reshape(3, -1).max(axis=1) - 1e-6)
    config = explainer.get_config()
    assert config["method"] == name
    json.dumps(config)


def test_exported_explainers_reload_in_a_fresh_process(tmp_path, image_model, fitted):
    model, x = image_model
    np.save(tmp_path / "x.npy", x)
    exported = []
    for name, explainer in fitted.items():
        if not hasattr(explainer, "export"):
            assert name == "iba", name  # the Per-Sample Bottleneck optimises per image: nothing to serve
            continue
        explainer.export(tmp_path / name, k=4)
        exported.append(name)
    assert len(exported) == len(fitted) - 1
    out = run_python(f"""
        import json, numpy as np, tensorflow as tf
        x = np.load({str(tmp_path / 'x.npy')!r})
        for name in {exported!r}:
            result = tf.saved_model.load({str(tmp_path)!r} + "/" + name).signatures["serving_default"](x=tf.constant(x))
            np.save({str(tmp_path)!r} + f"/{{name}}-scores.npy", result["scores"].numpy())
            np.save({str(tmp_path)!r} + f"/{{name}}-mask.npy", result["mask"].numpy())
        print(json.dumps(sorted(result)))
    """, timeout=600)
    assert json.loads(out.strip().splitlines()[-1]) == ["mask", "scores"]
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    for name in exported:
        scores = np.load(tmp_path / f"{name}-scores.npy")
        expected = fitted[name].explain(x, None if name in SOFT_DEFAULT else predicted)
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5, err_msg=name)
        mask = np.load(tmp_path / f"{name}-mask.npy")
        np.testing.assert_array_equal(mask.reshape(3, -1).sum(axis=1), [4, 4, 4], err_msg=name)


@pytest.mark.parametrize("name", [n for n in registry.names() if n not in IMAGE_ONLY])
def test_every_method_on_a_token_model(name, text_model):
    model, ids = text_model
    hyper = {**FAST.get(name, {}), **({"patch_size": 2} if name == "occlusion" else {})}
    explainer = make(name, model, tiny.token_ids(4, seed=5), hyper)
    reference = explainer.explain(ids, targets=[1, 0, 1])
    assert reference.shape == (3, 10) and np.all(np.isfinite(reference))
    for inputs in (tf.constant(ids), tf.data.Dataset.from_tensor_slices(ids).batch(2)):
        for batch_size in (None, 1):
            got = explainer.explain(inputs, targets=np.eye(2)[[1, 0, 1]], batch_size=batch_size)
            np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- registry

def test_the_registry_holds_every_package_and_resolves_aliases():
    names = registry.names()
    assert names[:3] == ["gradient", "saliency", "gradient_input"]
    assert {"l2x", "vibi", "cxplain", "meed", "iba", "iba_readout"} <= set(names)
    assert registry.names("meed") == ["meed"] and registry.names("iba") == ["iba", "iba_readout"]
    assert [m.name for m in registry.resolve(["grad", "GI", "gradient", "ig", "per_sample_iba"])] == [
        "gradient", "gradient_input", "integrated_gradients", "iba"]
    assert registry.spec("l2x").requires_fit and registry.spec("cxplain").needs_labels
    assert not registry.spec("gradient").requires_fit
    layer = {h.name: h for h in registry.spec("iba").hyperparameters}["layer"]
    assert layer.required and "bottleneck" in layer.doc
    steps = {h.name: h for h in registry.spec("integrated_gradients").hyperparameters}["steps"]
    assert steps.default == 50 and not steps.required
    text = registry.describe("smoothgrad")
    assert text.startswith("smoothgrad: Smilkov et al. (2017)") and "--n_samples (default 50)" in text


def test_unknown_names_and_hyperparameters_are_clear_errors(image_model):
    model, _ = image_model
    with pytest.raises(ValueError, match="name: unknown value 'gradcm'.*did you mean 'gradcam'"):
        registry.get("gradcm", model)
    with pytest.raises(TypeError, match="smoothgrad: unknown hyperparameter.*'stdev'.*accepted"):
        registry.get("smoothgrad", model, stdev=0.1)
    with pytest.raises(TypeError, match=r"iba: missing required hyperparameter\(s\) \['layer'\]"):
        registry.get("iba", model)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("gradient", object)
