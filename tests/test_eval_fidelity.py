"""MEED fidelities FS-M / FU-M / FS-A / FU-A and mask application (eval.imputation, eval.fidelity)."""
import keras
import numpy as np
import pytest

from eval import FidelityResult, zero_impute, check_mask, fidelity, model_fidelity
from kernels import topk_mask
from tests import tiny


def region_model():
    """Class 0 iff the sum of the top-left 2x2 pixels of a 4x4 image exceeds 1, else class 1."""
    return tiny.corner_model(4, 2, [1.0, 0.0], [0.0, 1.0])


def top_left_masks(n):
    masks = np.zeros((n, 4, 4), np.uint8)
    masks[:, :2, :2] = 1
    return masks


# --- zero_impute -------------------------------------------------------------------------------------

def test_zero_impute_images_broadcasts_over_channels():
    x = np.arange(1, 2 * 2 * 2 * 3 + 1, dtype=np.float32).reshape(2, 2, 2, 3)
    mask = np.array([[[1, 0], [0, 1]], [[0, 0], [1, 0]]])
    out = zero_impute(x, mask)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(out, x * mask[..., None])
    np.testing.assert_array_equal(out[0, 0, 1], [0, 0, 0])
    np.testing.assert_array_equal(out[1, 1, 0], x[1, 1, 0])


def test_zero_impute_token_ids_become_pad_and_keep_dtype():
    ids = np.array([[5, 7, 9, 2], [3, 3, 4, 1]], dtype=np.int32)
    mask = np.array([[1, 0, 1, 0], [0, 1, 1, 1]], dtype=bool)
    out = zero_impute(ids, mask)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[5, 0, 9, 0], [0, 3, 4, 1]])


def test_zero_impute_tabular_and_full_shape_masks():
    x = np.array([[1.5, -2.0, 3.0]], np.float64)
    np.testing.assert_array_equal(zero_impute(x, np.array([[0.0, 1.0, 1.0]])), [[0.0, -2.0, 3.0]])
    images = np.ones((1, 2, 2, 2), np.float32)
    per_channel = np.array([[[[1, 0], [0, 1]], [[1, 1], [0, 0]]]])
    np.testing.assert_array_equal(zero_impute(images, per_channel), per_channel)


