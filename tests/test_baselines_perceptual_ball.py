"""Adversarial perturbation on the perceptual ball (baselines.perceptual_ball) and its batched L-BFGS
(kernels.optim.lbfgs_minimize): closed-form answers on linear models, torch.optim.LBFGS's semantics
re-derived in NumPy, batched = one by one, and the argument errors."""
import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from keras import layers as kl

from baselines.perceptual_ball import PerceptualBall, default_layers, smoothing_matrix
from kernels import hooks
from kernels.optim import lbfgs_iterations, lbfgs_minimize
from tests import tiny

# ---------------------------------------------------------------------------------- the L-BFGS kernel


def torch_lbfgs(fun, x0, max_iter, history_size, lr=1.0, tol_grad=1e-7, tol_change=1e-9):
    """One ``torch.optim.LBFGS(...).step()`` without line search on one image, in float64 NumPy, written
    from torch's documented algorithm: returns (x, steps moved, curvature pairs skipped)."""
    max_eval = max_iter * 5 // 4
    x = np.array(x0, np.float64)
    f, g = fun(x)
    evals, moved, skipped = 1, 0, 0
    if np.abs(g).max() <= tol_grad:
        return x, moved, skipped
    pairs, h_diag = [], 1.0  # (s, y, 1 / y.s), oldest first
    t = g_old = f_old = None
    for n in range(1, max_iter + 1):
        if n == 1:
            d = -g
        else:
            s, y = d * t, g - g_old
            if y @ s > 1e-10:
                pairs = (pairs + [(s, y, 1.0 / (y @ s))])[-history_size:]
                h_diag = (y @ s) / (y @ y)
            else:
                skipped += 1
            q, alphas = -g, []
            for s_i, y_i, rho_i in reversed(pairs):
                alphas.insert(0, (s_i @ q) * rho_i)
                q = q - alphas[0] * y_i
            d = q * h_diag
            for (s_i, y_i, rho_i), a_i in zip(pairs, alphas):
                d = d + (a_i - (y_i @ d) * rho_i) * s_i
        g_old, f_old = g, f
        t = lr * min(1.0, 1.0 / np.abs(g).sum()) if n == 1 else lr
        if g @ d > -tol_change:
            break
        x, moved = x + t * d, moved + 1
        if n == max_iter:
            break
        f, g = fun(x)
        evals += 1
        if (evals >= max_eval or np.abs(g).max() <= tol_grad or np.abs(t * d).max() <= tol_change
                or abs(f - f_old) < tol_change):
            break
    return x, moved, skipped


def minimize(objective, x0, **options):
    return [v.numpy() for v in tf.function(lambda x: lbfgs_minimize(objective, x, **options))(tf.constant(x0))]


def test_lbfgs_matches_torch_step_per_row_with_history_shifts_skipped_pairs_and_stops():
    # Non-convex rows (negative curvature where b sin'' > a): some curvature pairs get skipped.
    rng = np.random.default_rng(1)
    a, b, c = rng.uniform(0.05, 0.5, (5, 7)), rng.uniform(1.0, 2.0, (5, 7)), rng.normal(size=(5, 7))
    x0 = rng.normal(size=(5, 7))
    at, bt, ct = (tf.constant(v) for v in (a, b, c))

    def objective(x):
        return 0.5 * tf.reduce_sum(at * x ** 2, 1) + tf.reduce_sum(bt * tf.sin(x + ct), 1)

    skipped = 0
    for max_iter, history in ((15, 3), (40, 100), (3, 5)):
        x, steps = minimize(objective, x0, max_iter=max_iter, history_size=history)
        for i in range(5):
            def fun(v):
                return 0.5 * a[i] @ v ** 2 + b[i] @ np.sin(v + c[i]), a[i] * v + b[i] * np.cos(v + c[i])

            expected, moved, skips = torch_lbfgs(fun, x0[i], max_iter, history)
            np.testing.assert_allclose(x[i], expected, rtol=1e-6, atol=1e-7, err_msg=f"{max_iter} {history} {i}")
            assert steps[i] == moved, (max_iter, history, i)
            skipped += skips
        if max_iter == 40:
            assert len(set(steps)) > 1  # rows stop at different iterations
    assert skipped > 0
    assert [lbfgs_iterations(n) for n in (1, 2, 3, 4, 100)] == [1, 1, 2, 4, 100]  # torch's max_eval = 5/4 max_iter


