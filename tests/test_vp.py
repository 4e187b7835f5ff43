"""VP and nVP: the terms of eq. 5 on known answers, what a training step may change, exact resume, the
posterior's read-outs, nVP as VP without its variance branch, the CLI end to end, and clear errors."""
import json

import numpy as np
import pytest
import tensorflow as tf

from eval.training import Checkpointer, restore
from tests import tiny
from tests.formats import write_learnable_idx_folder
from tests.helpers import snapshot
from vp import NVP, VP
from vp.model import gaussian_kl, kl_divergence

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def classifier():
    return tiny.image_cnn(SHAPE, n_classes=3, seed=2)


def small(classifier, **kwargs):
    return VP(classifier, iterations=20, width=8, verbose=0, **kwargs)


def test_the_kl_to_the_prior_is_the_closed_form_and_matches_numerical_integration():
    mu, log_var = np.array([[0.3, -1.2]], np.float32), np.array([[0.5, -2.0]], np.float32)
    got = gaussian_kl(tf.constant(mu[None]), tf.constant(log_var[None])).numpy()[0]
    grid = np.linspace(-12, 12, 200001)
    total = 0.0
    for m, lv in zip(mu[0], log_var[0]):  # integrate q log(q / p) on a fine grid
        s = np.exp(0.5 * lv)
        q = np.exp(-0.5 * ((grid - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        p = np.exp(-0.5 * grid ** 2) / np.sqrt(2 * np.pi)
        total += np.trapezoid(q * (np.log(q + 1e-300) - np.log(p)), grid)
    assert got == pytest.approx(total, rel=1e-5)
    assert gaussian_kl(tf.zeros((1, 2, 2)), tf.zeros((1, 2, 2))).numpy()[0] == 0.0


def test_the_likelihood_term_is_zero_for_identical_outputs_and_the_kl_otherwise():
    p = tf.constant([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0.0, atol=1e-7)
    q = tf.constant([[0.2, 0.5, 0.3], [0.5, 0.25, 0.25]])
    expected = [0.7 * np.log(0.7 / 0.2) + 0.2 * np.log(0.2 / 0.5) + 0.1 * np.log(0.1 / 0.3), np.log(2.0)]
    np.testing.assert_allclose(kl_divergence(p, q).numpy(), expected, rtol=1e-5)


def test_a_training_step_changes_the_explainer_only_and_the_same_seed_gives_the_same_explainer(classifier):
    x = tiny.images(32, SHAPE, seed=1)
    vp = small(classifier)
    before_classifier, before_explainer = snapshot(classifier.weights), snapshot(vp.explainer.weights)
    history = vp.fit(x, epochs=1, batch_size=8).history
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before_classifier, classifier.weights))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before_explainer, vp.explainer.weights))
    assert set(history) == {"loss", "likelihood", "kl", "k"} and 1 <= history["k"][0] <= 63
    twin = small(classifier)
    twin.fit(x, epochs=1, batch_size=8)
    for a, b in zip(vp.explainer.weights, twin.explainer.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_resuming_after_an_interruption_gives_the_uninterrupted_weights(classifier, tmp_path):
    x = tiny.images(32, SHAPE, seed=1)
    straight = small(classifier, seed=3)
    straight.fit(x, epochs=2, batch_size=8)
    first = small(classifier, seed=3)
    first.fit(x, epochs=1, batch_size=8, callbacks=[Checkpointer(tmp_path)])
    resumed = small(classifier, seed=3)
    assert restore(resumed, tmp_path) == 1
    resumed.fit(x, epochs=2, initial_epoch=1, batch_size=8)
    for a, b in zip(straight.explainer.weights, resumed.explainer.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_the_read_outs_of_the_posterior(classifier):
    vp = small(classifier, upsample=2)
    x = tiny.images(3, SHAPE, seed=4)
    mu, log_var = (t.numpy() for t in vp._moments(tf.constant(x)))
    assert mu.shape == (3, 4, 4)
    explained = vp.explain(x)
    np.testing.assert_allclose(explained, tf.image.resize(mu[..., None], (8, 8))[..., 0], atol=1e-6)
    mean, sigma = vp.explain_distribution(x)
    np.testing.assert_allclose(mean, explained)
    np.testing.assert_allclose(sigma, tf.image.resize(np.exp(0.5 * log_var)[..., None], (8, 8))[..., 0],
                               rtol=1e-5)
    draws = vp.sample(x, 4000, seed=1)
    assert draws.shape == (3, 4000, 8, 8)
    np.testing.assert_allclose(draws.mean(axis=1), explained, atol=0.1)  # upsampled draws average to mu
    np.testing.assert_array_equal(vp.sample(x, 5, seed=7), vp.sample(x, 5, seed=7))
    exact = small(classifier, upsample=1)  # no upsampling: each pixel is one Gaussian of the posterior
    mean, sigma = exact.explain_distribution(x)
    draws = exact.sample(x, 4000, seed=2)
    np.testing.assert_allclose(draws.mean(axis=1), mean, atol=5 * sigma.max() / np.sqrt(4000))
    np.testing.assert_allclose(draws.std(axis=1), sigma, rtol=0.08)
    assert vp.select(x, 10).sum(axis=(1, 2)).tolist() == [10, 10, 10]


def test_nvp_is_vp_without_the_variance_branch(classifier):
    x = tiny.images(16, SHAPE, seed=5)
    vp, nvp = small(classifier, seed=1), NVP(classifier, iterations=20, width=8, seed=1, verbose=0)
    assert nvp.explainer.output_shape[-1] == 1 and vp.explainer.output_shape[-1] == 2
    for a, b in zip(vp.explainer.weights[:-2], nvp.explainer.weights[:-2]):  # every layer but the head
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    kernel, bias = (w.numpy() for w in vp.explainer.weights[-2:])
    nvp.explainer.layers[-1].set_weights([kernel[..., :1], bias[:1]])
    np.testing.assert_allclose(nvp.explain(x), vp.explain(x), atol=1e-6)  # the same mean branch
    likelihood, kl, _ = nvp.losses_of(tf.constant(x), tf.constant(0, tf.int64))
    assert float(kl) == 0.0 and float(likelihood) > 0.0
    with pytest.raises(ValueError, match="explain_distribution needs VP"):
        nvp.explain_distribution(x)
    assert nvp.get_config()["method"] == "nvp" and vp.get_config()["method"] == "vp"


def test_where_the_top_k_acts_and_the_three_baselines(classifier):
    x = tf.constant(tiny.images(4, SHAPE, seed=6))
    for topk_on in ("input", "map"):
        vp = small(classifier, topk_on=topk_on)
        s = tf.random.stateless_normal((4, 4, 4), [0, 1])
        mask = vp.relaxed_mask(s, tf.constant(10.0))
        assert mask.shape == (4, 8, 8)
        total = 10.0 if topk_on == "input" else 10.0 * 4  # 10 of 64 pixels, or 10 of 16 cells upsampled x 2
        np.testing.assert_allclose(tf.reduce_sum(mask, axis=[1, 2]), total, rtol=0.02)
    for baseline in ("blur", "noise", "mean"):
        b = small(classifier, baseline=baseline).perturbation_baseline(x, tf.constant([0, 1], tf.int64))
        assert b.shape == x.shape
    noise = small(classifier, baseline="noise").perturbation_baseline(x, tf.constant([0, 1], tf.int64))
    assert abs(float(tf.math.reduce_std(noise)) - 0.2) < 0.03


@pytest.mark.parametrize("hyper, name", [
    ({"upsample": 3}, "upsample"), ({"upsample": 16}, "upsample"), ({"baseline": "gray"}, "baseline"),
    ({"topk_on": "both"}, "topk_on"), ({"beta": -1.0}, "beta"), ({"epsilon": 0.0}, "epsilon"),
    ({"iterations": 0}, "iterations"), ({"k": 65}, "k"),
])
def test_bad_arguments_are_errors_naming_them(classifier, hyper, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        VP(classifier, **hyper)


def test_bad_inputs_are_errors_naming_them(classifier):
    vp = small(classifier)
    with pytest.raises(ValueError, match="^x: expected inputs of shape"):
        vp.explain(np.zeros((2, 9, 9, 1), np.float32))
    x = tiny.images(16, SHAPE)
    x[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="^x: .*NaN"):
        vp.fit(x, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="^batch_size: expected at most the 16"):
        vp.fit(tiny.images(16, SHAPE), epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="^variational: nVP"):
        NVP(classifier, variational=True)
    with pytest.raises(ValueError, match="^model: VP explains image classifiers"):
        VP(tiny.tabular_mlp())


def test_the_cli_trains_exports_and_reports(tmp_path, models_dir):
    from eval.report import validate_report
    from tests.helpers import run_python

    write_learnable_idx_folder(tmp_path / "data", n_train=200, n_test=60)
    out = tmp_path / "run"
    from vp.train import main
    argv = ["--preset", "fashion_mnist", "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--batch-size", "16",
            "--test-samples", "16", "--out", str(out), "--verbose", "0"]
    assert main(argv) == 0
    report = validate_report(json.loads((out / "report.json").read_text()))
    assert report["kind"] == "vp.train" and report["rows"][0]["label"] == "VP"
    assert {"test loss", "test likelihood", "test kl"} <= set(report["rows"][0])
    assert (out / "figures" / "maps.png").stat().st_size > 0 and (out / "checkpoints").is_dir()
    assert any((out / "tensorboard").rglob("*.tfevents.*"))
    printed = run_python(f"""
        import numpy as np, tensorflow as tf
        served = tf.saved_model.load({str(out / "explainer")!r}).signatures["serving_default"]
        out = served(x=tf.zeros((2, 28, 28, 1)))
        print(sorted(out), out["scores"].shape, int(out["mask"].numpy().sum()))
    """)
    assert printed.strip().splitlines()[-1] == f"['mask', 'scores', 'sigma'] (2, 28, 28) {2 * int(0.2 * 784)}"
    # --resume after the finished epoch trains nothing more and reports the same objective
    assert main(argv + ["--resume"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["details"]["epochs_before_resume"] == 1
    # (the classifier now comes from the cache file rather than from memory: float rounding of a KL near 0)
    assert again["rows"][0]["test loss"] == pytest.approx(report["rows"][0]["test loss"], abs=1e-7)
    # vp.compare on the same data and cached classifier: every VP-suite column for VP, the paper's rows beside
    from vp.compare import main as compare
    compared = tmp_path / "compare"
    assert compare(["--preset", "fashion_mnist", "--data-dir", str(tmp_path / "data"), "--methods", "vp,saliency",
                    "--epochs", "1", "--batch-size", "16", "--test-samples", "8", "--consistency-samples", "4",
                    "--consistency-repeats", "1", "--stability-samples", "2", "--stability-draws", "3",
                    "--out", str(compared), "--verbose", "0"]) == 0
    report = validate_report(json.loads((compared / "report.json").read_text()))
    rows = {row["label"]: row for row in report["rows"]}
    assert {"consistency SSIM", "Lipschitz", "perturbation (KL)"} <= set(rows["vp"])
    assert rows["saliency"]["consistency SSIM"] is None and rows["saliency"]["Lipschitz"] > 0  # no resolution
    assert [row["label"] for row in report["reference"]] == ["vp (VP (Ours))", "saliency (Input-grad.)"]
