"""SSIM and cascading parameter randomisation (eval.cascading; IBA Section 4.3 and App. G.1, Adebayo et al. 2018)."""
import json

import numpy as np
import pytest
import tensorflow as tf

from eval import CascadingResult, cascading_randomization, normalize_heatmaps, ssim
from tests import tiny


def maps(n=3, size=12, seed=0):
    return np.random.default_rng(seed).random((n, size, size))


# --- ssim --------------------------------------------------------------------------------------------

def test_ssim_of_identical_maps_is_one_and_of_negated_maps_is_low():
    a = normalize_heatmaps(maps())
    np.testing.assert_allclose(ssim(a, a), 1.0, atol=1e-12)
    assert np.all(ssim(a, 1.0 - a) < 0.0)  # the negation, rescaled: structure anti-correlated
    assert np.all(ssim(a, normalize_heatmaps(maps(seed=1))) < 0.2)  # independent noise
    np.testing.assert_allclose(ssim(np.zeros((1, 6, 6)), np.zeros((1, 6, 6))), 1.0)


def test_ssim_batched_equals_one_by_one_and_is_symmetric():
    a, b = maps(4, seed=2), maps(4, seed=3)
    batched = ssim(a, b, window=3)
    np.testing.assert_allclose([ssim(a[i:i + 1], b[i:i + 1], window=3)[0] for i in range(4)], batched, atol=1e-12)
    np.testing.assert_allclose(ssim(b, a, window=3), batched, atol=1e-12)


def test_ssim_matches_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    a, b = maps(3, size=11, seed=4), maps(3, size=11, seed=5) * 0.5 + maps(3, size=11, seed=4) * 0.5
    for window in (3, 5, 7):
        expected = [skimage_metrics.structural_similarity(a[i], b[i], win_size=window, data_range=1.0)
                    for i in range(3)]
        np.testing.assert_allclose(ssim(a, b, window=window), expected, atol=1e-10)


def test_ssim_known_value_of_a_constant_shift():
    # Constant maps: mu_a = 0, mu_b = d, variances 0 -> SSIM = C1 / (d^2 + C1) with C1 = (0.01 * R)^2.
    d, c1 = 0.1, 0.01 ** 2
    value = ssim(np.zeros((1, 5, 5)), np.full((1, 5, 5), d))[0]
    assert value == pytest.approx(c1 / (d * d + c1))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(b=np.zeros((2, 8, 9))), ValueError, r"b: expected the shape of a \(2, 8, 8\), got \(2, 8, 9\)"),
    (dict(window=4), ValueError, r"window: expected an odd size in \[3, min\(H, W\) = 8\], got 4"),
    (dict(window=9), ValueError, r"window: expected an odd size"),
    (dict(window=1), ValueError, r"window: expected an integer >= 3"),
    (dict(a=np.full((2, 8, 8), np.nan)), ValueError, r"a: expected finite values"),
    (dict(a=np.zeros((8, 8))), ValueError, r"a: expected rank 3"),
    (dict(data_range=0.0), ValueError, r"data_range: expected a finite number > 0"),
])
def test_ssim_bad_inputs(kwargs, error, match):
    args = dict(a=np.zeros((2, 8, 8)), b=np.zeros((2, 8, 8)))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ssim(**args)


def test_percentile_normalisation_clips_and_rescales():
    heatmap = np.arange(101.0).reshape(1, 1, 101)  # percentiles 1 and 99 are 1 and 99
    out = normalize_heatmaps(heatmap)
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out[0, 0, :3], [0.0, 0.0, 1 / 98])
    np.testing.assert_allclose(out[0, 0, 50], 49 / 98)
    np.testing.assert_array_equal(normalize_heatmaps(np.full((2, 3, 3), 7.0)), 0.0)
    np.testing.assert_allclose(normalize_heatmaps(heatmap, "minmax"), heatmap / 100)
    with pytest.raises(ValueError, match=r"normalize: unknown value 'zscore'"):
        normalize_heatmaps(heatmap, "zscore")


# --- cascading_randomization -------------------------------------------------------------------------

