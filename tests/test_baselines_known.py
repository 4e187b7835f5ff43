"""Known-answer tests of the baselines: exact values on linear models, hand-computed Grad-CAM and guided
backpropagation, the controls' distributions, seeds, and batched == one-by-one."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from eval import registry
from kernels import hooks
from tests import tiny


@pytest.fixture(scope="module")
def linear_image():
    model = tiny.linear_softmax((4, 5, 2), n_classes=3, bias=True)
    w, b = tiny.kernel_of(model)
    return model, w, b, tiny.gaussian(4, (4, 5, 2)), np.array([0, 2, 1, 2])


def _w_times_x(w, x, targets):
    """sum over channels of w[..., c] * x for each sample's target c."""
    return np.stack([(w[..., t] * xi).sum(axis=-1) for xi, t in zip(x, targets)])


def test_signed_gradient_input_is_w_times_x_on_linear_models(linear_image):
    model, w, _, x, targets = linear_image
    scores = registry.get("gradient_input", model, signed=True, output="logit", verbose=0).explain(x, targets)
    np.testing.assert_allclose(scores, _w_times_x(w, x, targets), rtol=1e-5, atol=1e-6)
    # MEED's GI (unsigned): sum over channels of |w * x|; tabular rows keep one value per entry.
    meed_gi = registry.get("gi", model, output="logit", verbose=0).explain(x, targets)
    expected = np.stack([np.abs(w[..., t] * xi).sum(axis=-1) for xi, t in zip(x, targets)])
    np.testing.assert_allclose(meed_gi, expected, rtol=1e-5, atol=1e-6)
    rows_model = tiny.linear_softmax((6,), seed=1)
    kernel, _ = tiny.kernel_of(rows_model)
    rows = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    got = registry.get("gradient_input", rows_model, signed=True, output="logit", verbose=0).explain(rows, [1, 0, 1])
    np.testing.assert_allclose(got, kernel[:, [1, 0, 1]].T * rows, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
def test_integrated_gradients_exact_and_complete_on_linear_logits(linear_image, rule):
    model, w, b, x, targets = linear_image
    baseline = 0.3
    ig = registry.get("integrated_gradients", model, steps=5, rule=rule, baseline=baseline, output="logit",
                       internal_batch_size=7, verbose=0)
    scores = ig.explain(x, targets)
    np.testing.assert_allclose(scores, _w_times_x(w, x - baseline, targets), rtol=1e-5, atol=1e-5)
    # Completeness: the attributions add up to f(x) - f(baseline) of the target logit.
    flat_w = w.reshape(-1, w.shape[-1])
    f = lambda v: v.reshape(len(v), -1) @ flat_w + b  # noqa: E731
    rows = np.arange(len(x))
    delta = f(x)[rows, targets] - f(np.full_like(x, baseline))[rows, targets]
    np.testing.assert_allclose(scores.reshape(len(x), -1).sum(axis=1), delta, rtol=1e-5, atol=1e-5)


def test_occlusion_one_pixel_patch_is_w_times_x(linear_image):
    model, w, _, x, targets = linear_image
    occlusion = registry.get("occlusion", model, patch_size=1, output="logit", internal_batch_size=16, verbose=0)
    assert occlusion.n_patches == 4 * 5
    np.testing.assert_allclose(occlusion.explain(x, targets), _w_times_x(w, x, targets), rtol=1e-4, atol=1e-5)


def test_occlusion_overlapping_patches_average_the_drops(linear_image):
    model, w, _, x, targets = linear_image
    # 2x2 patches with stride 1 on a linear logit: the drop of a patch is the sum of w*x inside it, and a
    # pixel's score is the mean over the patches covering it.
    got = registry.get("occlusion", model, patch_size=2, stride=1, output="logit", verbose=0).explain(x, targets)
    wx = _w_times_x(w, x, targets)
    total, count = np.zeros_like(wx), np.zeros(wx.shape[1:])
    for r in range(3):
        for c in range(4):
            drop = wx[:, r:r + 2, c:c + 2].sum(axis=(1, 2))
            total[:, r:r + 2, c:c + 2] += drop[:, None, None]
            count[r:r + 2, c:c + 2] += 1
    np.testing.assert_allclose(got, total / count, rtol=1e-4, atol=1e-5)


def test_gradient_and_saliency_reductions(linear_image):
    model, w, _, x, targets = linear_image
    grad = registry.get("grad", model, output="logit", verbose=0).explain(x, targets)
    sal = registry.get("saliency", model, output="logit", verbose=0).explain(x, targets)
    w_t = np.stack([w[..., t] for t in targets])
    np.testing.assert_allclose(grad, np.abs(w_t).sum(axis=-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sal, np.abs(w_t).max(axis=-1), rtol=1e-5, atol=1e-6)


def test_probability_output_differentiates_the_softmax(linear_image):
    model, w, b, x, targets = linear_image
    got = registry.get("gradient_input", model, signed=True, verbose=0).explain(x, targets)
    p = tf.nn.softmax(x.reshape(len(x), -1) @ w.reshape(-1, w.shape[-1]) + b).numpy()
    # d p_c / d x = p_c (w_c - sum_k p_k w_k)
    expected = []
    for i, t in enumerate(targets):
        g = p[i, t] * (w[..., t] - (w * p[i]).sum(axis=-1))
        expected.append((g * x[i]).sum(axis=-1))
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("relu_layer", [False, True])
def test_guided_backprop_hand_computed_on_a_relu_mlp(relu_layer):
    model = tiny.tabular_mlp(5, 3, seed=3, hidden=7, relu_layer=relu_layer)
    w1, b1 = model.get_layer("hidden").get_weights()
    w2, _ = model.get_layer("logits").get_weights()
    x = np.random.default_rng(2).normal(size=(6, 5)).astype(np.float32)
    targets = np.array([0, 1, 2, 0, 1, 2])
    got = registry.get("guided_backprop", model, output="logit", verbose=0).explain(x, targets)
    pre = x @ w1 + b1
    upstream = w2[:, targets].T                                  # d logit_c / d h
    guided = upstream * (pre > 0) * (upstream > 0)               # Springenberg's rule at the ReLU
    np.testing.assert_allclose(got, np.abs(guided @ w1.T), rtol=1e-5, atol=1e-6)
    plain = registry.get("gradient", model, output="logit", verbose=0).explain(x, targets)
    assert not np.allclose(got, plain)
    # The hooks are gone after the call: the model computes and differentiates as before.
    assert all("call" not in layer.__dict__ for layer in model.layers)
    hidden = model.get_layer("hidden")
    assert relu_layer or hidden.activation is keras.activations.relu


def test_guided_backprop_equals_gradient_without_relu():
    keras.utils.set_random_seed(4)
    x = inputs = keras.Input(shape=(6, 6, 2))
    x = layers.Conv2D(3, 3, activation="tanh", name="conv")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(4, activation="sigmoid")(x)
    x = layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, layers.Softmax(name="probs")(x))
    data = np.random.default_rng(3).normal(size=(3, 6, 6, 2)).astype(np.float32)
    guided = registry.get("guided_backprop", model, verbose=0).explain(data)
    plain = registry.get("gradient", model, verbose=0).explain(data)
    np.testing.assert_allclose(guided, plain, rtol=1e-6, atol=1e-9)


def _gap_gradcam(maps, w, targets, size):
    """Grad-CAM by hand for logits = w^T GAP(A) + b (tiny.gap_cnn): y_c = sum_k w[k, c] mean_ij A_k(ij) + b_c,
    so d y_c / d A_k(ij) = w[k, c] / (h w) at every position and alpha_k (its spatial mean) is w[k, c] / (h w);
    cam = ReLU(sum_k alpha_k A_k), resized bilinearly to the input ``size``."""
    h, wd = maps.shape[1:3]
    alphas = w[:, targets].T / (h * wd)                                          # (N, K)
    cam = np.maximum((maps * alphas[:, None, None, :]).sum(axis=-1), 0.0)
    return tf.image.resize(cam[..., None], size, method="bilinear")[..., 0].numpy()


@pytest.mark.parametrize("strides", [1, 2])
def test_gradcam_hand_computed_on_conv_gap_model(strides):
    model = tiny.gap_cnn(strides=strides)
    x = np.random.default_rng(4).normal(size=(3, 6, 6, 2)).astype(np.float32)
    targets = np.array([2, 0, 1])
    maps = keras.Model(model.input, model.get_layer("conv").output)(x).numpy()   # (N, h, w, K)
    w, _ = model.get_layer("logits").get_weights()
    expected = _gap_gradcam(maps, w, targets, (6, 6))
    got = registry.get("gradcam", model, output="logit", verbose=0).explain(x, targets)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # The explicit layer name gives the same; Guided Grad-CAM is the product with guided backprop.
    named = registry.get("gradcam", model, layer="conv", output="logit", verbose=0).explain(x, targets)
    np.testing.assert_allclose(named, got, rtol=1e-6)
    guided = registry.get("guided_backprop", model, output="logit", verbose=0).explain(x, targets)
    product = registry.get("guided_gradcam", model, output="logit", verbose=0).explain(x, targets)
    np.testing.assert_allclose(product, guided * got, rtol=1e-5, atol=1e-9)


def test_gradcam_finds_the_conv_layer_of_a_nested_backbone():
    model = tiny.nested_cnn()
    explainer = registry.get("gradcam", model, output="logit", verbose=0)
    assert explainer.layer.name == "conv_c"  # the last convolution, inside the backbone
    x = tiny.images(2, (16, 16, 3), seed=5)
    maps = model.get_layer("backbone")(2.0 * x - 1.0).numpy()  # conv_c's map of the preprocessed images
    w, _ = model.get_layer("logits").get_weights()
    expected = _gap_gradcam(maps, w, np.array([0, 2]), (16, 16))
    np.testing.assert_allclose(explainer.explain(x, targets=[0, 2]), expected, rtol=1e-5, atol=1e-7)


def test_token_gradients_are_taken_at_the_embedding_output():
    model = tiny.text_cnn(length=8, vocab=12)
    x = np.random.default_rng(6).integers(0, 12, size=(3, 8))
    tail = keras.Model(model.get_layer("embedding").output, model.output)
    emb = model.get_layer("embedding")(x)
    with tf.GradientTape() as tape:
        tape.watch(emb)
        score = tf.reduce_sum(tail(emb)[:, 1])
    g = tape.gradient(score, emb).numpy()
    got = registry.get("gradient", model, verbose=0).explain(x, targets=1)
    np.testing.assert_allclose(got, np.abs(g).sum(axis=-1), rtol=1e-5, atol=1e-8)
    gi = registry.get("gradient_input", model, verbose=0).explain(x, targets=1)
    np.testing.assert_allclose(gi, np.abs(g * emb.numpy()).sum(axis=-1), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("ending", ["dense_softmax", "activation_softmax"])
def test_logit_output_found_without_a_logits_layer(ending):
    keras.utils.set_random_seed(8)
    inputs = keras.Input(shape=(4,))
    if ending == "dense_softmax":
        model = keras.Model(inputs, layers.Dense(3, activation="softmax", name="out")(inputs))
        kernel = model.get_layer("out").get_weights()[0]
    else:
        dense = layers.Dense(3, name="scores")
        model = keras.Model(inputs, layers.Activation("softmax")(dense(inputs)))
        kernel = dense.get_weights()[0]
    x = np.random.default_rng(7).normal(size=(2, 4)).astype(np.float32)
    got = registry.get("gradient_input", model, signed=True, output="logit", verbose=0).explain(x, [2, 0])
    np.testing.assert_allclose(got, kernel[:, [2, 0]].T * x, rtol=1e-5, atol=1e-6)
    # The model's own activation is back afterwards.
    np.testing.assert_allclose(model(x).numpy().sum(axis=1), 1.0, rtol=1e-6)


def test_random_control_distribution_and_seeds(linear_image):
    model = linear_image[0]
    x = np.zeros((200, 4, 5, 2), np.float32)
    scores = registry.get("random", model, seed=3, verbose=0).explain(x)
    values = np.sort(scores.ravel())
    assert scores.shape == (200, 4, 5) and values.min() >= 0.0 and values.max() < 1.0
    ks = np.max(np.abs(values - (np.arange(1, values.size + 1) / values.size)))
    assert ks < 1.63 / np.sqrt(values.size)  # Kolmogorov-Smirnov at the 1% level
    assert abs(values.mean() - 0.5) < 0.02 and abs(values.var() - 1 / 12) < 0.01
    again = registry.get("random", model, seed=3, verbose=0).explain(x, batch_size=7)
    np.testing.assert_array_equal(scores, again)
    other = registry.get("random", model, seed=4, verbose=0).explain(x)
    assert not np.allclose(scores, other)
    normal = registry.get("random", model, distribution="normal", verbose=0).explain(x).ravel()
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1.0) < 0.05


def test_centered_gaussian_control():
    model = tiny.linear_softmax((9, 7, 1))
    got = registry.get("centered_gaussian", model, sigma=0.2, verbose=0).explain(np.ones((2, 9, 7, 1)))
    i, j = np.meshgrid(np.arange(9) - 4.0, np.arange(7) - 3.0, indexing="ij")
    expected = np.exp(-(i ** 2 / (2 * (0.2 * 9) ** 2) + j ** 2 / (2 * (0.2 * 7) ** 2)))
    np.testing.assert_allclose(got, np.stack([expected] * 2), rtol=1e-6)
    assert got[0, 4, 3] == pytest.approx(1.0) and got[0].argmax() == 4 * 7 + 3
    rows_model = tiny.linear_softmax((6,))
    line = registry.get("centered_gaussian", rows_model, verbose=0).explain(np.zeros((1, 6)))[0]
    np.testing.assert_allclose(line, line[::-1], rtol=1e-6)  # symmetric about the centre 2.5


@pytest.mark.parametrize("name", ["smoothgrad", "vargrad"])
def test_noisy_gradients_seeded_and_batch_invariant(name):
    model = tiny.gap_cnn(strides=1)
    x = np.random.default_rng(8).normal(size=(5, 6, 6, 2)).astype(np.float32)
    make = lambda seed, ibs: registry.get(name, model, n_samples=6, seed=seed, internal_batch_size=ibs,  # noqa
                                           verbose=0)
    first = make(1, 256).explain(x, batch_size=32)
    np.testing.assert_array_equal(first, make(1, 256).explain(x, batch_size=32))
    np.testing.assert_allclose(make(1, 4).explain(x, batch_size=2), first, rtol=1e-4, atol=1e-9)
    assert not np.allclose(make(2, 256).explain(x), first)
    assert np.all(first >= 0)


def test_smoothgrad_without_noise_is_the_gradient_and_vargrad_zero():
    model = tiny.gap_cnn(strides=1)
    x = np.random.default_rng(9).normal(size=(2, 6, 6, 2)).astype(np.float32)
    grad = registry.get("gradient", model, verbose=0).explain(x)
    smooth = registry.get("smoothgrad", model, n_samples=3, noise_level=0.0, verbose=0).explain(x)
    var = registry.get("vargrad", model, n_samples=3, noise_level=0.0, verbose=0).explain(x)
    np.testing.assert_allclose(smooth, grad, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(var, 0.0, atol=1e-12)


@pytest.mark.parametrize("name,hyper", [
    ("gradient", {}), ("integrated_gradients", {"steps": 4, "internal_batch_size": 3}),
    ("gradcam", {}), ("guided_gradcam", {}), ("occlusion", {"patch_size": 3, "stride": 2, "internal_batch_size": 5}),
])
def test_batched_equals_one_by_one(name, hyper):
    model = tiny.gap_cnn(strides=2)
    x = np.random.default_rng(10).normal(size=(4, 6, 6, 2)).astype(np.float32)
    explainer = registry.get(name, model, verbose=0, **hyper)
    batched = explainer.explain(x, batch_size=32)
    single = np.concatenate([explainer.explain(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-8)


def test_hooks_restore_the_model():
    model = tiny.gap_cnn(strides=1)
    x = np.random.default_rng(11).normal(size=(2, 6, 6, 2)).astype(np.float32)
    before = model(x).numpy()
    for name in ("gradcam", "guided_gradcam"):
        registry.get(name, model, output="logit", verbose=0).explain(x)
    assert all("call" not in layer.__dict__ for layer in hooks.all_layers(model))
    assert model.get_layer("conv").activation is keras.activations.relu
    np.testing.assert_array_equal(model(x).numpy(), before)


def test_smoothgrad_and_vargrad_match_a_hand_loop():
    # The documented sampling: noise j of the i-th input of the call ~ stateless_normal(seed=[seed, i n + j]),
    # scaled by noise_level * (max - min) of that input.
    model = tiny.gap_cnn(strides=2)
    x = np.random.default_rng(12).normal(size=(3, 6, 6, 2)).astype(np.float32)
    n, level, seed, targets = 5, 0.2, 7, np.array([1, 0, 2])
    grads = []
    for i, xi in enumerate(x):
        sigma = level * (xi.max() - xi.min())
        rows = []
        for j in range(n):
            noisy = tf.constant(xi[None]) + sigma * tf.random.stateless_normal((1,) + xi.shape, seed=[seed, i * n + j])
            with tf.GradientTape() as tape:
                tape.watch(noisy)
                p = model(noisy)[0, targets[i]]
            rows.append(tape.gradient(p, noisy)[0].numpy())
        grads.append(np.stack(rows))
    grads = np.stack(grads)                                                   # (N, n, H, W, C)
    hyper = dict(n_samples=n, noise_level=level, seed=seed, internal_batch_size=4, verbose=0)
    smooth = registry.get("smoothgrad", model, **hyper).explain(x, targets)
    var = registry.get("vargrad", model, **hyper).explain(x, targets)
    np.testing.assert_allclose(smooth, np.abs(grads.mean(axis=1)).sum(axis=-1), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(var, grads.var(axis=1).sum(axis=-1), rtol=1e-3, atol=1e-10)


def test_progress_bar_only_when_asked_or_long(capsys):
    model = tiny.gap_cnn(strides=1)
    x = np.zeros((4, 6, 6, 2), np.float32)
    registry.get("gradient", model, verbose=1).explain(x, batch_size=1)      # short: no bar
    assert "sample" not in capsys.readouterr().out
    registry.get("gradient", model, verbose=2).explain(x, batch_size=1)
    assert "4/4" in capsys.readouterr().out
