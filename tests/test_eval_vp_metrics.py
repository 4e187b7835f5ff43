"""VP's metrics (eval.consistency, eval.stability, eval.perturbation_curves) and the VP suite: known answers,
batch-size invariance, the registry's resolution parameters and bad inputs."""
import logging

import numpy as np
import pytest
import tensorflow as tf

from eval import harness, registry
from eval.consistency import (NO_RESOLUTION, RESOLUTION_PARAMETER, Consistency, consistency, consistency_draws,
                              minmax, no_resolution_reason, pair_scores, resolution_factory, resolution_parameter,
                              ssim_window)
from eval.perturbation_curves import PerturbationCurves, check_levels, perturbation_curves, removal_counts
from eval.stability import Stability, local_lipschitz, normalize_by_max
from eval.suites import VPSuite, select_samples
from tests import tiny

# ------------------------------------------------------------------------------------------ consistency


def test_identical_maps_have_ssim_one_pearson_one_and_capped_psnr():
    maps = tiny.gaussian(6, (12, 12), seed=1)
    result = consistency({1: maps, 2: maps.copy(), 4: maps * 3.0 + 1.0}, n_samples=4, repeats=3)
    assert result.mean["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result.mean["pc"] == pytest.approx(1.0, abs=1e-9)
    assert result.mean["psnr"] == pytest.approx(100.0)  # min-max makes 3 m + 1 identical to m: MSE 0 -> the cap
    assert result.std == {"ssim": pytest.approx(0.0, abs=1e-6), "pc": pytest.approx(0.0, abs=1e-9), "psnr": 0.0}
    assert consistency({1: maps, 2: maps}, n_samples=4, psnr_cap=60.0).mean["psnr"] == pytest.approx(60.0)


def test_pair_scores_match_tensorflow_and_numpy():
    a, b = minmax(tiny.gaussian(4, (12, 12), seed=2)), minmax(tiny.gaussian(4, (12, 12), seed=3))
    scores = pair_scores(a, b)
    expected_ssim = tf.image.ssim(a[..., None].astype(np.float32), b[..., None].astype(np.float32), 1.0,
                                  filter_size=11, filter_sigma=1.5).numpy()
    np.testing.assert_allclose(scores["ssim"], expected_ssim, rtol=1e-6)
    expected_psnr = tf.image.psnr(a[..., None], b[..., None], 1.0).numpy()
    np.testing.assert_allclose(scores["psnr"], expected_psnr, rtol=1e-6)
    np.testing.assert_allclose(scores["pc"], [np.corrcoef(u.ravel(), v.ravel())[0, 1] for u, v in zip(a, b)])


def test_ssim_window_shrinks_on_small_maps_and_constant_maps_have_undefined_pearson():
    assert ssim_window(28, 28) == (11, 1.5)
    assert ssim_window(8, 9) == (7, pytest.approx(1.5 * 7 / 11))
    assert ssim_window(4, 4) == (3, pytest.approx(1.5 * 3 / 11))
    maps = tiny.gaussian(3, (8, 8), seed=4)
    constant = np.ones((3, 8, 8))
    result = consistency({1: maps, 2: constant}, n_samples=3, repeats=1)
    assert result.window == 7 and result.n_undefined_pc == 3 and np.isnan(result.mean["pc"])
    assert np.all(minmax(constant) == 0.0)


def test_maps_are_resized_to_size_and_averaged_per_sample_then_per_draw():
    rng = np.random.default_rng(5)
    maps = {1: rng.normal(size=(10, 8, 8)), 2: rng.normal(size=(10, 4, 4)), 4: rng.normal(size=(10, 2, 2))}
    result = consistency(maps, size=(8, 8), n_samples=4, repeats=3, seed=7)
    draws = consistency_draws(10, 4, 3, 7)
    np.testing.assert_array_equal(result.draws, draws)
    assert all(len(set(row)) == 4 for row in draws) and not np.array_equal(draws[0], draws[1])
    up = {m: tf.image.resize(v[..., None], (8, 8)).numpy()[..., 0] for m, v in maps.items()}
    pairs = [pair_scores(minmax(up[a]), minmax(up[b])) for a, b in ((1, 2), (1, 4), (2, 4))]
    per_sample = np.mean([p["ssim"] for p in pairs], axis=0)
    per_repeat = per_sample[draws].mean(axis=1)
    np.testing.assert_allclose(result.per_repeat["ssim"], per_repeat, rtol=1e-5)
    assert result.mean["ssim"] == pytest.approx(per_repeat.mean(), rel=1e-5)
    assert result.std["ssim"] == pytest.approx(per_repeat.std(ddof=1), rel=1e-4)
    assert set(result.per_pair["psnr"]) == {"1-2", "1-4", "2-4"}
    assert consistency(maps, size=(8, 8), n_samples=50).draws.shape == (4, 10)  # a small pool: all of it


class Pooled:
    """A toy method at upsample size m: the channel mean of x average-pooled m x m, upsampled bilinearly."""

    def __init__(self, m):
        self.m, self.calls = m, []

    def explain(self, x, targets=None, *, batch_size=None):
        self.calls.append(len(x))
        pooled = tf.nn.avg_pool2d(np.asarray(x).mean(axis=-1, keepdims=True), self.m, self.m, "VALID")
        return tf.image.resize(pooled, np.asarray(x).shape[1:3]).numpy()[..., 0]


def test_consistency_class_explains_only_the_drawn_samples_with_each_factory_model():
    x = tiny.images(12, (8, 8, 1), seed=6)
    built = {}

    def make(m):
        built[m] = Pooled(m)
        return built[m]

    metric = Consistency(None, x, sizes=(4, 1, 2), n_samples=3, repeats=2, seed=1, measure="pc")
    result = metric.detailed_evaluate(make)
    used = np.unique(consistency_draws(12, 3, 2, 1))
    assert sorted(built) == [1, 2, 4] and all(b.calls == [len(used)] for b in built.values())
    expected = consistency({m: Pooled(m).explain(x) for m in (1, 2, 4)}, n_samples=3, repeats=2, seed=1)
    assert metric.name == "consistency PC" and result.value == pytest.approx(expected.mean["pc"])
    assert result.details["mean"]["ssim"] == pytest.approx(expected.mean["ssim"])
    given = {m: Pooled(m).explain(x) for m in (1, 2, 4)}
    assert metric.evaluate(given) == pytest.approx(expected.mean["pc"])


def test_consistency_bad_inputs_name_the_argument():
    maps = tiny.gaussian(3, (8, 8))
    with pytest.raises(ValueError, match="sizes"):
        consistency({1: maps})
    with pytest.raises(ValueError, match="maps"):
        consistency({1: maps, 2: maps[:, :4, :4]})
    with pytest.raises(ValueError, match="maps"):
        consistency({1: maps, 2: maps[:2]})
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"maps\[2\]"):
        consistency({1: maps, 2: bad})
    with pytest.raises(ValueError, match="size"):
        consistency({1: maps, 2: maps}, size=(8,))
    with pytest.raises(ValueError, match="sizes"):
        Consistency(None, tiny.images(3), sizes=(2, 2))
    with pytest.raises(ValueError, match="measure"):
        Consistency(None, tiny.images(3), measure="mse")
    with pytest.raises(ValueError, match="make"):
        Consistency(None, tiny.images(3), sizes=(1, 2), n_samples=2).evaluate({1: maps})