def tiny_model():
    """conv -> pool -> hidden -> logits -> probs: three layers with weights (tiny.image_cnn with a hidden layer)."""
    return tiny.image_cnn((10, 10, 1), 3, seed=42, hidden=8)


def gradient_times_input(model, x, targets):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.gather(model(x), targets, axis=1, batch_dims=1)
    return (tape.gradient(score, x) * x).numpy()[..., 0]


def test_cascading_randomisation_of_a_tiny_model():
    model, x = tiny_model(), tiny.images(3, (10, 10, 1))
    before = [w.copy() for w in model.get_weights()]
    result = cascading_randomization(model, gradient_times_input, x, seed=0)
    assert isinstance(result, CascadingResult)
    assert result.steps == ("original", "logits", "hidden", "conv")  # top first; pool/probs have no weights
    assert result.ssim_per_sample.shape == (4, 3)
    np.testing.assert_allclose(result.ssim[0], 1.0, atol=1e-9)  # the faithful copy explains like the model
    assert result.ssim[1:].max() < 0.9  # re-drawn logits already change gradient x input
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # the user's model is untouched
    again = cascading_randomization(model, gradient_times_input, x, seed=0)
    np.testing.assert_array_equal(again.ssim_per_sample, result.ssim_per_sample)
    report = json.loads(json.dumps(result.to_dict()))
    assert report["steps"][0] == "original" and len(report["ssim"]) == 4 and report["window"] == 5


def test_model_independent_explainer_keeps_ssim_one_and_targets_are_fixed():
    model, x = tiny_model(), tiny.images(3, (10, 10, 1))
    seen = []

    def edges(explained_model, inputs, targets):  # ignores the model: fails the sanity check by design
        seen.append(np.asarray(targets).tolist())
        return inputs[..., 0]

    result = cascading_randomization(model, edges, x, targets=[2, 0, 1], layers=["logits", "conv"])
    assert result.layer_names == ("logits", "conv")
    np.testing.assert_allclose(result.ssim, 1.0, atol=1e-12)
    assert seen == [[2, 0, 1]] * 4  # the user's model, the copy, then one call per randomised layer
    predicted = model.predict(x, verbose=0).argmax(axis=1).tolist()
    seen.clear()
    cascading_randomization(model, edges, x, layers=["logits"])
    assert seen == [predicted] * 3


def test_sign_invariant_variant_undoes_a_flip():
    model, x = tiny_model(), tiny.images(3, (10, 10, 1))
    calls = []

    def flips_after_original(explained_model, inputs, targets):
        calls.append(explained_model)
        sign = 1.0 if len(calls) <= 2 else -1.0
        return sign * inputs[..., 0]

    plain = cascading_randomization(model, flips_after_original, x, layers=["logits"])
    assert plain.ssim[1] < 0.0
    calls.clear()
    invariant = cascading_randomization(model, flips_after_original, x, layers=["logits"], sign_invariant=True)
    np.testing.assert_allclose(invariant.ssim, 1.0, atol=1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(explain_fn="grad"), TypeError, r"explain_fn: expected a callable"),
    (dict(layers=["nope"]), ValueError, r"layers: unknown value 'nope'"),
    (dict(layers=["pool"]), ValueError, r"layers: the layer 'pool' has no weights"),
    (dict(layers=["logits", "logits"]), ValueError, r"layers: the layer 'logits' is listed twice"),
    (dict(layers="logits"), TypeError, r"layers: expected a non-empty list"),
    (dict(normalize="z"), ValueError, r"normalize: unknown value 'z'"),
    (dict(window=4), ValueError, r"window: expected an odd SSIM window size, got 4"),
    (dict(targets=[0, 1]), ValueError, r"targets: expected 3 integer labels"),
    (dict(explain_fn=lambda m, x, t: np.zeros((3, 9, 9))), ValueError, r"explain_fn\(model\): expected shape"),
    (dict(model="model"), TypeError, r"model: expected a keras.Model"),
])
def test_cascading_bad_inputs(kwargs, error, match):
    args = dict(model=tiny_model(), explain_fn=gradient_times_input, x=tiny.images(3, (10, 10, 1)))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        cascading_randomization(**args)
