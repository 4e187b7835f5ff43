"""MEED's train_step, losses, prior and legacy flags on tiny models with known answers."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kernels import gumbel_topk, sliced_wasserstein
from meed import Legacy
from meed import prior as prior_ops
from meed.presets import PRESETS, get
from tests import tiny
from tests.helpers import changed, snapshot


def moved(before, net):
    """Whether any weight of ``net`` differs from the snapshot ``before``."""
    return any(changed(before, net.weights))


def test_each_half_of_train_step_updates_only_its_own_networks():
    model = tiny.make_meed()
    x, y, y_in, log_r = model.prepare(tiny.meed_batch())
    nets = {name: getattr(model, name) for name in ("blackbox", "explainer", "approximator_s", "approximator_u")}
    before = {name: snapshot(net.weights) for name, net in nets.items()}
    model.approximator_step(x, y, y_in, log_r)
    assert moved(before["approximator_s"], nets["approximator_s"])
    assert moved(before["approximator_u"], nets["approximator_u"])
    assert not moved(before["explainer"], nets["explainer"])
    assert not moved(before["blackbox"], nets["blackbox"])

    before = {name: snapshot(net.weights) for name, net in nets.items()}
    model.explainer_step(x, y, y_in, log_r)
    assert moved(before["explainer"], nets["explainer"])
    for name in ("approximator_s", "approximator_u", "blackbox"):
        assert not moved(before[name], nets[name]), name


def test_fit_trains_both_halves_and_logs_both_losses():
    model = tiny.make_meed()
    history = model.fit(tiny.meed_batch(64), batch_size=16, epochs=2, verbose=0)
    assert {"loss_approximators", "loss_explainer", "ls", "lu"} <= set(history.history)
    assert int(model.explainer_optimizer.iterations) == int(model.approximator_optimizer.iterations) == 8
    assert int(model.epoch.numpy()) == 2  # m of eq. 12 follows the epochs


def _mask_for(model, x, y_in, log_r, slot):
    """The relaxed mask a step draws: the same stateless seed as the model's (seed, 4 * step + slot)."""
    fused = model.explainer([x, y_in], training=True)
    if log_r is not None:
        fused = prior_ops.fuse(fused, log_r, model.prior_m())
    return gumbel_topk(fused, model.k, model.tau, seed=model.noise_seed(slot))


def test_ce_variant_losses_match_hand_computed_values():
    model = tiny.make_meed(use_prior=False)
    x, y, y_in, log_r = model.prepare(tiny.meed_batch())
    mask_a = _mask_for(model, x, y_in, log_r, slot=0)
    p_s, p_u = model.approximator_s([x, mask_a]).numpy(), model.approximator_u([x, 1 - mask_a]).numpy()
    yv = y.numpy()

    def ce(t, p):
        return float(np.mean(-np.sum(t * np.log(np.clip(p, 1e-7, 1 - 1e-7)), axis=1)))

    loss_a, ls, lu = model.approximator_step(x, y, y_in, log_r)
    assert float(ls) == pytest.approx(ce(yv, p_s), rel=1e-5)
    assert float(lu) == pytest.approx(ce(yv, p_u), rel=1e-5)
    assert float(loss_a) == pytest.approx(ce(yv, p_s) + 0.5 * ce(yv, p_u), rel=1e-5)

    mask_e = _mask_for(model, x, y_in, log_r, slot=2)  # approximators were just updated: recompute
    p_s, p_u = model.approximator_s([x, mask_e]).numpy(), model.approximator_u([x, 1 - mask_e]).numpy()
    loss_e = model.explainer_step(x, y, y_in, log_r)
    # The adversarial term of the explainer step is cross-entropy to the flipped target 1 - y (App. B.1).
    assert float(loss_e) == pytest.approx(ce(yv, p_s) + 0.5 * ce(1 - yv, p_u), rel=1e-5)