def test_bad_masks_raise():
    x = np.ones((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"mask: expected a binary mask .* values such as \[0.5\]"):
        zero_impute(x, np.full((2, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 4, 4\)"):
        zero_impute(x, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 4, 4\)"):
        zero_impute(x, np.ones((1, 4, 4)))  # no broadcasting over samples
    with pytest.raises(ValueError, match="masks: expected a binary mask"):
        check_mask(x, np.full((2, 4, 4), np.nan), name="masks")
    with pytest.raises(TypeError, match="mask: expected a binary mask array, got None"):
        zero_impute(x, None)


# --- FS-M / FU-M ------------------------------------------------------------------------------------

def test_model_that_reads_only_the_kept_region():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(64, 4, 4, 1)).astype(np.float32)
    masks = top_left_masks(64)
    scores = model_fidelity(region_model(), x, masks, batch_size=16)
    assert scores["FS-M"] == 1.0
    # Without the region the sum is 0 -> class 1, which agrees exactly where M(x) was already class 1.
    region_sum = x[:, :2, :2, 0].sum(axis=(1, 2))
    assert scores["FU-M"] == pytest.approx(np.mean(region_sum <= 1.0))
    assert 0.0 < scores["FU-M"] < 1.0
    # The same masks from an explanation's scores through the shared hard top-k (a float32 tensor).
    region_scores = np.zeros((64, 4, 4), np.float32)
    region_scores[:, :2, :2] = 1.0
    assert model_fidelity(region_model(), x, topk_mask(region_scores, 4)) == scores


def test_constant_model_and_flipping_model():
    x = np.random.default_rng(1).uniform(0.1, 1, size=(10, 6)).astype(np.float32)
    masks = (np.random.default_rng(2).uniform(size=(10, 6)) < 0.5).astype(np.uint8)
    constant = tiny.fixed_dense((6,), np.zeros((6, 2)), [1.0, 0.0])
    assert model_fidelity(constant, x, masks) == {"FS-M": 1.0, "FU-M": 1.0}
    # Class 0 iff sum(x) > 0.5: zeroing the whole input flips every prediction.
    flipping = tiny.fixed_dense((6,), [[1.0, 0.0]] * 6, [0.0, 0.5])
    full = np.ones((10, 6), np.uint8)
    assert model_fidelity(flipping, x, full) == {"FS-M": 1.0, "FU-M": 0.0}


def test_model_fidelity_checks_arguments():
    model = region_model()
    x = np.zeros((4, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="masks: expected shape"):
        model_fidelity(model, x, np.ones((4, 16)))
    with pytest.raises(ValueError, match="masks: expected a binary mask"):
        model_fidelity(model, x, np.full((4, 4, 4), 2))
    with pytest.raises(TypeError, match="blackbox: expected a Keras model"):
        model_fidelity(lambda v: v, x, top_left_masks(4))
    with pytest.raises(TypeError, match="batch_size"):
        model_fidelity(model, x, top_left_masks(4), batch_size=1.5)


# --- FS-A / FU-A ------------------------------------------------------------------------------------

D = 8


def approximator_net(input_shape, n_classes):
    """The approximators A'_S / A'_U: tiny.tabular_mlp with 16 hidden units, seeded by eval.fidelity itself."""
    return tiny.tabular_mlp(input_shape[0], n_classes, seed=None, hidden=16)


@pytest.fixture(scope="module")
def separable_setup():
    kernel = np.zeros((D, 2), np.float32)
    kernel[:2, 0], kernel[:2, 1] = 4.0, -4.0
    blackbox = tiny.fixed_dense((D,), kernel, [0.0, 0.0])
    x_train, x_test = tiny.gaussian(600, (D,), 0), tiny.gaussian(300, (D,), 1)  # independent N(0, 1) features
    informative = np.zeros(D, np.uint8)
    informative[:2] = 1
    masks_train = np.tile(informative, (len(x_train), 1))
    masks_test = np.tile(informative, (len(x_test), 1))
    return blackbox, x_train, x_test, masks_train, masks_test


def run_fidelity(setup, **kwargs):
    blackbox, x_train, x_test, masks_train, masks_test = setup
    options = dict(approximator_factory=approximator_net, optimizer_factory=lambda: keras.optimizers.Adam(0.02),
                   epochs=2, batch_size=32, seed=0)
    options.update(kwargs)
    return fidelity(blackbox, x_train, x_test, masks_train, masks_test, **options)


def test_fidelity_approximators_on_informative_and_uninformative_features(separable_setup):
    result = run_fidelity(separable_setup)
    assert isinstance(result, FidelityResult)
    assert set(result) == {"FS-M", "FU-M", "FS-A", "FU-A"}
    assert result["FS-M"] == 1.0  # the black box reads only x0 and x1
    assert result["FS-A"] > 0.9
    assert abs(result["FU-A"] - 0.5) < 0.15  # noise features: chance level
    assert all(0.0 <= v <= 1.0 for v in result.values())
    assert set(result.train_seconds) == {"A'_S", "A'_U"}
    assert all(s > 0 for s in result.train_seconds.values())
    assert dict(result) == result.metrics


def test_fidelity_is_deterministic_per_seed(separable_setup):
    first = run_fidelity(separable_setup, seed=3, epochs=1)
    second = run_fidelity(separable_setup, seed=3, epochs=1)
    assert first.metrics == second.metrics


def test_fidelity_with_zero_epochs_skips_the_approximators(separable_setup):
    def factory_must_not_run(*args):
        raise AssertionError("no approximator should be built with epochs=0")

    result = run_fidelity(separable_setup, epochs=0, approximator_factory=factory_must_not_run)
    blackbox, _, x_test, _, masks_test = separable_setup
    assert dict(result) == model_fidelity(blackbox, x_test, masks_test)
    assert result.train_seconds == {}


def test_fidelity_checks_arguments(separable_setup):
    blackbox, x_train, x_test, masks_train, masks_test = separable_setup
    with pytest.raises(ValueError, match="masks_test: expected shape"):
        run_fidelity((blackbox, x_train, x_test, masks_train, masks_train))
    with pytest.raises(ValueError, match="x_test: expected samples of the shape"):
        run_fidelity((blackbox, x_train, x_test[:, :4], masks_train, masks_test[:, :4]))
    with pytest.raises(ValueError, match="epochs: expected an integer >= 0"):
        run_fidelity(separable_setup, epochs=-1)
    with pytest.raises(TypeError, match="optimizer_factory: expected a callable"):
        run_fidelity(separable_setup, optimizer_factory="adam")
    with pytest.raises(TypeError, match="approximator_factory: expected it to return a keras.Model"):
        run_fidelity(separable_setup, approximator_factory=lambda shape, n: None, epochs=1)


def test_fidelity_leaves_the_callers_random_state_alone(separable_setup):
    import random

    random.seed(11)
    expected = random.random()
    random.seed(11)
    run_fidelity(separable_setup, epochs=1)
    assert random.random() == expected  # the approximators were seeded inside kernels.seeds.seeded


# --- the classes (eval.metrics) ------------------------------------------------------------------

def test_metric_classes_give_the_functions_numbers(separable_setup):
    from eval.fidelity import ApproximatorFidelity, ModelFidelity
    from eval.protocol import Selection

    blackbox, x_train, x_test, masks_train, masks_test = separable_setup
    expected = run_fidelity(separable_setup, seed=2, epochs=1)
    selection = Selection(test=masks_test, train=masks_train)
    options = dict(x_train=x_train, approximator_factory=approximator_net,
                   optimizer_factory=lambda: keras.optimizers.Adam(0.02), epochs=1, train_batch_size=32, seed=2)
    for part, name in (("selected", "FS"), ("unselected", "FU")):
        model_metric = ModelFidelity(blackbox, x_test, part=part)
        assert model_metric.name == f"{name}-M" and model_metric.higher_is_better == (part == "selected")
        assert model_metric.evaluate(selection) == expected[f"{name}-M"]
        approximator = ApproximatorFidelity(blackbox, x_test, part=part, **options)
        result = approximator.detailed_evaluate(selection)
        assert result.metric == f"{name}-A" and result.value == expected[f"{name}-A"]
        assert result.to_dict()["value"] == result.value and result.details["epochs"] == 1
    # Scores are turned into their top-k masks; training masks can only come from an explainer.
    scores = np.where(masks_test > 0, 1.0, 0.0) + np.linspace(0, 0.01, D)[None]
    assert ModelFidelity(blackbox, x_test, k=2).evaluate(scores) == expected["FS-M"]
    with pytest.raises(TypeError, match="FS-A needs the masks of x_train too"):
        ApproximatorFidelity(blackbox, x_test, **options).evaluate(scores)