def test_registry_methods_are_built_at_each_upsample_size():
    model = tiny.image_cnn((8, 8, 1), n_classes=2)
    assert resolution_parameter("mp").name == "upsample" and resolution_parameter("vp").name == "upsample"
    assert resolution_parameter("nvp").name == "upsample" and resolution_parameter("saliency") is None
    assert "gradient" in no_resolution_reason("saliency") and no_resolution_reason("ep") == ""
    assert set(NO_RESOLUTION).isdisjoint(RESOLUTION_PARAMETER)
    rise = resolution_factory("rise", model, hyper={"n_masks": 8, "verbose": 0})
    assert [rise(m).grid for m in (1, 2, 4)] == [8, 4, 2] and rise(2).n_masks == 8
    assert resolution_factory("mp", model, hyper={"steps": 2})(4).mask_shape == (2, 2)
    built = registry.get("ep", model, step=2, steps=1)
    assert built.get_config()["sigma"] == 6.0
    make = resolution_factory(built, model)
    assert make(2) is built and make(1).step == 1 and make(1).sigma == 3.0  # sigma follows the step again
    assert make(1).steps == 1
    with pytest.raises(ValueError, match="method"):
        resolution_factory("saliency", model)
    with pytest.raises(ValueError, match="fit"):
        resolution_factory("cxplain", model)


# -------------------------------------------------------------------------------------------- stability


def test_a_constant_explainer_has_lipschitz_zero():
    x = tiny.images(4, (4, 4, 1), seed=1)
    result = local_lipschitz(lambda xb: np.full((len(xb), 4, 4), 3.0), x, n_draws=20)
    assert result.mean == 0.0 and result.std == 0.0 and np.all(result.ratios == 0.0)


