"""MEED's train_step, losses, prior and legacy flags on tiny models with known answers."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kernels import gumbel_topk, sliced_wasserstein
from baselines import networks
from meed import MEED, Legacy
from meed import prior as prior_ops
from meed.presets import PRESETS, get

SHAPE = (8, 8, 1)


def linear_softmax(name, seed=0, shape=SHAPE):
    """softmax(W x + b): no dropout, so every forward pass is deterministic."""
    x = keras.Input(shape)
    h = keras.layers.Flatten()(x)
    h = keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=seed))(h)
    return keras.Model(x, keras.layers.Softmax()(h), name=name)


def make_meed(**kwargs):
    keras.utils.set_random_seed(0)
    blackbox = linear_softmax("blackbox", seed=1)
    approximators = [networks.masked_approximator(linear_softmax(f"trunk_{n}", seed=i + 2), SHAPE[:2], name=n)
                     for i, n in enumerate(("approximator_s", "approximator_u"))]
    options = dict(k=6, modality="image", adversarial="ce", lu_weight=0.5, seed=3)
    options.update(kwargs)
    model = MEED(blackbox, networks.image_explainer(SHAPE), *approximators, **options)
    model.compile(approximator_optimizer=keras.optimizers.SGD(0.1), explainer_optimizer=keras.optimizers.SGD(0.1))
    return model


def batch(n=16, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(size=(n,) + SHAPE).astype(np.float32))


def snapshot(model):
    return [v.numpy().copy() for v in model.weights]


def changed(before, model):
    return any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.weights))


def test_each_half_of_train_step_updates_only_its_own_networks():
    model = make_meed()
    x, y, y_in, log_r = model._prepare(batch())
    nets = {name: getattr(model, name) for name in ("blackbox", "explainer", "approximator_s", "approximator_u")}
    before = {name: snapshot(net) for name, net in nets.items()}
    model.approximator_step(x, y, y_in, log_r)
    assert changed(before["approximator_s"], nets["approximator_s"])
    assert changed(before["approximator_u"], nets["approximator_u"])
    assert not changed(before["explainer"], nets["explainer"])
    assert not changed(before["blackbox"], nets["blackbox"])

    before = {name: snapshot(net) for name, net in nets.items()}
    model.explainer_step(x, y, y_in, log_r)
    assert changed(before["explainer"], nets["explainer"])
    for name in ("approximator_s", "approximator_u", "blackbox"):
        assert not changed(before[name], nets[name]), name


def test_fit_trains_both_halves_and_logs_both_losses():
    model = make_meed()
    history = model.fit(batch(64), batch_size=16, epochs=2, verbose=0)
    assert {"loss_approximators", "loss_explainer", "ls", "lu"} <= set(history.history)
    assert int(model.explainer_optimizer.iterations) == int(model.approximator_optimizer.iterations) == 8
    assert int(model.epoch.numpy()) == 2  # m of eq. 12 follows the epochs


def _mask_for(model, x, y_in, log_r, slot):
    """The relaxed mask a step draws: the same stateless seed as the model's (seed, 4 * step + slot)."""
    fused = model.explainer([x, y_in], training=True)
    if log_r is not None:
        fused = prior_ops.fuse(fused, log_r, model._m())
    return gumbel_topk(fused, model.k, model.tau, seed=model._noise_seed(slot))


