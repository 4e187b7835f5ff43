"""Known answers of the perturbation baselines (RISE, LIME, Kernel SHAP, meaningful perturbation, INFD) on
tiny models, batch / seed invariances, bad hyper-parameters, and (optional) agreement with the lime and shap
packages."""
import itertools
import math

import keras
import numpy as np
import pytest

from eval import registry
from tests import tiny


def _g(v):
    """The per-feature function of the additive model: g(v) = sin(3 v) + v^2, g(0) = 0."""
    return np.sin(3 * v) + v ** 2


def _rows(d=6, seed=1, **options):
    """A linear-softmax model of rows (d,) (tiny.linear_softmax) and its kernel (d, 2)."""
    model = tiny.linear_softmax((d,), seed=seed, **options)
    return model, tiny.kernel_of(model)[0]


#: A model whose logit difference is 2 * 0.1 * (sum of the top-left 4 x 4 pixels of a 16 x 16 image).
REGION = dict(size=16, region=4, weights=[-0.1, 0.1], bias=[0.0, 0.0])


def _exact_shapley(model, x, baseline, target):
    """Shapley values of the features of x (d,) by the subset formula, the absent ones set to baseline."""
    d = len(x)
    subsets = np.array(list(itertools.product([0, 1], repeat=d)), np.float32)
    values = model.predict(subsets * x + (1 - subsets) * baseline, verbose=0)[:, target]
    value = {tuple(s.astype(int)): v for s, v in zip(subsets, values)}
    phi = np.zeros(d)
    for s in value:
        for i in range(d):
            if s[i] == 0:
                k = sum(s)
                with_i = s[:i] + (1,) + s[i + 1:]
                phi[i] += math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) * (value[with_i] - value[s])
    return phi


# -------------------------------------------------------------------------------------------- Kernel SHAP

@pytest.mark.parametrize("n_samples", [None, 40])  # None: all 62 coalitions enumerated; 40: sampled pairs
def test_kernel_shap_recovers_an_additive_model(n_samples):
    model, w = _rows(seed=0, transform=lambda v: keras.ops.sin(3 * v) + v ** 2)  # logits linear in _g(x)
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    targets = np.array([0, 1, 1])
    shap = registry.get("kernel_shap", model, n_samples=n_samples, output="logit", verbose=0)
    assert shap.exact == (n_samples is None)
    expected = w[:, targets].T * (_g(x) - _g(0.0))
    np.testing.assert_allclose(shap.explain(x, targets), expected, rtol=1e-4, atol=1e-5)


def test_kernel_shap_enumeration_is_the_exact_shapley_value_and_sampling_is_efficient():
    model = tiny.tabular_mlp(4, 3, seed=2, activation="tanh")
    x = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    exact = registry.get("kernel_shap", model, baseline=0.5, verbose=0).explain(x, [0, 2])
    for row, target, phi in zip(x, [0, 2], exact):
        np.testing.assert_allclose(phi, _exact_shapley(model, row, 0.5, target), atol=1e-5)
    # Sampling (fewer samples than the 14 coalitions): the efficiency constraint still holds exactly.
    sampled = registry.get("kernel_shap", model, baseline=0.5, n_samples=6, verbose=0).explain(x, [0, 2])
    p = model.predict(np.concatenate([x, np.full((1, 4), 0.5, np.float32)]), verbose=0)
    np.testing.assert_allclose(sampled.sum(axis=1), p[:2, [0, 2]].diagonal() - p[2, [0, 2]], atol=1e-5)


def test_kernel_shap_image_tiles_add_up_per_tile(image_model):
    model, x = image_model
    shap = registry.get("kernel_shap", model, patch=4, verbose=0)  # 2 x 2 tiles, enumerated
    assert shap.n_features == 4 and shap.exact
    scores = shap.explain(x, [0, 1, 2])
    # Every pixel of a tile carries the tile's value; the four tile values add up to f(x) - f(0).
    tiles = scores[:, ::4, ::4]
    np.testing.assert_allclose(scores, np.repeat(np.repeat(tiles, 4, axis=1), 4, axis=2))
    p_x, p_0 = model.predict(x, verbose=0), model.predict(np.zeros_like(x[:1]), verbose=0)[0]
    rows = np.arange(3)
    np.testing.assert_allclose(tiles.sum(axis=(1, 2)), p_x[rows, [0, 1, 2]] - p_0[[0, 1, 2]], atol=1e-5)


# ---------------------------------------------------------------------------------------------------- LIME