def test_a_linear_explainer_is_bounded_by_the_spectral_norm_and_ascent_reaches_it():
    a = np.random.default_rng(0).normal(size=(4, 4))
    sigma_max = np.linalg.norm(a, 2)

    def linear(xb):
        return (np.asarray(xb, np.float64).reshape(len(xb), -1) @ a.T).reshape(len(xb), 2, 2)

    x = tiny.images(3, (2, 2, 1), seed=2)
    result = local_lipschitz(linear, x, normalize="none", n_draws=3000, seed=1)
    assert np.all(result.ratios <= sigma_max * (1 + 1e-6))
    assert np.all(result.per_sample >= 0.97 * sigma_max)
    a_t = tf.constant(a.T, tf.float32)

    def differentiable(xb, targets):
        return tf.reshape(tf.reshape(xb, [tf.shape(xb)[0], -1]) @ a_t, [-1, 2, 2])

    climbed = local_lipschitz(linear, x, normalize="none", n_draws=5, ascent_steps=60, differentiable=differentiable)
    np.testing.assert_allclose(climbed.ascent, sigma_max, rtol=1e-4)
    assert np.all(climbed.per_sample >= climbed.ratios.max(axis=1))
    with pytest.raises(ValueError, match="differentiable"):
        local_lipschitz(linear, x, normalize="none", n_draws=2, ascent_steps=2,
                        differentiable=lambda xb, t: 2.0 * differentiable(xb, t))


class Recorder:
    """An explainer whose map is x's first channel squared; it records the inputs and targets it gets."""

    def __init__(self):
        self.inputs, self.targets = [], []

    def explain(self, x, targets=None, *, batch_size=None):
        self.inputs.append(np.asarray(x))
        self.targets.append(None if targets is None else np.asarray(targets))
        return np.asarray(x)[..., 0] ** 2


def test_draws_are_batched_seeded_clipped_and_explained_for_the_clean_target():
    x = tiny.images(3, (4, 4, 1), seed=3)
    first = local_lipschitz(Recorder(), x, targets=[2, 0, 1], n_draws=7, batch_size=5, seed=4)
    recorder = Recorder()
    second = local_lipschitz(recorder, x, targets=[2, 0, 1], n_draws=7, batch_size=100, seed=4, clip=(0.0, 1.0))
    other = local_lipschitz(Recorder(), x, targets=[2, 0, 1], n_draws=7, batch_size=100, seed=4)
    np.testing.assert_allclose(first.ratios, other.ratios, rtol=1e-12)
    assert len(recorder.inputs) == 2  # the clean batch, then all 21 perturbations in one call
    np.testing.assert_array_equal(recorder.targets[1], np.repeat([2, 0, 1], 7))
    assert recorder.inputs[1].min() >= 0.0 and recorder.inputs[1].max() <= 1.0
    assert not np.allclose(second.ratios, first.ratios)


def test_normalize_by_max_divides_each_map_by_its_largest_magnitude():
    maps = np.array([[[1.0, -4.0]], [[0.0, 0.0]], [[2.0, 0.5]]])
    np.testing.assert_allclose(normalize_by_max(maps), [[[0.25, -1.0]], [[0.0, 0.0]], [[1.0, 0.25]]])
    np.testing.assert_allclose(normalize_by_max(tf.constant(maps)).numpy(), normalize_by_max(maps))


def test_stability_class_and_bad_inputs():
    x = tiny.images(5, (4, 4, 1), seed=5)
    metric = Stability(None, x, [0, 1, 0, 1, 0], n_draws=4, n_inputs=3)
    result = metric.detailed_evaluate(Recorder())
    assert metric.name == "Lipschitz" and len(result.details["per_sample"]) == 3 and result.value > 0
    assert result.details["search"] == "random" and not metric.higher_is_better
    with pytest.raises(TypeError, match="explainer_or_scores"):
        metric.evaluate(np.zeros((5, 4, 4)))
    for kwargs, name in (({"std": 0.0}, "std"), ({"std": -1.0}, "std"), ({"clip": (1.0, 0.0)}, "clip"),
                         ({"ascent_steps": 3}, "differentiable"), ({"normalize": "sum"}, "normalize"),
                         ({"n_draws": 0}, "n_draws")):
        with pytest.raises(ValueError, match=name):
            local_lipschitz(Recorder(), x, **kwargs)
    with pytest.raises(ValueError, match="std"):
        Stability(None, x, std=0)
    with pytest.raises(ValueError, match="explain_fn"):
        local_lipschitz(lambda xb: np.full((len(xb), 4, 4), np.nan), x, n_draws=2)