def test_swd_variant_losses_match_hand_computed_values():
    model = tiny.make_meed(use_prior=False, adversarial="swd", lu_weight=1.0, n_projections=16)
    x, y, y_in, log_r = model.prepare(tiny.meed_batch())
    mask = _mask_for(model, x, y_in, log_r, slot=0)
    p_u = model.approximator_u([x, 1 - mask])
    swd = float(sliced_wasserstein(p_u, y, 16, seed=model.noise_seed(1)))
    _, _, lu = model.approximator_step(x, y, y_in, log_r)
    assert float(lu) == pytest.approx(swd, rel=1e-5)

    mask = _mask_for(model, x, y_in, log_r, slot=2)
    p_s, p_u = model.approximator_s([x, mask]), model.approximator_u([x, 1 - mask])
    expected = (float(tf.reduce_mean(keras.losses.categorical_crossentropy(y, p_s)))
                - float(sliced_wasserstein(p_u, y, 16, seed=model.noise_seed(3))))
    assert float(model.explainer_step(x, y, y_in, log_r)) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_prior_fusion_is_equation_12():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5)).astype(np.float32)
    scores = rng.uniform(size=(3, 5)).astype(np.float32)
    m = 3
    fused = prior_ops.fuse(tf.constant(logits), prior_ops.log_prior(tf.constant(scores)), m).numpy()
    z = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    r = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)  # r >= 0, sum 1 via softmax (Section 3.4)
    numerator = (z ** m * r) ** (1 / (m + 1))
    expected = numerator / numerator.sum(1, keepdims=True)
    got = np.exp(fused) / np.exp(fused).sum(1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_prior_loss_is_equation_13_with_mean_absolute_error():
    logits = tf.constant([[0.0, 1.0, 2.0]])
    fused = tf.constant([[1.0, 0.0, 0.0]])
    soft = lambda v: np.exp(v) / np.exp(v).sum()  # noqa: E731
    expected = np.mean(np.abs(soft(np.array([1.0, 0, 0])) - soft(np.array([0.0, 1, 2])))) / (2 + 1)
    assert float(prior_ops.prior_loss(fused, logits, 2)) == pytest.approx(expected, rel=1e-6)


def test_gradient_input_prior_on_a_linear_softmax_model():
    """For p = softmax(W x + b), d p_c / d x = p_c (W_c - sum_j p_j W_j): the GI prior is |that * x|."""
    def expected_gi(model, x):
        w, _ = tiny.kernel_of(model)  # (..., 2)
        p = model(x).numpy()
        c = p.argmax(1)
        grads = p[np.arange(len(x)), c].reshape((-1,) + (1,) * (x.ndim - 1)) * (
            np.moveaxis(w[..., c], -1, 0) - np.einsum("...k,nk->n...", w, p))
        return np.abs(grads * x)

    rows_model = tiny.linear_softmax((4,), seed=5, bias=True)  # the bias moves p, hence the gradient
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    got = prior_ops.gradient_input_scores(rows_model, tf.constant(x), rows_model(x), channel_axis=None)
    np.testing.assert_allclose(got.numpy(), expected_gi(rows_model, x), rtol=1e-5, atol=1e-7)
    # Images: summed over the channels, then max-pooled over patch x patch cells (the ImageNet grid).
    image_model = tiny.linear_softmax((4, 4, 2), seed=6, bias=True)
    images = tiny.images(2, (4, 4, 2), seed=2)
    per_pixel = expected_gi(image_model, images).sum(axis=-1)
    got = prior_ops.gradient_input_scores(image_model, tf.constant(images), image_model(images))
    np.testing.assert_allclose(got.numpy(), per_pixel, rtol=1e-5, atol=1e-7)
    pooled = prior_ops.gradient_input_scores(image_model, tf.constant(images), image_model(images), patch=2)
    np.testing.assert_allclose(pooled.numpy(), per_pixel.reshape(2, 2, 2, 2, 2).max(axis=(2, 4)), rtol=1e-5,
                               atol=1e-7)


def test_legacy_sampling_bug_makes_the_training_mask_unbounded():
    logits = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32) * 3)
    for legacy, bounded in ((Legacy(), True), (Legacy(sampling_bug=True), False)):
        model = tiny.make_meed(use_prior=False, legacy=legacy)
        _, mask = model.sample_mask(logits, None, slot=0)
        inside = bool(np.all((mask.numpy() >= 0) & (mask.numpy() <= 1)))
        assert inside == bounded


def test_legacy_prior_sign_flips_the_normalisation():
    scores = tf.constant([[0.0, 1.0, 3.0]])
    np.testing.assert_allclose(prior_ops.log_prior(scores, legacy_sign=True).numpy(),
                               tf.nn.log_softmax(-scores).numpy(), rtol=1e-6)
    # The paper's intent favours the salient feature, the released code the least salient one.
    assert prior_ops.log_prior(scores).numpy().argmax() == 2
    assert prior_ops.log_prior(scores, legacy_sign=True).numpy().argmax() == 0


