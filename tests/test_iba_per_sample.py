"""iba.InformationBottleneck: the batched Per-Sample Bottleneck on tiny CNNs, with known answers."""
import contextlib

import numpy as np
import pytest
import tensorflow as tf

import iba
from eval.protocol import Explainer, as_scores
from iba import EstimationWarning, InformationBottleneck, total_bits
from iba.bottleneck import lambdas, noisy_features
from tests import tiny
from tests.helpers import snapshot

pytestmark = pytest.mark.filterwarnings("ignore::iba.EstimationWarning")

SIG5 = 1.0 / (1.0 + np.exp(-5.0))
IMAGE = tiny.BOTTLENECK_SHAPE


@pytest.fixture(scope="module")
def model():
    return tiny.bottleneck_cnn()


@pytest.fixture(scope="module")
def data():
    return tiny.images(120, IMAGE, seed=1)


@pytest.fixture(scope="module")
def bottleneck(model, data):
    return InformationBottleneck(model, "conv2").fit(data, verbose=0)


@contextlib.contextmanager
def settings(ib, **kwargs):
    """Change call-time settings (beta, steps, lr, batch_size, seed) for one test, then restore them."""
    old = {k: getattr(ib, k) for k in kwargs}
    for k, v in kwargs.items():
        setattr(ib, k, v)
    try:
        yield ib
    finally:
        for k, v in old.items():
            setattr(ib, k, v)


def closed_form_capacity(features, lam, mean, std):
    normalised = lam * (features.astype(np.float64) - mean) / std
    return -0.5 * (1.0 + np.log((1.0 - lam) ** 2) - normalised ** 2 - (1.0 - lam) ** 2)


def test_heatmaps_are_bits_per_pixel_that_sum_to_the_total_capacity(bottleneck):
    x = tiny.images(4, IMAGE, seed=2)
    heat = bottleneck.explain(x, verbose=0)
    capacity = bottleneck.capacity(x, verbose=0)
    assert heat.shape == (4, 16, 16) and heat.dtype == np.float32
    assert capacity.shape == (4, 8, 8, 8)
    assert np.all(np.isfinite(heat)) and heat.min() >= -1e-6
    # 8x8 -> 16x16 is an integer upscaling: the total number of bits is kept exactly.
    np.testing.assert_allclose(total_bits(heat), capacity.sum(axis=(1, 2, 3)) / np.log(2), rtol=1e-5)
    np.testing.assert_allclose(bottleneck.total_bits(heat), total_bits(heat))
    np.testing.assert_allclose(bottleneck.heatmap(capacity), heat, rtol=1e-6)
    top = np.zeros((16, 16), bool)
    top[:8] = True
    np.testing.assert_allclose(bottleneck.region_bits(heat, top) + iba.region_bits(heat, ~top), total_bits(heat),
                               rtol=1e-6)


def test_initial_alpha_lets_almost_all_information_pass(bottleneck, model):
    x = tiny.images(6, IMAGE, seed=3)
    with settings(bottleneck, steps=0):
        capacity = bottleneck.capacity(x, verbose=0)
    features = bottleneck.head(x).numpy()
    expected = closed_form_capacity(features, SIG5, bottleneck.mean, bottleneck.std) * bottleneck.active
    np.testing.assert_allclose(capacity, expected, rtol=1e-4, atol=1e-4)
    # ~ -log(1 - 0.9933) - 0.5 + 0.5 * E[(lambda (R - mu) / std)^2] ~ 4.5 + 0.5 nats per element.
    assert 4.4 < capacity.mean() < 6.0
    # The model's output barely moves with lambda = sigmoid(5), much less than with lambda = 0.
    noise = tf.random.stateless_normal((10,) + bottleneck.feature_shape, seed=(0, 1))
    logits = bottleneck.split.logits_tail(features).numpy()

    def change(alpha):
        lam, one_minus = lambdas(np.full(features.shape, alpha, np.float32), 1.0)
        z = noisy_features(features, lam, one_minus, noise, bottleneck.mean, bottleneck.std, bottleneck.active, False)
        out = bottleneck.split.logits_tail(tf.reshape(z, (-1,) + bottleneck.feature_shape)).numpy()
        return np.abs(out.reshape(6, 10, -1) - logits[:, None]).mean()

    assert change(5.0) < 0.05 * change(-50.0)


