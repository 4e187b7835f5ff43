"""L2X, VIBI and CXPlain (baselines.amortised): what train_step updates, top-k selection, the planted XOR
task, CXPlain's Granger targets against a loop over features with the true label, seeds, bad inputs."""
import numpy as np
import pytest
import tensorflow as tf

import data
from baselines.amortised import CXPLAIN_EPSILON, CXPlain, L2X, VIBI
from data.synthetic import l2x_tabular
from eval import registry
from eval.groundtruth import chance_true_positive_rate, true_positive_rate
from tests import tiny
from tests.helpers import changed, snapshot


#: The black boxes' weights: W ~ N(0, 0.5^2) and a bias (tiny.linear_softmax).
BLACKBOX = dict(stddev=0.5, bias=True)


@pytest.fixture(scope="module")
def image_blackbox():
    return tiny.linear_softmax((8, 8, 1), **BLACKBOX)


@pytest.fixture(scope="module")
def xor_task():
    """The planted XOR task of L2X (features 0 and 1 decide the label) and a black box trained on it."""
    x, y, relevant = l2x_tabular("xor", 3000, seed=0)
    blackbox, _ = data.train_blackbox(tiny.dataset("xor", x, y, 2500, 100), epochs=8, seed=0, verbose=0)
    return blackbox, x[:2500], x[2500:], relevant[2500:]


# ------------------------------------------------------------------------------------------- training

@pytest.mark.parametrize("cls", [L2X, VIBI, CXPlain])
def test_train_step_updates_the_explainer_and_approximator_only(cls, image_blackbox):
    method = cls(image_blackbox, k=6, seed=0, verbose=0)
    blackbox_before = snapshot(image_blackbox.weights)
    explainer_before = snapshot(method.explainer.weights)
    approximator_before = snapshot(method.approximator.weights) if method.approximator is not None else []
    x = tiny.images(8)
    method.fit(x, np.arange(8) % 2, epochs=1, batch_size=4)
    assert not any(changed(blackbox_before, image_blackbox.weights))
    # The y branch of the shared MEED explainer gets zeros: its kernel has no gradient, its bias has.
    moved = dict(zip([v.path for v in method.explainer.weights], changed(explainer_before, method.explainer.weights)))
    assert not moved["y_dense/kernel"]
    assert sum(moved.values()) == len(moved) - 1
    if cls is CXPlain:
        assert method.approximator is None
    else:
        assert all(changed(approximator_before, method.approximator.weights))
    assert int(method.optimizer.iterations.numpy()) == 2


def test_all_three_share_the_meed_explainer_architecture(image_blackbox):
    from baselines import networks

    reference = networks.image_explainer((8, 8, 1), 2)
    for cls in (L2X, VIBI, CXPlain):
        method = cls(image_blackbox, k=4, verbose=0)
        assert [w.shape for w in method.explainer.weights] == [w.shape for w in reference.weights]
        assert method.explainer.count_params() == reference.count_params()


