"""Sensitivity-n with tiles (eval.sensitivity_n; Ancona et al. 2018 as used by IBA Section 4.4, eq. 8)."""
import json

import numpy as np
import pytest

from eval import SensitivityNResult, sensitivity_n
from eval.sensitivity_n import default_ns, random_tile_sets
from tests import tiny

H, C, TILE, CLASSES = 12, 2, 3, 3  # 4 x 4 = 16 tiles


def additive_model(seed=0):
    """logits = W flatten(x) + bias, then a softmax: the logit is a sum of per-pixel contributions."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(H * H * C, CLASSES)).astype(np.float32)
    model = tiny.fixed_dense((H, H, C), kernel, rng.normal(size=CLASSES))
    return model, kernel.reshape(H, H, C, CLASSES)


def exact_attributions(kernel, x, targets):
    """w_c * x summed over channels: with a zero baseline its sum over any removed set is the logit drop."""
    return np.einsum("nhwc,hwcn->nhw", x, kernel[..., targets])


def data(n=4, seed=1):
    return tiny.images(n, (H, H, C), seed)


def test_exact_attributions_of_an_additive_model_have_correlation_one():
    model, kernel = additive_model()
    x = data()
    targets = np.array([0, 1, 2, 0])
    scores = exact_attributions(kernel, x, targets)
    for pooling in ("pooled", "per_image"):
        result = sensitivity_n(model, x, scores, targets, tile=TILE, n_masks=20, pooling=pooling)
        assert isinstance(result, SensitivityNResult)
        np.testing.assert_array_equal(result.ns, default_ns(16))
        np.testing.assert_allclose(result.correlation, 1.0, atol=1e-5)
        np.testing.assert_allclose(result.attribution_sums, result.drops, atol=1e-3)
        assert result.drops.shape == (4, len(result.ns), 20)


def test_the_other_pooling_from_the_same_drops_and_per_image_scale_invariance():
    model, kernel = additive_model()
    x = data()
    targets = np.array([0, 1, 2, 0])
    # Exact attributions scaled by a different positive factor per image: each image's own ranking is
    # still exact (per-image r = 1), but pooling mixes the scales and loses it.
    scores = exact_attributions(kernel, x, targets) * np.array([1.0, 10.0, 0.1, 3.0])[:, None, None]
    pooled = sensitivity_n(model, x, scores, targets, tile=TILE, n_masks=20, pooling="pooled")
    per_image = sensitivity_n(model, x, scores, targets, tile=TILE, n_masks=20, pooling="per_image")
    np.testing.assert_allclose(pooled.correlation_as("per_image"), per_image.correlation, rtol=1e-12)
    np.testing.assert_allclose(per_image.correlation_as("pooled"), pooled.correlation, rtol=1e-12)
    np.testing.assert_allclose(per_image.correlation, 1.0, atol=1e-5)
    assert np.nanmean(pooled.correlation) < 0.95


def test_random_attributions_have_correlation_near_zero():
    model, _ = additive_model()
    x = data(8)
    scores = np.random.default_rng(5).normal(size=(8, H, H))
    result = sensitivity_n(model, x, scores, tile=TILE, ns=[2, 4, 8], n_masks=50)
    # 400 pooled pairs per n: the coefficient's standard error is about 0.05.
    assert np.all(np.abs(result.correlation) < 0.2)


def test_default_ns_follow_the_paper_grid():
    np.testing.assert_array_equal(default_ns(784), np.unique(np.round(np.geomspace(1, 627.2, 16)).astype(int)))
    assert default_ns(784)[0] == 1 and default_ns(784)[-1] == 627
    np.testing.assert_array_equal(default_ns(4), [1, 2, 3])
    np.testing.assert_array_equal(default_ns(1), [1])


def test_tile_sets_are_seeded_shared_and_independent_of_the_other_ns():
    sets = random_tile_sets(np.array([3, 5]), 16, 10, seed=7)
    assert sets.shape == (2, 10, 16) and np.all(sets[0].sum(axis=1) == 3) and np.all(sets[1].sum(axis=1) == 5)
    np.testing.assert_array_equal(random_tile_sets(np.array([5]), 16, 10, seed=7)[0], sets[1])
    assert not np.array_equal(random_tile_sets(np.array([5]), 16, 10, seed=8)[0], sets[1])


def test_batched_equals_one_by_one_and_seeds():
    model, _ = additive_model()
    x = data(3)
    scores = np.random.default_rng(2).normal(size=(3, H, H))
    kwargs = dict(tile=TILE, ns=[1, 6], n_masks=5, seed=11, output="probability")
    batched = sensitivity_n(model, x, scores, batch_size=7, **kwargs)
    for i in range(3):
        alone = sensitivity_n(model, x[i:i + 1], scores[i:i + 1], batch_size=64, **kwargs)
        np.testing.assert_allclose(alone.drops[0], batched.drops[i], atol=1e-6)
        np.testing.assert_allclose(alone.attribution_sums[0], batched.attribution_sums[i], atol=1e-9)
    again = sensitivity_n(model, x, scores, batch_size=7, **kwargs)
    np.testing.assert_array_equal(again.correlation, batched.correlation)
    other = sensitivity_n(model, x, scores, batch_size=7, **{**kwargs, "seed": 12})
    assert not np.allclose(other.drops, batched.drops)
    report = json.loads(json.dumps(batched.to_dict()))
    assert report["ns"] == [1, 6] and report["n_masks"] == 5 and report["n_images"] == 3


def test_constant_attributions_give_nan_not_an_error():
    model, _ = additive_model()
    result = sensitivity_n(model, data(2), np.ones((2, H, H)), tile=TILE, ns=[4], n_masks=5)
    assert np.isnan(result.correlation).all()  # every removed set holds the same attribution mass


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(ns=[0, 2]), ValueError, r"ns: expected numbers of tiles in \[1, 16\]"),
    (dict(ns=[17]), ValueError, r"ns: expected numbers of tiles in \[1, 16\]"),
    (dict(ns=[1.5]), ValueError, r"ns: expected a non-empty list of integers"),
    (dict(n_masks=0), ValueError, r"n_masks: expected an integer >= 1"),
    (dict(tile=13), ValueError, r"tile: expected a tile size <= the image side min\(H, W\) = 12, got 13"),
    (dict(pooling="mean"), ValueError, r"pooling: unknown value 'mean'"),
    (dict(baseline="gray"), ValueError, r"baseline: unknown value 'gray'"),
    (dict(scores=np.zeros((4, H, H))), ValueError, r"scores: expected shape \(2, 12, 12\)"),
    (dict(scores=np.full((2, H, H), np.inf)), ValueError, r"scores: expected finite values"),
    (dict(model=tiny.linear_softmax((H, H, C), CLASSES, softmax=False)), ValueError,  # no softmax, no "logits"
     r"output: 'logit' needs the pre-softmax scores"),
    (dict(seed=-1), ValueError, r"seed: expected an integer >= 0"),
])
def test_bad_inputs_raise_clear_errors(kwargs, error, match):
    args = dict(model=additive_model()[0], x=data(2), scores=np.zeros((2, H, H)), tile=TILE, n_masks=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sensitivity_n(**args)
