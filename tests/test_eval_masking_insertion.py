"""Deletion and insertion (eval.insertion): RISE's blur against scipy, the pixel counts of both presets, the
curves of a model with a known response, xplique's algorithm re-run literally, the classes and errors."""
import numpy as np
import pytest
from scipy import ndimage

from eval.insertion import (Deletion, Insertion, causal_metric, curve_counts, deletion, insertion, normalised_auc,
                            rise_blur, rise_taps)
from tests import tiny


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def brightness_model(weight: float, shape=(4, 4, 1)):
    """logits (0, w S), S the sum of the pixels: p(class 1) = sigmoid(w S)."""
    d = int(np.prod(shape))
    return tiny.fixed_dense(shape, np.tile([[0.0, weight]], (d, 1)), name="brightness")


def test_rise_blur_is_scipys_kernel_as_a_zero_padded_convolution():
    delta = np.zeros((11, 11))
    delta[5, 5] = 1.0
    kernel = ndimage.gaussian_filter(delta, 5)  # RISE's gkern(11, 5)
    np.testing.assert_allclose(np.outer(rise_taps(), rise_taps()), kernel, rtol=1e-5, atol=1e-8)
    x = tiny.images(2, (9, 13, 2), seed=1)
    expected = np.stack([np.stack([ndimage.convolve(x[i, ..., c].astype(np.float64), kernel, mode="constant")
                                   for c in range(2)], axis=-1) for i in range(2)])
    np.testing.assert_allclose(rise_blur(x), expected, rtol=1e-5, atol=1e-6)


def test_pixel_counts_of_both_presets():
    np.testing.assert_array_equal(curve_counts(64, "rise", step=8), np.arange(9) * 8)
    np.testing.assert_array_equal(curve_counts(10, "rise", step=4), [0, 4, 8, 10])
    np.testing.assert_array_equal(curve_counts(64, "xplique"), np.linspace(0, 64, 11).astype(np.int32))
    np.testing.assert_array_equal(curve_counts(16, "xplique", steps=4), [0, 4, 8, 12, 16])
    np.testing.assert_allclose(normalised_auc([[0.3] * 5, [1.0, 0.75, 0.5, 0.25, 0.0]]), [0.3, 0.5])


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_the_curves_of_a_model_with_a_known_response(mode):
    model = brightness_model(0.4)
    x = tiny.images(3, (4, 4, 1), seed=2)
    scores = x[..., 0]  # brightest first: deletion removes the largest contributions first
    result = causal_metric(model, x, scores, mode=mode, preset="rise", step=4, substrate=0.0)
    np.testing.assert_array_equal(result.counts, [0, 4, 8, 12, 16])
    np.testing.assert_array_equal(result.targets, [1, 1, 1])  # sigmoid(0.4 S) > 0.5: the top-1 class
    ordered = -np.sort(-x.reshape(3, -1), axis=1)
    changed = np.stack([ordered[:, :k].sum(axis=1) for k in result.counts], axis=1)
    total = x.reshape(3, -1).sum(axis=1)[:, None]
    expected = sigmoid(0.4 * (total - changed if mode == "deletion" else changed))
    np.testing.assert_allclose(result.curves, expected, rtol=1e-5)
    np.testing.assert_allclose(result.auc_per_image, normalised_auc(expected), rtol=1e-5)
    assert result.auc == pytest.approx(normalised_auc(expected).mean(), rel=1e-5)
    again = causal_metric(model, x, scores, mode=mode, preset="rise", step=4, substrate=0.0, batch_size=3)
    np.testing.assert_allclose(again.curves, result.curves, rtol=1e-6)