@pytest.mark.parametrize("name", ["l2x", "vibi", "cxplain"])
def test_select_keeps_exactly_k_features(name, image_blackbox):
    method = registry.get(name, image_blackbox, k=5, verbose=0)
    x = tiny.images(6)
    for k in (1, 5, 64):
        masks = method.select(x, k, batch_size=4)
        assert masks.shape == (6, 8, 8) and set(np.unique(masks)) <= {0.0, 1.0}
        np.testing.assert_array_equal(masks.sum(axis=(1, 2)), k)
    np.testing.assert_array_equal(method.select(x).sum(axis=(1, 2)), 5)  # the default k
    top = np.argsort(-method.explain(x).reshape(6, -1), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(np.sort(np.flatnonzero(method.select(x)[0])), np.sort(top[0]))


def test_l2x_finds_the_xor_features(xor_task):
    blackbox, x_train, x_test, relevant = xor_task
    method = registry.get("l2x", blackbox, k=2, seed=0, verbose=0)
    method.fit(x_train, epochs=4, batch_size=50)
    tpr, _ = true_positive_rate(method.select(x_test), relevant)
    chance = chance_true_positive_rate(2, 10)
    assert tpr > 0.9 > chance + 0.5, (tpr, chance)


def test_vibi_information_term_is_beta_k_kl_to_the_uniform_prior(image_blackbox):
    method = VIBI(image_blackbox, k=3, beta=0.5, verbose=0)
    assert float(method.regulariser(tf.zeros([2, 8, 8]))) == pytest.approx(0.0, abs=1e-6)
    logits = np.random.default_rng(0).normal(size=(2, 8, 8)).astype(np.float32)
    flat = logits.reshape(2, -1).astype(np.float64)
    log_p = flat - np.log(np.exp(flat).sum(axis=1, keepdims=True))
    kl = np.mean(np.sum(np.full_like(flat, 1 / 64) * (np.log(1 / 64) - log_p), axis=1))
    assert float(method.regulariser(tf.constant(logits))) == pytest.approx(0.5 * 3 * kl, rel=1e-5)


# ------------------------------------------------------------------------------------------ CXPlain

def granger_by_loop(blackbox, x, labels, patch=1):
    """CXPlain's target computed one sample and one block at a time (the definition)."""
    probs = blackbox(x, training=False).numpy()
    out = np.zeros((len(x),) + x.shape[1:3])
    for i in range(len(x)):
        full = -np.log(probs[i, labels[i]])
        deltas = {}
        for r in range(0, x.shape[1], patch):
            for c in range(0, x.shape[2], patch):
                masked = x[i:i + 1].copy()
                masked[:, r:r + patch, c:c + patch] = 0
                removed = -np.log(blackbox(masked, training=False).numpy()[0, labels[i]])
                deltas[r, c] = max(removed - full, CXPLAIN_EPSILON)
        total = sum(deltas.values())
        for (r, c), d in deltas.items():
            out[i, r:r + patch, c:c + patch] = np.clip(d / total, CXPLAIN_EPSILON, 1.0) / patch ** 2
    return out


def test_cxplain_target_is_the_granger_importance_for_the_true_label():
    blackbox = tiny.linear_softmax((4, 4, 1), seed=3, **BLACKBOX)
    x = tiny.images(3, (4, 4, 1), seed=1)
    labels = np.array([0, 1, 1])
    for patch in (1, 2):
        method = CXPlain(blackbox, patch=patch, internal_batch_size=5, verbose=0)
        omega = method.granger_importance(x, labels, batch_size=2)
        np.testing.assert_allclose(omega, granger_by_loop(blackbox, x, labels, patch), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(omega.reshape(3, -1).sum(axis=1), 1.0, rtol=1e-4)
    flipped = CXPlain(blackbox, verbose=0).granger_importance(x, 1 - labels)
    assert not np.allclose(flipped, CXPlain(blackbox, verbose=0).granger_importance(x, labels))
    # Batched == one sample at a time, whatever the group size.
    method = CXPlain(blackbox, internal_batch_size=1, verbose=0)
    np.testing.assert_allclose(method.granger_importance(x, labels, batch_size=1),
                               CXPlain(blackbox, verbose=0).granger_importance(x, labels, batch_size=3), rtol=1e-5,
                               atol=1e-7)


def test_cxplain_learns_its_target_and_explains_with_a_distribution(image_blackbox):
    method = CXPlain(image_blackbox, k=4, learning_rate=1e-2, seed=0, verbose=0)
    x, labels = tiny.images(16), np.arange(16) % 2
    history = method.fit(x, labels, epochs=8, batch_size=8, validation_data=(x, labels))
    losses = history.history["loss"]
    assert losses[-1] < losses[0] and "val_loss" in history.history
    scores = method.explain(x)
    np.testing.assert_allclose(scores.reshape(16, -1).sum(axis=1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------------------------- seeds, inputs

@pytest.mark.parametrize("name", ["l2x", "vibi", "cxplain"])
def test_same_seed_same_explainer(name, image_blackbox):
    x, labels = tiny.images(8), np.arange(8) % 2

    def trained(seed):
        method = registry.get(name, image_blackbox, k=4, seed=seed, verbose=0)
        method.fit(x, labels, epochs=1, batch_size=4)
        return method.explain(x)

    first = trained(1)
    np.testing.assert_array_equal(first, trained(1))
    assert not np.array_equal(first, trained(2))


def test_explain_ignores_targets_and_honours_batch_size(image_blackbox):
    method = L2X(image_blackbox, k=4, verbose=0)
    x = tiny.images(5)
    reference = method.explain(x)
    np.testing.assert_array_equal(method.explain(x, targets=[0, 1, 0, 1, 1], batch_size=2), reference)
    np.testing.assert_array_equal(method.explain(tf.data.Dataset.from_tensor_slices(x).batch(3)), reference)


def test_bad_inputs(image_blackbox):
    with pytest.raises(ValueError, match="k: L2X samples k-hot masks in training"):
        L2X(image_blackbox)
    with pytest.raises(ValueError, match="k: expected"):
        VIBI(image_blackbox, k=65)
    with pytest.raises(ValueError, match="tau"):
        L2X(image_blackbox, k=3, tau=0.0)
    with pytest.raises(ValueError, match="beta"):
        VIBI(image_blackbox, k=3, beta=-1.0)
    with pytest.raises(ValueError, match="patch: expected a divisor"):
        CXPlain(image_blackbox, patch=3)
    with pytest.raises(TypeError, match="vibi: unknown hyperparameter.*'temperature'"):
        registry.get("vibi", image_blackbox, k=3, temperature=0.5)
    method = CXPlain(image_blackbox, verbose=0)
    with pytest.raises(ValueError, match="y: CXPlain is trained against the true labels"):
        method.fit(tiny.images(4))
    with pytest.raises(ValueError, match="k: expected the number of features"):
        method.select(tiny.images(2))
    with pytest.raises(ValueError, match=r"x: expected inputs of shape \(N, 8, 8, 1\)"):
        method.explain(tiny.images(2, (8, 8, 3)))
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 1\]"):
        method.fit(tiny.images(4), [0, 1, 2, 0])
    bad = tiny.images(2)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        L2X(image_blackbox, k=2, verbose=0).fit(bad)
    with pytest.raises(ValueError, match="epochs: expected an integer >= 1"):
        L2X(image_blackbox, k=2, verbose=0).fit(tiny.images(2), epochs=0)
    with pytest.raises(ValueError, match="patch: blocks of features exist for images only"):
        CXPlain(tiny.linear_softmax((6,)), patch=2)


@pytest.mark.parametrize("name", ["l2x", "cxplain"])
def test_savedmodel_gives_the_same_scores_and_masks(name, image_blackbox, tmp_path):
    method = registry.get(name, image_blackbox, k=5, seed=0, verbose=0)
    x = tiny.images(4)
    path = method.export(tmp_path / name)
    outputs = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(outputs["scores"].numpy(), method.explain(x), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(outputs["mask"].numpy(), method.select(x))
    with pytest.raises(ValueError, match=r"k: the exported mask needs a k; pass export\(path, k=...\)"):
        CXPlain(image_blackbox, verbose=0).export(tmp_path / "no_k")
