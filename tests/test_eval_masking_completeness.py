"""Completeness and soundness (eval.completeness): levels and T_s, the formulas' known answers, g_s against a
direct evaluation, label rules, substrates, batching, the metric classes and clear errors."""
import numpy as np
import pytest

from eval.completeness import (FRACTIONS, Completeness, Soundness, completeness, completeness_soundness,
                               evaluated_labels, retained_sizes, soundness, top_s_masks)
from tests import tiny


def sum_model(weight: float = 0.2, shape=(4, 4, 1)):
    """Two classes, logits (w S, -w S) with S the sum of the pixels: class 0 gains with every kept pixel,
    class 1 loses (pixels >= 0, gray 0)."""
    d = int(np.prod(shape))
    return tiny.fixed_dense(shape, np.tile([[weight, -weight]], (d, 1)), name="sum_model")


def direct_curves(model, x, maps, labels, sizes, substrates):
    """g_s built with numpy masks, image by image, and scored by one model.predict: (N, L, S)."""
    n, n_labels = labels.shape
    composites, columns = [], []
    for i in range(n):
        for l in range(n_labels):
            flat = maps[i, l].ravel()
            order = np.lexsort((np.arange(flat.size), -flat))  # descending score, lower index first
            for s in sizes:
                keep = np.zeros(flat.size)
                keep[order[:s]] = 1
                keep = keep.reshape(maps.shape[2:])[..., None]
                composites.append(x[i] * keep + substrates[i] * (1 - keep))  # (R, H, W, C)
                columns.append(labels[i, l])
    rows = np.concatenate(composites).astype(np.float32)
    n_classes = int(model.outputs[0].shape[-1])
    probabilities = model.predict(rows, verbose=0, batch_size=1024).reshape(len(columns), -1, n_classes)
    return probabilities[np.arange(len(columns)), :, columns].mean(axis=1).reshape(n, n_labels, len(sizes))