# ------------------------------------------------------------------------------------ perturbation curves

def _corner_case(n=5, s=1.0):
    """A model of 4 x 4 images reading only the top-left 2 x 2 pixels (class 1's logit = s x their sum) and a
    map that ranks exactly those pixels first."""
    model = tiny.corner_model(4, 2, [0.0, s], [0.0, 0.0])
    x = tiny.images(n, (4, 4, 1), seed=1)
    maps = np.zeros((n, 4, 4))
    maps[:, :2, :2] = [[4.0, 3.0], [2.0, 1.0]]
    return model, x, maps


def test_a_map_ranking_the_pixels_the_model_reads_gives_the_known_curves():
    s = 1.0
    model, x, maps = _corner_case(s=s)
    result = perturbation_curves(model, x, maps, np.ones(5, int), levels=[0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(result.counts, [0, 4, 8, 12, 16])
    z = s * x[:, :2, :2, 0].sum(axis=(1, 2))  # class 1's logit; class 0's is 0
    gray = 2.0 * s  # the four pixels at 0.5
    d = z - gray
    zeros = np.zeros(5)
    np.testing.assert_allclose(result.per_sample_top["logit"], np.stack([zeros, d, d, d, d], 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.per_sample_low["logit"], np.stack([zeros] * 4 + [d], 1), rtol=1e-5, atol=1e-6)

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    dp = sigmoid(z) - sigmoid(gray)
    np.testing.assert_allclose(result.per_sample_top["probability"][:, 1], dp, rtol=1e-4, atol=1e-6)
    p, q = np.stack([1 - sigmoid(z), sigmoid(z)], 1), np.array([1 - sigmoid(gray), sigmoid(gray)])
    np.testing.assert_allclose(result.per_sample_top["kl"][:, 2], (p * np.log(p / q)).sum(axis=1), rtol=1e-4,
                               atol=1e-7)
    assert result.area["logit"] == pytest.approx(0.75 * d.mean(), rel=1e-5)  # trapezoid of [0, d, d, d, 0]
    assert result.area["probability"] == pytest.approx(0.75 * dp.mean(), rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(result.top["logit"], result.per_sample_top["logit"].mean(axis=0))


def test_constant_and_reversed_maps_and_batch_size_invariance():
    model, x, maps = _corner_case()
    constant = perturbation_curves(model, x, np.zeros_like(maps), np.ones(5, int))
    assert all(value == 0.0 for value in constant.area.values())  # ties by index: the same pixels both ways
    reversed_ = perturbation_curves(model, x, -maps, np.ones(5, int))
    good = perturbation_curves(model, x, maps, np.ones(5, int), batch_size=23)
    assert reversed_.area["logit"] < 0 < good.area["logit"]
    tiny_batches = perturbation_curves(model, x, maps, np.ones(5, int), batch_size=1)
    for kind in good.kinds:
        np.testing.assert_allclose(tiny_batches.per_sample_top[kind], good.per_sample_top[kind], rtol=1e-6)
        np.testing.assert_allclose(tiny_batches.per_sample_low[kind], good.per_sample_low[kind], rtol=1e-6)
    np.testing.assert_array_equal(good.counts, [0, 2, 3, 5, 6, 8, 10, 11, 13, 14, 16])
    np.testing.assert_array_equal(removal_counts(check_levels(None), 784)[:3], [0, 78, 157])
    predicted = perturbation_curves(model, x, maps, kinds="probability")  # targets None: the prediction
    np.testing.assert_array_equal(predicted.targets, model.predict(x, verbose=0).argmax(axis=1))


def test_perturbation_metric_class_takes_an_explainer():
    model, x, maps = _corner_case()

    class Fixed:
        def explain(self, xb, targets=None, *, batch_size=None):
            return maps[:len(xb)]

    metric = PerturbationCurves(model, x, np.ones(5, int), kind="kl")
    result = metric.detailed_evaluate(Fixed())
    assert metric.name == "perturbation (KL)" and metric.higher_is_better
    assert result.value == pytest.approx(perturbation_curves(model, x, maps, np.ones(5, int)).area["kl"])
    assert set(result.details["top"]) == {"kl", "probability", "logit"}


def test_perturbation_bad_inputs_name_the_argument():
    model, x, maps = _corner_case()
    for kwargs, name in (({"levels": [0.0, 1.5]}, "levels"), ({"levels": [-0.1, 0.5]}, "levels"),
                         ({"levels": [0.5, 0.2]}, "levels"), ({"levels": [0.3]}, "levels"),
                         ({"kinds": ["probability", "entropy"]}, "kinds"), ({"gray": [0.5, 0.5, 0.5]}, "gray")):
        with pytest.raises(ValueError, match=name):
            perturbation_curves(model, x, maps, **kwargs)
    bad = maps.copy()
    bad[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="scores"):
        perturbation_curves(model, x, bad)
    with pytest.raises(ValueError, match="kind"):
        PerturbationCurves(model, x, kind="entropy")
    with pytest.raises(ValueError, match="output"):  # no logits to read
        perturbation_curves(tiny.fixed_dense((4, 4, 1), np.ones((16, 2)), softmax=False), x, maps, kinds="logit")


# ------------------------------------------------------------------------------------ samples and the suite

def test_select_samples_keeps_confident_correct_ones():
    model = tiny.fixed_dense((2,), np.eye(2))
    x = np.array([[3, 0], [0, 3], [0.1, 0], [0, 0], [0, 3], [2, 0]], np.float32)
    y = np.array([0, 1, 0, 0, 0, 0])  # [3] has p = 0.5 exactly, [4] is misclassified
    np.testing.assert_array_equal(select_samples(model, x, y, n=None), [0, 1, 2, 5])
    np.testing.assert_array_equal(select_samples(model, x, y, n=2, seed=None), [0, 1])
    np.testing.assert_array_equal(select_samples(model, x, y, n=3, threshold=0.85, seed=None), [0, 1, 5])
    drawn = select_samples(model, x, y, n=2, seed=3)
    assert len(drawn) == 2 and set(drawn) <= {0, 1, 2, 5} and np.all(np.diff(drawn) > 0)
    np.testing.assert_array_equal(drawn, select_samples(model, x, np.eye(2)[y], n=2, seed=3))
    with pytest.raises(ValueError, match="threshold"):
        select_samples(model, x, y, threshold=1.0)


@pytest.fixture(scope="module")
def suite_setup():
    model = tiny.image_cnn((8, 8, 1), n_classes=2, hidden=4)
    x = tiny.images(12, (8, 8, 1), seed=9)
    y = model.predict(x, verbose=0).argmax(axis=1)
    suite = VPSuite(model, x, y, n_samples=6, consistency_samples=4, consistency_repeats=2, stability_samples=3,
                    n_draws=4, sanity_n=2, batch_size=64)
    return model, suite


def test_vp_suite_scores_a_method_with_a_resolution_and_skips_consistency_without_one(suite_setup, caplog):
    model, suite = suite_setup
    assert suite.consistency.sizes == (1, 2, 4) and len(suite.x) <= 6
    rise = harness.registry_candidate("rise", hyper={"n_masks": 16, "verbose": 0})
    saliency = harness.registry_candidate("saliency", hyper={"verbose": 0})
    with caplog.at_level(logging.INFO, logger="eval"):
        rows = harness.evaluate(suite, [rise, saliency], seeds=(0,))
    scored, skipped = rows[0], rows[1]
    assert set(suite.columns()) <= set(scored.metrics) | {"SSIM, all layers random"}
    for key in ("consistency SSIM", "consistency PC", "consistency PSNR", "Lipschitz", "perturbation (probability)",
                "perturbation (logit)", "perturbation (KL)", "seconds per image", "SSIM, all layers random"):
        assert np.isfinite(scored.metrics[key]), key
    assert scored.details["consistency"]["sizes"] == [1, 2, 4]
    assert skipped.metrics["consistency SSIM"] is None and "gradient" in skipped.details["consistency"]["skipped"]
    assert np.isfinite(skipped.metrics["Lipschitz"]) and len(scored.details["perturbation"]["top"]["logit"]) == 11
    columns = suite.columns()
    assert columns["Lipschitz"].higher_is_better is False and columns["consistency PSNR"].higher_is_better
    assert columns["seconds per image"].higher_is_better is False


def test_vp_suite_takes_an_explicit_factory_and_checks_its_arguments(suite_setup):
    model, suite = suite_setup
    result = suite.evaluate(Pooled(1), make=Pooled)
    assert 0.0 < result.metrics["consistency SSIM"] <= 1.0 and "SSIM, all layers random" not in result.metrics
    with pytest.raises(ValueError, match="levels"):
        VPSuite(model, tiny.images(4, (8, 8, 1)), np.zeros(4, int), levels=[0, 2], select=False)
    with pytest.raises(ValueError, match="no sample"):
        VPSuite(model, tiny.images(4, (8, 8, 1)), np.zeros(4, int), threshold=0.99)
