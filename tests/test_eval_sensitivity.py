"""SEN (max-sensitivity, Yeh et al. 2019, as in MEED) and TPS (time per sample)."""
import math
import time

import numpy as np
import pytest
import tensorflow as tf

from eval import SensitivityResult, max_sensitivity, time_per_sample


class CountingExplainer:
    """s(x) = 2 * x[..., 0] for images; counts calls and records the targets it got."""

    def __init__(self):
        self.batch_sizes = []
        self.targets = []

    def explain(self, x, targets=None, batch_size=None):
        self.batch_sizes.append(len(x))
        self.targets.append(None if targets is None else np.asarray(targets))
        return 2.0 * np.asarray(x)[..., 0]


def identity(x):
    return np.asarray(x)


def rows(n, d, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 1.5, size=(n, d)).astype(np.float32)


def test_constant_explainer_has_zero_sensitivity():
    x = rows(5, 3)
    for legacy in (False, True):
        result = max_sensitivity(lambda v: np.ones((len(v), 3)), x, n_samples=7, legacy=legacy)
        assert isinstance(result, SensitivityResult)
        assert result.mean == 0.0 and float(result) == 0.0
        np.testing.assert_array_equal(result.per_sample, np.zeros(5))
    # Tensors returned by a Keras/TF explainer are accepted as scores.
    tensor_scores = max_sensitivity(lambda v: tf.ones((len(v), 3)), x, n_samples=3)
    assert tensor_scores.mean == 0.0


def test_linear_explainer_reaches_but_never_exceeds_the_bound():
    # s(x) = x: ||s(x') - s(x)|| = ||delta||_2 <= radius * sqrt(d), so SEN(x) <= radius * sqrt(d) / ||x||.
    x = rows(4, 2)
    radius = 0.2
    result = max_sensitivity(identity, x, radius=radius, n_samples=3000, seed=0, batch_size=1000)
    bound = radius * math.sqrt(2) / np.linalg.norm(x.astype(np.float64), axis=1)
    assert np.all(result.per_sample <= bound * (1 + 1e-5))
    assert np.all(result.per_sample >= 0.97 * bound)
    assert result.mean == pytest.approx(result.per_sample.mean())


def test_legacy_is_the_last_draw_of_the_same_draws():
    x = rows(6, 5, seed=1)
    correct = max_sensitivity(identity, x, n_samples=20, seed=4)
    legacy = max_sensitivity(identity, x, n_samples=20, seed=4, legacy=True)
    np.testing.assert_array_equal(legacy.ratios, correct.ratios)
    assert correct.ratios.shape == (6, 20)
    np.testing.assert_array_equal(legacy.per_sample, correct.ratios[:, -1])
    np.testing.assert_array_equal(correct.per_sample, correct.ratios.max(axis=1))
    assert np.all(legacy.per_sample <= correct.per_sample)
    assert legacy.mean < correct.mean and legacy.legacy and not correct.legacy


def test_seeded_and_independent_of_batch_size():
    x = rows(5, 4, seed=2)
    a = max_sensitivity(identity, x, n_samples=9, seed=11, batch_size=7)
    b = max_sensitivity(identity, x, n_samples=9, seed=11, batch_size=256)
    c = max_sensitivity(identity, x, n_samples=9, seed=12, batch_size=7)
    np.testing.assert_array_equal(a.per_sample, b.per_sample)
    assert not np.array_equal(a.per_sample, c.per_sample)


def test_zero_norm_scores_give_zero_or_inf_never_nan():
    x = rows(3, 4)
    x[1] = 0.0
    result = max_sensitivity(identity, x, n_samples=5)
    assert result.per_sample[1] == np.inf and np.all(np.isfinite(result.per_sample[[0, 2]]))
    assert result.n_zero_norm == 1 and result.mean == np.inf
    zeros = max_sensitivity(lambda v: np.zeros((len(v), 4)), x, n_samples=5)
    np.testing.assert_array_equal(zeros.per_sample, np.zeros(3))
    assert zeros.n_zero_norm == 3 and not np.any(np.isnan(zeros.ratios))


def test_explainer_object_images_batches_and_targets():
    x = np.random.default_rng(3).uniform(0.5, 1, size=(3, 4, 4, 1)).astype(np.float32)
    explainer = CountingExplainer()
    result = max_sensitivity(explainer, x, n_samples=10, batch_size=8, targets=np.array([0, 1, 0]), radius=0.1)
    # 3 clean samples in one call, then 30 perturbed inputs in chunks of at most 8.
    assert explainer.batch_sizes == [3, 8, 8, 8, 6]
    np.testing.assert_array_equal(np.concatenate(explainer.targets[1:]), np.repeat([0, 1, 0], 10))
    bound = 0.1 * 4 / np.linalg.norm(x.reshape(3, -1).astype(np.float64), axis=1)  # r * sqrt(16) / ||x||
    assert np.all(result.per_sample <= bound * (1 + 1e-5)) and np.all(result.per_sample > 0)


def test_max_sensitivity_errors():
    x = rows(2, 3)
    with pytest.raises(TypeError, match="x: expected float inputs"):
        max_sensitivity(identity, np.ones((2, 3), np.int32))
    with pytest.raises(ValueError, match="radius: expected a finite number > 0"):
        max_sensitivity(identity, x, radius=0)
    with pytest.raises(ValueError, match="n_samples: expected an integer >= 1"):
        max_sensitivity(identity, x, n_samples=0)
    with pytest.raises(TypeError, match="explain_fn: expected an Explainer or a callable"):
        max_sensitivity("grad", x)
    with pytest.raises(TypeError, match="targets: only an Explainer"):
        max_sensitivity(identity, x, targets=[0, 1])
    with pytest.raises(ValueError, match=r"targets: expected one value per sample of x \(2\)"):
        max_sensitivity(CountingExplainer(), np.ones((2, 3, 3, 1), np.float32), targets=[0])
    with pytest.raises(ValueError, match=r"scores: expected shape \(2, 3\)"):
        max_sensitivity(lambda v: np.ones((len(v), 2)), x)
    with pytest.raises(ValueError, match="finite"):
        max_sensitivity(lambda v: np.full((len(v), 3), np.nan), x)


def test_time_per_sample():
    x = rows(50, 3)
    explainer = CountingExplainer()

    def sleeps(batch):  # 20 ms per call: a pass over 50 samples in batches of 16 is 4 calls, 80 ms
        time.sleep(0.02)
        return batch

    seconds = time_per_sample(sleeps, x, batch_size=16, repeats=2)
    assert isinstance(seconds, float) and 0.08 / 50 <= seconds < 3 * 0.08 / 50
    images = np.ones((10, 2, 2, 1), np.float32)
    assert time_per_sample(explainer, images, batch_size=4, repeats=2, warmup=1) > 0
    assert explainer.batch_sizes == [4, 4, 2] * 3  # one warm-up pass + two timed passes
    with pytest.raises(ValueError, match="repeats: expected an integer >= 1"):
        time_per_sample(identity, x, repeats=0)
    with pytest.raises(TypeError, match="fn: expected an Explainer or a callable"):
        time_per_sample(42, x)