def test_lbfgs_reaches_the_minimisers_of_independent_quadratics_batched_equals_one_by_one():
    rng = np.random.default_rng(0)
    roots = rng.normal(size=(4, 6, 6))
    hessians = roots @ roots.transpose(0, 2, 1) + np.arange(1, 5)[:, None, None] * np.eye(6)
    linear = rng.normal(size=(4, 6))
    solution = np.linalg.solve(hessians, linear[..., None])[..., 0]
    x0 = rng.normal(size=(4, 6))
    x0[2] = solution[2]  # already optimal: no step

    def quadratics(rows):
        h, l = tf.constant(hessians[rows]), tf.constant(linear[rows])
        return lambda x: 0.5 * tf.einsum("bi,bij,bj->b", x, h, x) - tf.reduce_sum(l * x, 1)

    x, steps = minimize(quadratics(slice(None)), x0, max_iter=60, history_size=10, tolerance_change=0.0)
    np.testing.assert_allclose(x, solution, atol=1e-7)
    assert steps[2] == 0 and np.all(x[2] == x0[2]) and np.all(steps[[0, 1, 3]] > 2)
    for i in range(4):
        alone, count = minimize(quadratics(slice(i, i + 1)), x0[i:i + 1], max_iter=60, history_size=10,
                                tolerance_change=0.0)
        np.testing.assert_allclose(alone[0], x[i], rtol=1e-12, atol=1e-14)
        assert count[0] == steps[i]


# ----------------------------------------------------------------------------- closed-form answers