def test_legacy_fixed_m_and_no_prior():
    model = tiny.make_meed()
    model.epoch.assign(5)
    assert int(model.prior_m()) == 5
    fixed = tiny.make_meed(legacy=Legacy(fixed_m=True))
    fixed.epoch.assign(5)
    assert int(fixed.prior_m()) == 1
    assert tiny.make_meed(legacy=Legacy(no_prior=True)).use_prior is False
    assert tiny.make_meed().use_prior is True


def test_legacy_of_each_preset_lists_the_quirks_of_its_script():
    image = Legacy.of(PRESETS["fashion_mnist"])
    assert image.sampling_bug and image.prior_sign and image.fixed_m and not image.no_prior
    text = Legacy.of(PRESETS["imdb"])
    assert text.no_prior and not text.sampling_bug  # the IMDB script's sampling layer is correct
    for preset in PRESETS.values():
        legacy = Legacy.of(preset)
        assert legacy.sen_reset and legacy.tps_blackbox


def test_ablation_switches():
    no_output = tiny.make_meed(use_output=False)
    x = tiny.meed_batch(4)
    # Without model-output feedback E's y input is zeros: its logits do not depend on M.
    y_zero = tf.zeros((4, 2))
    np.testing.assert_allclose(no_output(x).numpy(), no_output.explainer([x, y_zero]).numpy(), rtol=1e-6)
    no_ail = tiny.make_meed(use_ail=False)
    before = snapshot(no_ail.approximator_u.weights)
    no_ail.fit(tiny.meed_batch(32), batch_size=16, epochs=1, verbose=0)
    assert not moved(before, no_ail.approximator_u)  # A_u plays no part without AIL


def test_explain_select_and_conditioning():
    model = tiny.make_meed()
    x = tiny.meed_batch(5).numpy()
    scores = model.explain(x)
    assert scores.shape == (5, 8, 8)
    np.testing.assert_allclose(scores, model(x).numpy(), rtol=1e-5)
    masks = model.select(x)
    assert masks.shape == (5, 8, 8) and np.all(masks.sum(axis=(1, 2)) == 6)
    assert np.all(model.select(x, k=10).sum(axis=(1, 2)) == 10)
    # Batched = one by one.
    one_by_one = np.concatenate([model.explain(x[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(scores, one_by_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.explain(x, batch_size=2), scores, rtol=1e-5, atol=1e-6)
    # Integer targets and one-hot rows condition E on the one-hot row of the class; without targets E is
    # conditioned on M(x), which ``conditioning`` can also give explicitly (soft rows are used as given).
    onehot = model.explain(x, targets=[1] * 5)
    np.testing.assert_allclose(onehot, model.explain(x, targets=np.tile([[0.0, 1.0]], (5, 1))), rtol=1e-6)
    assert not np.allclose(onehot, scores, atol=1e-4)
    probabilities = model.blackbox.predict(x, verbose=0)
    np.testing.assert_allclose(model.explain(x, conditioning=probabilities), scores, rtol=1e-5, atol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="k"):
        tiny.make_meed(k=65)
    model = tiny.make_meed()
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \(N, 8, 8, 1\)"):
        model.explain(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match=r"targets: expected one-hot rows of shape \(2, 2\)"):
        model.explain(np.zeros((2, 8, 8, 1), np.float32), targets=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="conditioning: expected rows of probabilities"):
        model.explain(np.zeros((2, 8, 8, 1), np.float32), conditioning=np.full((2, 2), 0.9, np.float32))
    with pytest.raises(ValueError, match="conditioning: give targets .* or conditioning .*, not both"):
        model.explain(np.zeros((2, 8, 8, 1), np.float32), targets=[0, 1], conditioning=np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="targets"):
        model.explain(np.zeros((2, 8, 8, 1), np.float32), targets=[0, 2])
    with pytest.raises(ValueError, match="NaN"):
        model.explain(np.full((2, 8, 8, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="k"):
        model.select(np.zeros((2, 8, 8, 1), np.float32), k=0)
    with pytest.raises(ValueError, match="unknown value 'fashion'"):
        get("fashion")
    with pytest.raises(ValueError, match="adversarial"):
        tiny.make_meed(adversarial="wasserstein")