def test_lime_with_a_flat_kernel_is_the_linear_model_times_the_deletion():
    model, w = _rows()
    x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    targets = np.array([1, 0, 1])
    lime = registry.get("lime", model, kernel_width=1e6, ridge=0.0, baseline=0.25, n_samples=200, output="logit",
                         verbose=0)
    np.testing.assert_allclose(lime.explain(x, targets), w[:, targets].T * (x - 0.25), rtol=1e-4, atol=1e-5)


def test_lime_default_kernel_keeps_the_signs_and_order_of_a_linear_model():
    model, w = _rows(d=8)
    x = np.random.default_rng(3).normal(size=(2, 8)).astype(np.float32)
    scores = registry.get("lime", model, output="logit", verbose=0).explain(x, [0, 1])
    truth = w[:, [0, 1]].T * x
    np.testing.assert_array_equal(np.sign(scores), np.sign(truth))
    for s, t in zip(scores, truth):
        np.testing.assert_array_equal(np.argsort(s), np.argsort(t))


def test_lime_kernel_widths_and_distances():
    model, _ = _rows()
    lime = registry.get("lime", model, distance="euclidean", verbose=0)
    assert lime.kernel_width == pytest.approx(0.75 * math.sqrt(6))
    z = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]], np.float32)
    squared_distance = np.array([0.0, 2.0, 6.0])  # the number of removed features
    np.testing.assert_allclose(lime.coalition_weights(z).numpy(),
                               np.sqrt(np.exp(-squared_distance / lime.kernel_width ** 2)), rtol=1e-6)
    cosine = registry.get("lime", model, verbose=0)
    distance = np.array([0.0, 1 - math.sqrt(4 / 6), 1.0])  # cosine distance to the all-ones vector
    np.testing.assert_allclose(cosine.coalition_weights(z).numpy(), np.sqrt(np.exp(-distance ** 2 / 0.25 ** 2)),
                               rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- RISE

def test_rise_finds_the_only_region_the_model_reads():
    model = tiny.corner_model(**REGION)
    x = np.random.default_rng(4).uniform(0.5, 1.0, size=(2, 16, 16, 1)).astype(np.float32)
    scores = registry.get("rise", model, n_masks=500, grid=4, verbose=0).explain(x, [1, 1])
    for s in scores:
        top = np.unravel_index(np.argsort(s, axis=None)[-8:], s.shape)
        assert np.all((top[0] < 6) & (top[1] < 6)), top  # the top 8 pixels: in the 4 x 4 region or at its edge
        assert s[:4, :4].mean() > s[8:, 8:].mean() + 0.02


def test_rise_of_a_constant_model_is_the_constant():
    """f = c everywhere: S(u) = c E[M(u)] / p, i.e. about c (p = 0.5; the mean mask value is ~p)."""
    model = tiny.fixed_dense((6,), np.zeros((6, 2)), [0.0, 0.0])
    scores = registry.get("rise", model, n_masks=2000, grid=3, verbose=0).explain(np.ones((1, 6)), [0])
    np.testing.assert_allclose(scores, 0.5, atol=0.05)


# ------------------------------------------------------------------------------------ meaningful perturbation

def test_meaningful_perturbation_deletes_the_relevant_region():
    """Without TV the cells that cannot change the score keep m = 1 (the area term is flat there); the
    cells covering the region (and the neighbours the bilinear upsampling mixes into it) are deleted."""
    model = tiny.corner_model(**REGION)
    x = np.full((2, 16, 16, 1), 0.5, np.float32)
    mp = registry.get("meaningful_perturbation", model, steps=80, upsample=2, perturbation="constant", l1=1e-2,
                       tv=0.0, verbose=0)
    deletion = mp.explain(x, [1, 1])
    assert deletion.min() >= 0.0 and deletion.max() <= 1.0
    for d in deletion:
        assert d[:4, :4].mean() > 0.8
        assert d[8:, :].max() < 0.05 and d[:, 8:].max() < 0.05
    # The blur perturbation cannot change a constant image: nothing to delete, the mask stays 1.
    blurred = registry.get("meaningful_perturbation", model, steps=5, upsample=2, verbose=0).explain(x, [1, 1])
    np.testing.assert_allclose(blurred, 0.0, atol=1e-6)


def test_meaningful_perturbation_preservation_keeps_the_region():
    model = tiny.corner_model(**REGION)
    x = np.full((1, 16, 16, 1), 0.5, np.float32)
    kept = registry.get("meaningful_perturbation", model, steps=80, upsample=2, perturbation="constant",
                         game="preservation", l1=1e-2, tv=0.0, verbose=0).explain(x, [1])[0]
    assert kept[:4, :4].mean() > 0.8 and kept[8:, 8:].max() < 0.05


# ---------------------------------------------------------------------------------------------------- INFD

@pytest.mark.parametrize("hyper", [{}, {"sigma": 1.5}, {"baseline": "input", "sigma": 0.05}, {"clip": (-1.0, 1.0)}])
def test_infd_of_a_linear_model_is_its_weight_vector(hyper):
    """f linear: f(x) - f(x - I) = w^T I for every I, so the least-squares optimum is w, whatever the noise."""
    model, w = _rows()
    x = np.random.default_rng(5).normal(size=(3, 6)).astype(np.float32)
    targets = np.array([0, 1, 0])
    scores = registry.get("infd", model, n_samples=64, output="logit", verbose=0, **hyper).explain(x, targets)
    np.testing.assert_allclose(scores, w[:, targets].T, rtol=1e-3, atol=1e-4)


def test_infd_on_images_sums_the_channel_weights():
    model = tiny.linear_softmax((3, 4, 2), seed=6)
    w, _ = tiny.kernel_of(model)  # (3, 4, 2, 2)
    x = np.random.default_rng(6).uniform(size=(2, 3, 4, 2)).astype(np.float32)
    scores = registry.get("infd", model, n_samples=100, output="logit", verbose=0).explain(x, [1, 0])
    np.testing.assert_allclose(scores, np.stack([w[..., 1].sum(-1), w[..., 0].sum(-1)]), rtol=1e-3, atol=1e-4)


def test_infd_caps_its_chunk_by_the_gram_memory_and_scores_do_not_change(monkeypatch):
    """A 784-pixel model gets at most 27 inputs per chunk (128 MiB of float64 Gram matrices)."""
    import baselines.infd as infd_module

    big = tiny.linear_softmax((28, 28, 1))
    assert registry.get("infd", big, verbose=0).max_chunk == 27
    model, w = _rows()
    x = np.random.default_rng(7).normal(size=(5, 6)).astype(np.float32)
    reference = registry.get("infd", model, n_samples=64, output="logit", verbose=0).explain(x, 0, batch_size=5)
    monkeypatch.setattr(infd_module, "GRAM_BUDGET", 2 * 8 * 6 ** 2)  # two inputs per chunk
    capped = registry.get("infd", model, n_samples=64, output="logit", verbose=0)
    assert capped.max_chunk == 2
    np.testing.assert_allclose(capped.explain(x, 0, batch_size=5), reference, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- invariances and seeds

FAST = {
    "rise": {"n_masks": 20, "grid": 3},
    "lime": {"n_samples": 30, "patch": 3},
    "kernel_shap": {"n_samples": 30, "patch": 2},  # 16 features: sampled
    "meaningful_perturbation": {"steps": 4, "upsample": 2},
    "infd": {"n_samples": 40},
}


@pytest.mark.parametrize("name", sorted(FAST))
def test_batched_equals_one_by_one_and_seeds(name, image_model):
    model, x = image_model
    targets = [2, 0, 1]
    big = registry.get(name, model, verbose=0, **FAST[name])
    small_groups = {"internal_batch_size": 7} if name != "meaningful_perturbation" else {}
    one = registry.get(name, model, verbose=0, **FAST[name], **small_groups)
    reference = big.explain(x, targets, batch_size=4)
    np.testing.assert_allclose(one.explain(x, targets, batch_size=1), reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(big.explain(x, targets, batch_size=4), reference)
    if registry.spec(name).accepts("seed") and name != "meaningful_perturbation":
        other = registry.get(name, model, verbose=0, seed=1, **FAST[name]).explain(x, targets)
        assert np.abs(other - reference).max() > 1e-4


# -------------------------------------------------------------------------------- bad hyper-parameters

@pytest.mark.parametrize("name, hyper, error, match", [
    ("rise", {"n_masks": 0}, ValueError, "n_masks: expected an integer >= 1"),
    ("rise", {"grid": 9}, ValueError, "grid: expected at most the mask size"),
    ("rise", {"p": 0.0}, ValueError, r"p: expected a probability in \(0, 1\]"),
    ("lime", {"n_samples": 0}, ValueError, "n_samples: expected an integer >= 1"),
    ("lime", {"kernel_width": 0.0}, ValueError, "kernel_width: expected a finite number > 0"),
    ("lime", {"patch": 9}, ValueError, r"patch: expected at most 8 \(the input's size \(8, 8\)\)"),
    ("lime", {"distance": "l1"}, ValueError, "distance: unknown value 'l1'"),
    ("kernel_shap", {"n_samples": 0}, ValueError, "n_samples: expected an integer >= 1"),
    ("kernel_shap", {"patch": 0}, ValueError, "patch: expected an integer >= 1"),
    ("kernel_shap", {"baseline": "mean"}, TypeError, "baseline: expected a number"),
    ("meaningful_perturbation", {"steps": 0}, ValueError, "steps: expected an integer >= 1"),
    ("meaningful_perturbation", {"upsample": 9}, ValueError, "upsample: expected at most the input size"),
    ("meaningful_perturbation", {"blur_sigma": 5.0}, ValueError, "blur_sigma: the blur kernel"),
    ("meaningful_perturbation", {"perturbation": "constant", "blur_sigma": 1.0}, ValueError,
     "blur_sigma: only used with perturbation='blur'"),
    ("meaningful_perturbation", {"game": "insertion"}, ValueError, "game: unknown value 'insertion'"),
    ("infd", {"n_samples": 0}, ValueError, "n_samples: expected an integer >= 1"),
    ("infd", {"sigma": 0.0}, ValueError, "sigma: expected a finite number > 0"),
    ("infd", {"baseline": "blur"}, ValueError, "baseline: expected a finite number or 'input'"),
    ("infd", {"clip": (1.0, 0.0)}, ValueError, "clip: expected None or a pair"),
])
def test_bad_hyperparameters(name, hyper, error, match, image_model):
    with pytest.raises(error, match=match):
        registry.get(name, image_model[0], **hyper)


def test_patch_that_does_not_divide_gives_smaller_edge_tiles(image_model):
    lime = registry.get("lime", image_model[0], patch=3, n_samples=20, verbose=0)
    assert lime.n_features == 9  # tiles of 3, 3 and 2 pixels per axis
    scores = lime.explain(image_model[1][:1], [0])[0]
    assert len(np.unique(scores)) <= 9 and np.all(scores[6:, 6:] == scores[7, 7])


def test_perturbation_blur_needs_images():
    model, _ = _rows()
    with pytest.raises(ValueError, match="perturbation: unknown value 'blur'.*expected one of \\['constant'\\]"):
        registry.get("meaningful_perturbation", model, perturbation="blur")


# ------------------------------------------------------------------------------ the lime and shap packages

def test_kernel_shap_matches_the_shap_package():
    shap = pytest.importorskip("shap")
    model = tiny.tabular_mlp(5, 3, seed=2, activation="tanh")
    x = np.random.default_rng(7).normal(size=(2, 5)).astype(np.float32)
    background = np.full((1, 5), 0.25, np.float32)
    explainer = shap.KernelExplainer(lambda v: model(v.astype(np.float32)).numpy(), background)
    ours = registry.get("kernel_shap", model, baseline=0.25, verbose=0).explain(x, [0, 2])
    for row, target, phi in zip(x, [0, 2], ours):
        theirs = np.asarray(explainer.shap_values(row[None], nsamples=1000, silent=True))
        theirs = theirs[0, :, target] if theirs.ndim == 3 else theirs[target][0]
        np.testing.assert_allclose(phi, theirs, atol=1e-4)


def test_lime_matches_the_lime_package():
    lime_image = pytest.importorskip("lime.lime_image")
    model = tiny.linear_softmax((8, 8, 3), seed=8)
    x = np.random.default_rng(8).uniform(size=(8, 8, 3)).astype(np.float32)
    ours = registry.get("lime", model, patch=2, n_samples=3000, verbose=0).explain(x[None], [1])[0]
    grid = (np.arange(8)[:, None] // 2) * 4 + np.arange(8)[None, :] // 2
    explanation = lime_image.LimeImageExplainer(random_state=0).explain_instance(
        x.astype(np.float64), lambda v: model(v.astype(np.float32)).numpy(), labels=(1,), top_labels=None,
        hide_color=0, num_samples=3000, batch_size=1000, segmentation_fn=lambda image: grid)
    theirs = np.zeros(16)
    for feature, weight in explanation.local_exp[1]:
        theirs[feature] = weight
    ours_tiles = ours[::2, ::2].reshape(-1)
    assert np.corrcoef(ours_tiles, theirs)[0, 1] > 0.95
    np.testing.assert_allclose(ours_tiles, theirs, atol=0.2 * np.abs(theirs).max())
