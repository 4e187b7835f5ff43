"""The saliency metric (eval.saliency_metric): hand-made maps with known boxes, areas and crop probabilities,
the area floor, the whole-image fallbacks, the largest component, threshold tuning and clear errors."""
import numpy as np
import pytest

from eval.saliency_metric import (DELTAS, SaliencyMetric, region_boxes, saliency_metric, salient_regions,
                                  tune_threshold)
from tests import tiny

WEIGHT = 0.05


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def brightness():
    """logits (0, w S) on (8, 8, 1) images, S the sum of the pixels: p(class 1) = sigmoid(w S)."""
    return tiny.fixed_dense((8, 8, 1), np.tile([[0.0, WEIGHT]], (64, 1)), name="brightness")


def block_image():
    """0.1 everywhere, 0.9 on the block rows 2-3, columns 4-6 (clean S = 11.2: class 1 is the top-1)."""
    x = np.full((1, 8, 8, 1), 0.1, np.float32)
    x[0, 2:4, 4:7] = 0.9
    return x


def test_a_hand_made_map_gives_its_box_area_and_crop_probability(brightness):
    x = block_image()
    scores = (x[..., 0] > 0.5).astype(np.float32)  # the block
    result = saliency_metric(brightness, x, scores)
    np.testing.assert_array_equal(result.boxes, [[2, 4, 4, 7]])
    assert result.areas[0] == pytest.approx(6 / 64)
    # The crop is the constant 0.9, resized: S = 64 x 0.9.
    assert result.probabilities[0] == pytest.approx(sigmoid(WEIGHT * 64 * 0.9), rel=1e-5)
    assert result.value == pytest.approx(np.log(6 / 64) - np.log(sigmoid(WEIGHT * 57.6)), rel=1e-5)


def test_the_area_is_floored_at_5_percent_and_empty_or_flat_regions_use_the_whole_image(brightness):
    x = block_image()
    one_pixel = np.zeros((1, 8, 8), np.float32)
    one_pixel[0, 3, 5] = 1.0
    result = saliency_metric(brightness, x, one_pixel)
    assert result.areas[0] == pytest.approx(1 / 64)
    assert result.value == pytest.approx(np.log(0.05) - np.log(sigmoid(WEIGHT * 64 * 0.9)), rel=1e-5)
    clean = sigmoid(WEIGHT * float(x.sum()))
    almost_flat = np.ones((1, 8, 8), np.float32)
    almost_flat[0, 0, 0] = 0.0  # delta 2 x mean (~2) is above the maximum (1): an empty region
    for scores, delta in ((almost_flat, 2.0), (np.full((1, 8, 8), 0.3, np.float32), 1.0)):
        result = saliency_metric(brightness, x, scores, threshold=delta)
        np.testing.assert_array_equal(result.boxes, [[0, 0, 8, 8]])
        assert result.value == pytest.approx(-np.log(clean), rel=1e-5)


def test_the_region_is_shift_and_scale_invariant_and_the_largest_component_can_be_kept():
    scores = np.zeros((1, 8, 8), np.float32)
    scores[0, 0:2, 0:2] = 1.0  # four pixels
    scores[0, 6, 5:7] = 1.0  # two pixels
    np.testing.assert_array_equal(region_boxes(salient_regions(scores, 1.0)), [[0, 0, 7, 7]])
    np.testing.assert_array_equal(region_boxes(salient_regions(scores, 1.0, region="largest")), [[0, 0, 2, 2]])
    np.testing.assert_array_equal(salient_regions(3.0 * scores - 2.0, 1.0), salient_regions(scores, 1.0))
    assert salient_regions(scores, 0.0).all()  # delta 0 keeps every pixel


def test_the_tuned_threshold_is_the_best_delta_on_the_holdout(brightness):
    rng = np.random.default_rng(0)
    holdout = rng.uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    holdout_scores = rng.uniform(0, 1, (4, 8, 8)).astype(np.float32) ** 4
    x, scores = block_image(), (block_image()[..., 0] > 0.5).astype(np.float32)
    deltas = (0.0, 1.0, 2.0, 5.0)
    means = [saliency_metric(brightness, holdout, holdout_scores, threshold=d).value for d in deltas]
    best, values = tune_threshold(brightness, holdout, holdout_scores, deltas=deltas)
    np.testing.assert_allclose(values, means, rtol=1e-6)
    assert best == deltas[int(np.argmin(means))]
    result = saliency_metric(brightness, x, scores, threshold="tune", holdout=holdout, holdout_scores=holdout_scores,
                             deltas=deltas)
    assert result.threshold == best and result.tuning["mean_sm"] == pytest.approx(means)
    metric = SaliencyMetric(brightness, x, threshold="tune", holdout=holdout, deltas=deltas)
    assert metric.evaluate((scores, holdout_scores)) == pytest.approx(result.value)
    assert len(DELTAS) == 26 and DELTAS[0] == 0.0 and DELTAS[-1] == 5.0


def test_bad_inputs_are_clear_errors_naming_the_argument(brightness):
    x, scores = block_image(), np.ones((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="threshold: expected a number >= 0"):
        saliency_metric(brightness, x, scores, threshold=-1.0)
    with pytest.raises(ValueError, match="threshold: unknown value 'auto'"):
        saliency_metric(brightness, x, scores, threshold="auto")
    with pytest.raises(ValueError, match="holdout: threshold='tune' needs held-out images"):
        SaliencyMetric(brightness, x, threshold="tune")
    with pytest.raises(ValueError, match="holdout_scores: tuning with a scores array"):
        saliency_metric(brightness, x, scores, threshold="tune", holdout=x)
    with pytest.raises(ValueError, match="region: unknown value 'biggest'"):
        saliency_metric(brightness, x, scores, region="biggest")
    with pytest.raises(ValueError, match="holdout: only used with threshold='tune'"):
        saliency_metric(brightness, x, scores, holdout=x)