def test_levels_are_the_papers_28_and_the_cifar_variant():
    np.testing.assert_array_equal(retained_sizes(784), np.arange(1, 29) * 28)
    np.testing.assert_array_equal(retained_sizes(64), (np.arange(1, 29) * 64) // 28)
    cifar = retained_sizes(1000, "cifar")
    assert cifar[0] == 200 and cifar[-1] == 600 and len(cifar) == len(FRACTIONS["cifar"]) == 21
    np.testing.assert_array_equal(retained_sizes(10, [0.05, 0.5, 1.0]), [1, 5, 10])


def test_top_s_breaks_ties_by_the_lower_index():
    scores = np.array([[[0.5, 0.5, 0.5], [0.9, 0.5, 0.1]]], np.float32)  # (1, 2, 3)
    masks = top_s_masks(scores, [1, 2, 4])
    np.testing.assert_array_equal(masks[0, 0], [[0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(masks[0, 1], [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(masks[0, 2], [[1, 1, 1], [1, 0, 0]])


def test_completeness_and_soundness_formulas():
    auc, p = np.array([0.9, 0.3, 0.0, 0.05, 0.2]), np.array([0.6, 0.6, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(completeness(auc, p), [1.0, 0.5, 1.0, 0.1, 1.0])
    np.testing.assert_allclose(completeness(auc, p, eps1=0.1), [1.0, 0.5, 1.0, 0.2, 1.0])
    np.testing.assert_allclose(soundness(auc, p), [0.6 / 0.9, 1.0, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(soundness(auc, p, eps2=0.0), [0.6 / 0.9, 1.0, 1.0, 1.0, 0.0])


def test_completeness_is_1_when_the_auc_exceeds_f_and_soundness_when_f_exceeds_the_auc():
    model = sum_model()
    x = tiny.images(3, (4, 4, 1), seed=3)
    maps = tiny.images(3, (4, 4), seed=4)
    result = completeness_soundness(model, x, np.stack([maps, maps], axis=1), labels=[0, 1])
    # Class 0's probability grows with every kept pixel: g_s <= f(x) (the full image is the last level).
    assert np.all(result.auc[:, 0] <= result.probability[:, 0] + 1e-9)
    np.testing.assert_array_equal(result.soundness[:, 0], 1.0)
    assert np.all(result.completeness[:, 0] < 1.0)
    # Class 1's shrinks: the masked inputs make it more likely than the full one, g_AUC >= f(x).
    assert np.all(result.auc[:, 1] >= result.probability[:, 1] - 1e-9)
    np.testing.assert_array_equal(result.completeness[:, 1], 1.0)
    assert np.all(result.soundness[:, 1] < 1.0)
    np.testing.assert_allclose(result.completeness[:, 0], result.auc[:, 0] / result.probability[:, 0])
    np.testing.assert_allclose(result.soundness[:, 1], np.maximum(0.1, result.probability[:, 1]) / result.auc[:, 1])
    assert result.worst_completeness == pytest.approx(result.completeness.min(axis=1).mean())
    assert result.worst_soundness == pytest.approx(result.soundness.min(axis=1).mean())
    np.testing.assert_allclose(result.curves[:, :, -1], result.probability, rtol=1e-6)  # s = d: the image itself


@pytest.mark.parametrize("substrate", ["gray", "random"])
def test_base_metric_equals_a_direct_evaluation_for_any_batch_size(substrate):
    model = tiny.image_cnn()
    x, pool = tiny.images(2, (8, 8, 3), seed=1), tiny.images(5, (8, 8, 3), seed=2)
    maps = tiny.gaussian(2, (2, 8, 8), seed=3)
    options = dict(labels="top2", substrate=substrate, fractions=[0.25, 0.5, 1.0], seed=7)
    if substrate == "random":
        options.update(pool=pool, n_random=3)
    result = completeness_soundness(model, x, maps, **options, batch_size=5)
    sizes = [16, 32, 64]
    if substrate == "gray":
        substrates = np.zeros((2, 1, 8, 8, 3), np.float32)
    else:
        substrates = np.stack([pool[np.random.default_rng([7, i]).choice(5, 3, replace=False)] for i in range(2)])
    expected = direct_curves(model, x, maps, result.labels, sizes, substrates)
    np.testing.assert_allclose(result.curves, expected, rtol=1e-5, atol=1e-7)
    again = completeness_soundness(model, x, maps, **options, batch_size=1)
    np.testing.assert_allclose(again.curves, result.curves, rtol=1e-6, atol=1e-8)
    order = np.argsort(-model.predict(x, verbose=0), axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(result.labels, order)


def test_label_rules_and_the_class_subset():
    probabilities = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
    np.testing.assert_array_equal(evaluated_labels(probabilities, "top2"), [[1, 2], [2, 0]])
    np.testing.assert_array_equal(evaluated_labels(probabilities, "top1"), [[1], [2]])
    np.testing.assert_array_equal(evaluated_labels(probabilities, "all"), [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(evaluated_labels(probabilities, "top2", class_subset=[0, 2]), [[2, 0], [2, 0]])
    np.testing.assert_array_equal(evaluated_labels(probabilities, [2, 0]), [[2, 0], [2, 0]])
    model = tiny.image_cnn()
    x = tiny.images(2, (8, 8, 3), seed=1)
    maps = tiny.gaussian(2, (2, 8, 8), seed=3)
    result = completeness_soundness(model, x, maps, labels="all", class_subset=[0, 2], fractions=[1.0])
    clean = model.predict(x, verbose=0)[:, [0, 2]]
    np.testing.assert_allclose(result.probability, clean / clean.sum(axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(result.probability.sum(axis=1), 1.0, rtol=1e-6)


def test_the_metric_classes_explain_each_label_and_report_both_values():
    from masking.optimiser import MaskOptimisation

    model = tiny.image_cnn()
    x, pool = tiny.images(2, (8, 8, 3), seed=1), tiny.images(6, (8, 8, 3), seed=2)
    explainer = MaskOptimisation(model, steps=4, distractors=2, verbose=0).fit(pool)
    metric = Completeness(model, x, substrate="random", pool=pool, n_random=2, fractions=[0.5, 1.0])
    assert metric.name == "completeness (random image)" and metric.higher_is_better
    result = metric.detailed_evaluate(explainer)
    maps = explainer.explain_labels(x, result.result.labels)
    direct = completeness_soundness(model, x, maps, labels=result.result.labels, substrate="random", pool=pool,
                                    n_random=2, fractions=[0.5, 1.0])
    assert result.value == pytest.approx(direct.worst_completeness)
    assert result.details["soundness"] == pytest.approx(direct.worst_soundness)
    sound = Soundness(model, x, fractions=[0.5, 1.0])
    assert sound.name == "soundness (gray)"
    gradient_maps = tiny.gaussian(2, (8, 8), seed=4)
    assert 0.0 <= Soundness(model, x, targets=[0, 1], fractions=[1.0]).evaluate(gradient_maps) <= 1.0


def test_bad_inputs_are_clear_errors_naming_the_argument():
    model = tiny.image_cnn()
    x = tiny.images(2, (8, 8, 3), seed=1)
    maps = tiny.gaussian(2, (2, 8, 8), seed=3)
    with pytest.raises(ValueError, match=r"eps1: expected a number in \[0, 1\], got 1.5"):
        completeness_soundness(model, x, maps, eps1=1.5)
    with pytest.raises(ValueError, match=r"eps2: expected a number in \[0, 1\], got -0.1"):
        Soundness(model, x, eps2=-0.1)
    with pytest.raises(ValueError, match="pool: substrate='random' needs a pool"):
        completeness_soundness(model, x, maps, substrate="random")
    with pytest.raises(ValueError, match="pool: expected images of shape"):
        completeness_soundness(model, x, maps, substrate="random", pool=np.zeros((4, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="n_random: expected at most the pool size 3"):
        completeness_soundness(model, x, maps, substrate="random", pool=x[:1].repeat(3, 0), n_random=4)
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 2\]"):
        completeness_soundness(model, x, maps, labels=[0, 3])
    with pytest.raises(ValueError, match="scores: expected one map per evaluated label"):
        completeness_soundness(model, x, maps, labels="all")
    with pytest.raises(ValueError, match="fractions: expected a preset"):
        completeness_soundness(model, x, maps, fractions=[0.0, 0.5])
    with pytest.raises(ValueError, match="substrate: unknown value 'grey'"):
        completeness_soundness(model, x, maps, substrate="grey")