def test_a_very_large_beta_drives_the_capacity_to_zero(bottleneck):
    x = tiny.images(3, IMAGE, seed=4)
    with settings(bottleneck, steps=0):
        initial = bottleneck.capacity(x, verbose=0).sum(axis=(1, 2, 3))
    with settings(bottleneck, beta=1e4, steps=10):
        final = bottleneck.capacity(x, verbose=0).sum(axis=(1, 2, 3))
    assert np.all(final < 1e-3 * initial)
    # Without the information term the steps alone do not remove the information.
    with settings(bottleneck, beta=0.0, steps=10):
        unconstrained = bottleneck.capacity(x, verbose=0).sum(axis=(1, 2, 3))
    assert np.all(final < 1e-2 * unconstrained)


def test_batched_equals_one_by_one_with_the_same_seed(bottleneck):
    x = tiny.images(5, IMAGE, seed=5)
    targets = np.array([0, 1, 2, 1, 0])
    batched = bottleneck.explain(x, targets, verbose=0)
    one_by_one = np.concatenate([bottleneck.explain(x[i:i + 1], targets[i:i + 1], verbose=0) for i in range(5)])
    chunked = bottleneck.explain(x, targets, batch_size=2, verbose=0)
    scale = np.abs(batched).max()
    np.testing.assert_allclose(one_by_one, batched, atol=1e-4 * scale, rtol=1e-4)
    np.testing.assert_allclose(chunked, batched, atol=1e-4 * scale, rtol=1e-4)
    # The same image placed elsewhere in another batch gets the same heatmap.
    shuffled = bottleneck.explain(x[::-1], targets[::-1], verbose=0)[::-1]
    np.testing.assert_allclose(shuffled, batched, atol=1e-4 * scale, rtol=1e-4)


def test_seeds_make_runs_reproducible(bottleneck):
    x = tiny.images(2, IMAGE, seed=6)
    first = bottleneck.explain(x, verbose=0)
    np.testing.assert_array_equal(bottleneck.explain(x, verbose=0), first)
    with settings(bottleneck, seed=123):
        other = bottleneck.explain(x, verbose=0)
    assert not np.allclose(other, first)
    with settings(bottleneck, seed=None):
        assert not np.allclose(bottleneck.explain(x, verbose=0), bottleneck.explain(x, verbose=0))


def test_reused_noise_equals_noise_drawn_inside_the_loop(bottleneck, monkeypatch):
    # With a fixed seed a call's noise is drawn once and kept for later calls; above the size limit each
    # step draws its own inside the optimisation. Both give the same numbers, so the same heatmaps.
    x = tiny.images(3, IMAGE, seed=7)
    reused = bottleneck.explain(x, verbose=0)
    monkeypatch.setattr(iba.per_sample, "NOISE_CACHE_BYTES", 0)
    drawn = bottleneck.explain(x, verbose=0)
    np.testing.assert_allclose(drawn, reused, rtol=1e-6, atol=1e-6 * np.abs(reused).max())


def test_targets_int_one_hot_and_prediction(bottleneck, model):
    x = tiny.images(3, IMAGE, seed=7)
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    by_default = bottleneck.capacity(x, verbose=0)
    np.testing.assert_array_equal(bottleneck.capacity(x, predicted, verbose=0), by_default)
    one_hot = np.eye(3)[predicted]
    np.testing.assert_array_equal(bottleneck.capacity(x, one_hot, verbose=0), by_default)
    other = (predicted + 1) % 3
    assert not np.allclose(bottleneck.capacity(x, other, verbose=0), by_default)
    np.testing.assert_array_equal(bottleneck.capacity(x[:1], int(other[0]), verbose=0),
                                  bottleneck.capacity(x[:1], other[:1], verbose=0))
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        bottleneck.explain(x, [0, 1, 3], verbose=0)
    with pytest.raises(ValueError, match="targets"):
        bottleneck.explain(x, [0, 1], verbose=0)