def xplique_reference(model, x, explanations, targets, mode, steps=10, baseline=0.0):
    """xplique 2.0's CausalFidelity.detailed_evaluate + evaluate, re-run literally (numpy)."""
    n, nb = len(x), int(np.prod(x.shape[1:-1]))
    inputs = x.reshape(n, nb, x.shape[-1])
    most_important = np.argsort(explanations.reshape(n, -1), axis=-1)[:, ::-1]
    baselines = (np.ones_like(x) * baseline).reshape(inputs.shape)
    start, end = (inputs, baselines) if mode == "deletion" else (baselines, inputs)
    scores = []
    for step in np.linspace(0, nb, steps + 1, dtype=np.int32):
        batch = start.copy()
        for i, ids in enumerate(most_important[:, :step]):
            batch[i, ids] = end[i, ids]
        predictions = (model(batch.reshape(x.shape).astype(np.float32), training=False).numpy() * targets).sum(axis=1)
        scores.append(predictions.mean())
    scores = np.array(scores)
    return np.mean(scores[:-1] + scores[1:]) * 0.5


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_the_xplique_preset_equals_xpliques_algorithm(mode):
    model = tiny.image_cnn()
    x = tiny.images(4, (8, 8, 3), seed=3)
    maps = tiny.gaussian(4, (8, 8), seed=4)  # continuous: no ties, so the two orders agree
    targets = np.array([0, 1, 2, 1])
    ours = causal_metric(model, x, maps, targets, mode=mode, preset="xplique").auc
    assert ours == pytest.approx(xplique_reference(model, x, maps, np.eye(3)[targets], mode), rel=1e-5)


def test_rise_insertion_starts_from_the_blurred_image_and_ends_at_the_image():
    model = tiny.image_cnn()
    x = tiny.images(3, (8, 8, 3), seed=5)
    maps = tiny.gaussian(3, (8, 8), seed=6)
    result = insertion(model, x, maps)
    clean = model.predict(x, verbose=0)
    top = clean.argmax(axis=1)
    assert result.substrate == "blur" and len(result.counts) == 9  # one row of 8 pixels per step
    np.testing.assert_allclose(result.curves[:, 0], model.predict(rise_blur(x), verbose=0)[np.arange(3), top],
                               rtol=1e-5)
    np.testing.assert_allclose(result.curves[:, -1], clean[np.arange(3), top], rtol=1e-5)
    dropped = deletion(model, x, maps)
    np.testing.assert_allclose(dropped.curves[:, -1], model.predict(np.zeros_like(x), verbose=0)[np.arange(3), top],
                               rtol=1e-5)


def test_the_metric_classes():
    model = tiny.image_cnn()
    x = tiny.images(3, (8, 8, 3), seed=5)
    maps = tiny.gaussian(3, (8, 8), seed=6)
    assert Deletion(model, x).name == "deletion (rise, gray)" and not Deletion.column.higher_is_better
    assert Insertion(model, x).name == "insertion (rise, blur)" and Insertion.column.higher_is_better
    assert Insertion(model, x, substrate=0.0).name == "insertion (rise, gray)"
    assert Insertion(model, x, preset="xplique").name == "insertion (xplique, gray)"
    value = Deletion(model, x, preset="xplique").evaluate(maps)
    assert value == pytest.approx(deletion(model, x, maps, preset="xplique").auc)


def test_bad_inputs_are_clear_errors_naming_the_argument():
    model = tiny.image_cnn()
    x = tiny.images(2, (8, 8, 3), seed=5)
    maps = tiny.gaussian(2, (8, 8), seed=6)
    with pytest.raises(ValueError, match="preset: unknown value 'torchray'"):
        deletion(model, x, maps, preset="torchray")
    with pytest.raises(ValueError, match="step: the xplique preset counts iterations"):
        deletion(model, x, maps, preset="xplique", step=3)
    with pytest.raises(ValueError, match="substrate: unknown value 'noise'"):
        insertion(model, x, maps, substrate="noise")
    with pytest.raises(ValueError, match="mode: unknown value"):
        causal_metric(model, x, maps, mode="flip")
    with pytest.raises(ValueError, match="scores: expected shape"):
        deletion(model, x, maps[:1])
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        deletion(model, x, maps, targets=[0, 3])