def linear_case(shape=(4, 4, 3), seed=0):
    """A 2-class linear softmax model (kernel, bias known) and two standard-normal images."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    kernel, bias = rng.normal(0, 0.3, (n, 2)).astype(np.float32), np.array([0.2, -0.1], np.float32)
    return tiny.fixed_dense(shape, kernel, bias), kernel, bias, tiny.gaussian(2, shape, seed=seed + 1)


def margins(model, x, targets, kind="runner_up"):
    z = hooks.class_logits(model, tf.constant(x), hooks.find_logits(model)).numpy()
    picked = z[np.arange(len(x)), targets]
    if kind == "target":
        return picked
    return picked - np.where(np.eye(z.shape[1], dtype=bool)[targets], -np.inf, z).max(axis=1)


def test_linear_logits_without_layers_give_the_closed_form_perturbation_and_map():
    model, kernel, bias, x = linear_case()
    n, scalar, value = x[0].size, 1.0, -2.0
    targets = model.predict(x, verbose=0).argmax(axis=1)  # the default: flip the prediction
    assert sorted(targets) == [0, 1]
    explainer = PerceptualBall(model, layers=[], steps=30, smooth_sigma=0, verbose=0)
    perturbed = explainer.perturbed(x)
    scores = explainer.explain(x)
    m0, final = margins(model, x, targets), margins(model, perturbed, targets)
    for i, t in enumerate(targets):
        g = (kernel[:, t] - kernel[:, 1 - t]).reshape(x[0].shape)
        squared = np.sum(g ** 2)
        coefficient = (value - m0[i]) / (scalar / n + squared)
        np.testing.assert_allclose(perturbed[i] - x[i], coefficient * g, rtol=1e-4, atol=1e-5 * np.abs(g).max())
        # The map is |c| times the per-pixel RMS of g over the channels.
        np.testing.assert_allclose(scores[i], abs(coefficient) * np.sqrt(np.mean(g ** 2, axis=-1)), rtol=1e-4)
        # The final margin m0 + c ||g||^2 misses v by (m0 - v) (s / N) / (s / N + ||g||^2): close to v.
        np.testing.assert_allclose(final[i], m0[i] + coefficient * squared, rtol=1e-4)
        assert abs(final[i] - value) < 0.01 * abs(m0[i] - value)
    assert np.all(m0 > 0)  # predicted: the optimiser had more than 2 logits to go
    # The multi-class variant: (z_t - value)^2 with g = w_t.
    multi = PerceptualBall(model, layers=[], margin="target", steps=30, smooth_sigma=0, verbose=0)
    perturbed = multi.perturbed(x, targets)
    z0 = margins(model, x, targets, "target")
    for i, t in enumerate(targets):
        w = kernel[:, t].reshape(x[0].shape)
        expected = (value - z0[i]) / (scalar / n + np.sum(w ** 2)) * w
        np.testing.assert_allclose(perturbed[i] - x[i], expected, rtol=1e-4, atol=1e-5 * np.abs(w).max())
    assert np.all(np.abs(margins(model, perturbed, targets, "target") - value) < 0.01 * np.abs(z0 - value))


def region_model(kernel, shape=(4, 4, 3), crop=((0, 2), (0, 2))):
    """Logits W flatten(x) (+ zero weights on a side branch); the side branch "region" (a crop) is a linear
    feature that is the identity on the top-left 2 x 2 pixels R."""
    x = keras.Input(shape)
    region = kl.Flatten()(kl.Cropping2D(crop, name="region")(x))
    both = kl.Concatenate()([kl.Flatten()(x), region])
    dense = kl.Dense(2, name="logits", kernel_initializer="zeros")
    out = kl.Softmax()(dense(both))
    dense.set_weights([np.concatenate([kernel, np.zeros((region.shape[-1], 2), np.float32)]), np.zeros(2, np.float32)])
    return keras.Model(x, out)


def test_a_large_gamma_on_an_identity_feature_pushes_the_perturbation_out_of_its_region():
    _, kernel, _, x = linear_case(seed=3)
    model = region_model(kernel)
    gamma, scalar, value, n, n_region = 1e4, 1.0, -2.0, x[0].size, 2 * 2 * 3
    inside = np.zeros(x[0].shape, bool)
    inside[:2, :2] = True  # Cropping2D(((0, 2), (0, 2))) keeps rows 0-1 and columns 0-1
    explainer = PerceptualBall(model, layers=["region"], gamma=gamma, steps=50, smooth_sigma=0, verbose=0)
    targets = np.array([0, 1])
    delta = explainer.perturbed(x, targets) - x
    m0 = margins(model, x, targets)
    # delta = c M^-1 g, c = (v - m0) / (1 + g' M^-1 g), M = (s / N) I + gamma / N_R on R.
    inverse = np.where(inside, 1.0 / (scalar / n + gamma / n_region), n / scalar)
    for i, t in enumerate(targets):
        g = (kernel[:, t] - kernel[:, 1 - t]).reshape(x[0].shape)
        expected = (value - m0[i]) / (1.0 + np.sum(g * inverse * g)) * inverse * g
        np.testing.assert_allclose(delta[i], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
        assert np.abs(delta[i][inside]).max() < 1e-3 * np.abs(delta[i][~inside]).max()
    # Without gamma the same pixels move like the others.
    free = PerceptualBall(model, layers=["region"], gamma=0.0, steps=50, smooth_sigma=0, verbose=0)
    assert np.abs(free.perturbed(x, targets) - x)[:, :2, :2].max() > 0.1 * np.abs(delta).max()


def test_pixels_the_model_never_reads_score_exactly_zero():
    model = tiny.corner_model(8, 3, [1.0, -1.0], [0.0, 0.0])  # reads the top-left 3 x 3 pixels only
    x = tiny.images(3, (8, 8, 1), seed=4)
    for layers, gamma in (([], 0.0), (["crop"], 1.0)):
        scores = PerceptualBall(model, layers=layers, gamma=gamma, steps=20, smooth_sigma=0, verbose=0).explain(x)
        outside = np.ones((8, 8), bool)
        outside[:3, :3] = False
        assert np.all(scores[:, outside] == 0.0), layers
        assert np.all(scores[:, :3, :3] > 1e-3), layers


def test_the_smoothing_is_scipy_gaussian_filter_in_reflect_mode():
    for size, sigma in ((5, 0.5), (8, 2.0), (30, 2.0), (3, 1.3)):  # radius 8 > 5 and 8: repeated reflections
        impulses = np.eye(size)
        np.testing.assert_allclose(smoothing_matrix(size, sigma),
                                   scipy.ndimage.gaussian_filter1d(impulses, sigma, axis=0, mode="reflect").T,
                                   atol=1e-7)
    model, _, _, x = linear_case(shape=(6, 10, 2), seed=5)  # H != W: rows and columns not swapped
    raw = PerceptualBall(model, layers=[], steps=10, smooth_sigma=0, verbose=0).explain(x)
    smooth = PerceptualBall(model, layers=[], steps=10, smooth_sigma=1.5, verbose=0).explain(x)
    for i in range(2):
        np.testing.assert_allclose(smooth[i], scipy.ndimage.gaussian_filter(raw[i], 1.5, mode="reflect"),
                                   rtol=1e-5, atol=1e-7)
    assert PerceptualBall(model, layers=[], verbose=0).smooth_sigma == pytest.approx(2 * 10 / 224)


# ------------------------------------------------------------------------------------ the explainer


def test_explain_batched_equals_one_by_one_and_defaults_to_the_prediction(image_model):
    model, x = image_model
    explainer = PerceptualBall(model, steps=20, verbose=0)
    assert explainer.get_config() == {
        "method": "perceptual_ball", "layers": ["conv"], "gamma": 10000.0, "scalar": 1.0, "value": -2.0,
        "margin": "runner_up", "steps": 20, "history_size": 100, "smooth_sigma": pytest.approx(2 * 8 / 224)}
    targets = np.array([0, 2, 1])
    batched = explainer.explain(x, targets)
    alone = np.concatenate([explainer.explain(x[i:i + 1], targets[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-7)
    assert np.all(batched.reshape(3, -1).max(axis=1) > 1e-3)
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    np.testing.assert_allclose(explainer.explain(x), explainer.explain(x, predicted), rtol=1e-6)
    # The conv layer's MSE holds the perturbation back: gamma = 0 moves the image further.
    free = PerceptualBall(model, gamma=0.0, steps=20, verbose=0).explain(x, targets)
    assert np.all(free.reshape(3, -1).max(axis=1) > 2 * batched.reshape(3, -1).max(axis=1))


def test_default_layers_are_the_relu_outputs_before_the_head():
    assert default_layers(tiny.bottleneck_cnn()) == ["conv1", "relu2"]
    assert default_layers(tiny.nested_cnn()) == ["conv_a", "block_out", "conv_c"]
    assert default_layers(tiny.image_cnn(hidden=5)) == ["conv"]  # not the Dense "hidden" after Flatten


def test_bad_arguments_are_errors_naming_the_argument(image_model):
    model, _ = image_model
    cases = [
        (dict(layers=["nope"]), "layers: unknown value 'nope'"),
        (dict(layers="conv"), "layers: expected a list"),
        (dict(layers=["conv", "conv"]), "layers: expected distinct"),
        (dict(gamma=-1.0), "gamma: expected a finite number >= 0"),
        (dict(scalar=float("nan")), "scalar"),
        (dict(value=float("inf")), "value"),
        (dict(steps=0), "steps: expected an integer >= 1, got 0"),
        (dict(history_size=0), "history_size"),
        (dict(margin="best"), "margin: unknown value 'best'"),
        (dict(smooth_sigma=-2.0), "smooth_sigma"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            PerceptualBall(model, **options)
    with pytest.raises(ValueError, match="model: perceptual_ball explains images"):
        PerceptualBall(tiny.tabular_mlp())
    with pytest.raises(ValueError, match="model: perceptual_ball needs the pre-softmax logits"):
        PerceptualBall(tiny.linear_softmax((8, 8, 3), softmax=False), layers=[])
    with pytest.raises(ValueError, match="layers: the model 'fixed_dense' has no ReLU output"):
        PerceptualBall(linear_case()[0])