def test_the_users_model_is_unchanged(data):
    model = tiny.bottleneck_cnn(seed=3)
    x = tiny.images(4, IMAGE, seed=8)
    weights = snapshot(model.weights)
    outputs = model(x).numpy()
    n_layers, trainable = len(model.layers), model.trainable
    ib = InformationBottleneck(model, "pool", steps=3).fit(data[:40], verbose=0)
    ib.explain(x, verbose=0)
    assert len(model.weights) == len(weights)
    for w, before in zip(model.weights, weights):
        np.testing.assert_array_equal(w.numpy(), before)
    np.testing.assert_array_equal(model(x).numpy(), outputs)
    assert len(model.layers) == n_layers and model.trainable == trainable


def test_estimate_matches_numpy_mean_and_std_in_chunks(model, data):
    features = InformationBottleneck(model, "pool").head(data).numpy().astype(np.float64)
    expected_std = np.maximum(features.std(axis=0, ddof=1), 0.01)
    expected_active = (features != 0).mean(axis=0) > 0.01
    ds = tf.data.Dataset.from_tensor_slices((data, np.zeros(len(data)))).batch(17)
    for source, kwargs in ((data, dict(batch_size=7)), (ds, {}), (tf.data.Dataset.from_tensor_slices(data), {})):
        ib = InformationBottleneck(model, "pool").fit(source, verbose=0, **kwargs)
        assert ib.n_samples == len(data)
        np.testing.assert_allclose(ib.mean, features.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ib.std, expected_std, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ib.active, expected_active)
    assert 0 < expected_active.mean() < 1  # the post-ReLU map has inactive elements
    ib = InformationBottleneck(model, "pool").fit(ds.repeat(), n_samples=50, verbose=0)
    assert ib.n_samples == 50
    np.testing.assert_allclose(ib.mean, features[:50].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_inactive_elements_carry_no_information(model, data):
    ib = InformationBottleneck(model, "pool", steps=2).fit(data, verbose=0)
    capacity = ib.capacity(tiny.images(3, IMAGE, seed=9), verbose=0)
    assert not ib.active.all()
    np.testing.assert_array_equal(capacity[:, ~ib.active], 0.0)
    assert np.all(capacity[:, ib.active] > 0)


def test_relu_variant(model, data):
    ib = InformationBottleneck(model, "pool", relu=True, steps=0).fit(data, verbose=0)
    features = ib.head(data).numpy().astype(np.float64)
    nonzero = (features != 0).sum(axis=0)
    rms = np.sqrt((features ** 2).sum(axis=0) / np.maximum(nonzero, 1))
    np.testing.assert_array_equal(ib.mean, 0.0)
    np.testing.assert_allclose(ib.std, np.maximum(rms, 0.01), rtol=1e-5)
    x = tiny.images(2, IMAGE, seed=10)
    capacity = ib.capacity(x, verbose=0)
    expected = closed_form_capacity(ib.head(x).numpy(), SIG5, 0.0, ib.std) * ib.active
    np.testing.assert_allclose(capacity, expected, rtol=1e-4, atol=1e-4)
    ib.steps = 3
    heat = ib.explain(x, verbose=0)
    assert heat.shape == (2, 16, 16) and np.all(np.isfinite(heat))


def test_extreme_alphas_stay_finite(bottleneck):
    x = tiny.images(2, IMAGE, seed=11)
    with settings(bottleneck, beta=0.0, lr=60.0, steps=5):  # alpha -> +large: lambda -> 1
        high = bottleneck.capacity(x, verbose=0)
    with settings(bottleneck, beta=1e6, lr=60.0, steps=5):  # alpha -> -large: lambda -> 0
        low = bottleneck.capacity(x, verbose=0)
    assert np.all(np.isfinite(high)) and np.all(np.isfinite(low))
    # Some elements reach the clamp of 1 - lambda (-log(1e-12) ~ 27.6 nats) without NaN or inf.
    assert high.max() > 27 and low.max() < 1e-3


def test_explainer_contract_and_the_deprecated_estimate(bottleneck, model, data):
    x = tiny.images(3, IMAGE, seed=12)
    assert isinstance(bottleneck, Explainer) and bottleneck.requires_fit
    np.testing.assert_allclose(as_scores(bottleneck, x, batch_size=2), bottleneck.explain(x, verbose=0),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        bottleneck.explain(x, batch_size=0)
    masks = bottleneck.select(x, 10)
    assert masks.shape == (3, 16, 16) and np.all(masks.sum(axis=(1, 2)) == 10)
    assert bottleneck.get_config()["method"] == "iba" and bottleneck.get_config()["copies"] == 10
    # ``estimate`` (the README's old name) is ``fit``: the same statistics.
    old = InformationBottleneck(model, "conv2").estimate(data, verbose=0)
    np.testing.assert_array_equal(old.std, bottleneck.std)


def test_nested_backbone():
    model = tiny.nested_cnn()
    x = tiny.images(30, (16, 16, 3), seed=13)
    ib = InformationBottleneck(model, "conv_c", steps=0).fit(x, verbose=0)
    assert ib.feature_shape == (8, 8, 6) and ib.output_kind == "probability"
    # The head is the backbone (conv_c is its last layer) on the preprocessed images 2 x - 1; before any
    # step the capacity is the closed form of those features.
    backbone_output = model.get_layer("backbone")(2.0 * x[:2] - 1.0).numpy()
    np.testing.assert_allclose(ib.head(x[:2]).numpy(), backbone_output, rtol=1e-5, atol=1e-6)
    expected = closed_form_capacity(backbone_output, SIG5, ib.mean, ib.std) * ib.active
    np.testing.assert_allclose(ib.capacity(x[:2], verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_bad_inputs(model, data, bottleneck):
    with pytest.raises(ValueError, match=r"no layer named 'conv3'.*close names: 'conv\d', 'conv\d'"):
        InformationBottleneck(model, "conv3")
    with pytest.raises(ValueError, match=r"'gap' has shape \(None, 8\).*supports only rank-4 \(N, H, W, C\)"):
        InformationBottleneck(model, "gap")
    with pytest.raises(ValueError, match="rank-4"):
        InformationBottleneck(model, "logits")
    fresh = InformationBottleneck(model, "conv2")
    with pytest.raises(RuntimeError, match=r"not estimated yet; call fit\(images\) first"):
        fresh.explain(tiny.images(1, IMAGE), verbose=0)
    with pytest.warns(EstimationWarning, match=r"only 30 samples.*5,000-10,000"):
        fresh.fit(data[:30], verbose=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fresh.fit(data[:1], verbose=0)
    nan = tiny.images(2, IMAGE, seed=14)
    nan[1, 3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        bottleneck.explain(nan, verbose=0)
    with pytest.raises(ValueError, match="data: expected finite values"):
        fresh.fit(np.concatenate([data[:10], nan]), verbose=0)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(N, 16, 16, 1\)"):
        bottleneck.explain(np.zeros((2, 16, 16, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="steps"):
        InformationBottleneck(model, "conv2", steps=-1)
    with pytest.raises(ValueError, match="beta"):
        InformationBottleneck(model, "conv2", beta=-1.0)
    with pytest.raises(ValueError, match="sigma: .*17 taps.*at least 9x9; layer 'conv2' gives 8x8"):
        InformationBottleneck(model, "conv2", sigma=2.0 * 2)
    with pytest.raises(ValueError, match="n_samples: the dataset is infinite"):
        fresh.fit(tf.data.Dataset.from_tensor_slices(data).repeat(), verbose=0)


def test_bits_concentrate_on_the_object_that_decides_the_class(object_task):
    model, x, test_set = object_task
    x_test, y_test, boxes = test_set(24)
    assert (model.predict(x_test, verbose=0).argmax(axis=1) == y_test).mean() > 0.9
    ib = InformationBottleneck(model, "features").fit(x[:1000], verbose=0)
    heat = ib.explain(x_test, y_test, verbose=0)
    share = ib.region_bits(heat, boxes) / ib.total_bits(heat)
    # The object covers 1/16 of the image; it holds several times its share of the bits.
    assert np.median(share) > 2.5 / 16