def test_ce_variant_losses_match_hand_computed_values():
    model = make_meed(use_prior=False)
    x, y, y_in, log_r = model._prepare(batch())
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
    model = make_meed(use_prior=False, adversarial="swd", lu_weight=1.0, n_projections=16)
    x, y, y_in, log_r = model._prepare(batch())
    mask = _mask_for(model, x, y_in, log_r, slot=0)
    p_u = model.approximator_u([x, 1 - mask])
    swd = float(sliced_wasserstein(p_u, y, 16, seed=model._noise_seed(1)))
    _, _, lu = model.approximator_step(x, y, y_in, log_r)
    assert float(lu) == pytest.approx(swd, rel=1e-5)

    mask = _mask_for(model, x, y_in, log_r, slot=2)
    p_s, p_u = model.approximator_s([x, mask]), model.approximator_u([x, 1 - mask])
    expected = float(model._ce(y, p_s)) - float(sliced_wasserstein(p_u, y, 16, seed=model._noise_seed(3)))
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
    """For p = softmax(W x), d p_c / d x = p_c (W_c - sum_j p_j W_j): the GI prior is |that * x|."""
    model = linear_softmax("m", seed=5, shape=(4,))
    w = model.layers[2].kernel.numpy()  # (4, 2)
    b = model.layers[2].bias.numpy()
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    p = model(x).numpy()
    c = p.argmax(1)
    grads = p[np.arange(3), c][:, None] * (w[:, c].T - p @ w.T)
    expected = np.abs(grads * x)
    got = prior_ops.gradient_input_scores(lambda v: model(v), tf.constant(x), tf.constant(p), channel_axis=None)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert b.shape == (2,)


def test_legacy_sampling_bug_makes_the_training_mask_unbounded():
    logits = tf.constant(np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32) * 3)
    for legacy, bounded in ((Legacy(), True), (Legacy(sampling_bug=True), False)):
        model = make_meed(use_prior=False, legacy=legacy)
        _, mask = model._sample(logits, None, slot=0)
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
    model = make_meed()
    model.epoch.assign(5)
    assert int(model._m()) == 5
    fixed = make_meed(legacy=Legacy(fixed_m=True))
    fixed.epoch.assign(5)
    assert int(fixed._m()) == 1
    assert make_meed(legacy=Legacy(no_prior=True)).use_prior is False
    assert make_meed().use_prior is True


def test_legacy_of_each_preset_lists_the_quirks_of_its_script():
    image = Legacy.of(PRESETS["fashion_mnist"])
    assert image.sampling_bug and image.prior_sign and image.fixed_m and not image.no_prior
    text = Legacy.of(PRESETS["imdb"])
    assert text.no_prior and not text.sampling_bug  # the IMDB script's sampling layer is correct
    for preset in PRESETS.values():
        legacy = Legacy.of(preset)
        assert legacy.sen_reset and legacy.tps_blackbox


def test_ablation_switches():
    no_output = make_meed(use_output=False)
    x = batch(4)
    # Without model-output feedback E's y input is zeros: its logits do not depend on M.
    y_zero = tf.zeros((4, 2))
    np.testing.assert_allclose(no_output(x).numpy(), no_output.explainer([x, y_zero]).numpy(), rtol=1e-6)
    no_ail = make_meed(use_ail=False)
    before = snapshot(no_ail.approximator_u)
    no_ail.fit(batch(32), batch_size=16, epochs=1, verbose=0)
    assert not changed(before, no_ail.approximator_u)  # A_u plays no part without AIL


def test_explain_select_and_conditioning():
    model = make_meed()
    x = batch(5).numpy()
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
    # Integer targets condition E on one-hot rows; soft rows are used as given.
    onehot = model.explain(x, targets=[1] * 5)
    np.testing.assert_allclose(onehot, model.explain(x, targets=np.tile([[0.0, 1.0]], (5, 1))), rtol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="k"):
        make_meed(k=65)
    model = make_meed()
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \(N, 8, 8, 1\)"):
        model.explain(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="targets"):
        model.explain(np.zeros((2, 8, 8, 1), np.float32), targets=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="targets"):
        model.explain(np.zeros((2, 8, 8, 1), np.float32), targets=[0, 2])
    with pytest.raises(ValueError, match="NaN"):
        model.explain(np.full((2, 8, 8, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="k"):
        model.select(np.zeros((2, 8, 8, 1), np.float32), k=0)
    with pytest.raises(ValueError, match="unknown value 'fashion'"):
        get("fashion")
    with pytest.raises(ValueError, match="adversarial"):
        make_meed(adversarial="wasserstein")
