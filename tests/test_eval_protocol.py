"""The Explainer protocol helpers: scores from arrays or Explainers, target conversion, checks."""
import numpy as np
import pytest
import tensorflow as tf

from kernels.validation import check_int
from eval.protocol import Explainer, as_inputs, as_scores, as_targets, score_shape, target_probability


class RecordingExplainer:
    """Scores = first channel of x; remembers what it was called with."""

    def __init__(self):
        self.calls = []

    def explain(self, x, targets=None, batch_size=None):
        self.calls.append((np.asarray(x).shape, targets, batch_size))
        return np.asarray(x)[..., 0] * 2.0


def test_score_shape_images_sequences_tabular():
    assert score_shape((28, 28, 1)) == (28, 28)
    assert score_shape((400,)) == (400,)
    assert score_shape((3, 643)) == (3, 643)


def test_as_scores_from_array_and_from_explainer():
    x = np.arange(2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 3, 3, 1)
    direct = as_scores(x[..., 0], x)
    assert direct.shape == (2, 3, 3) and direct.dtype == np.float32
    # Scores shaped like x (a trailing channel of 1) are accepted and reshaped.
    np.testing.assert_array_equal(as_scores(x, x), direct)
    explainer = RecordingExplainer()
    assert isinstance(explainer, Explainer)
    scores = as_scores(explainer, x, targets=[0, 1], batch_size=7)
    np.testing.assert_array_equal(scores, 2 * direct)
    assert explainer.calls == [((2, 3, 3, 1), [0, 1], 7)]


def test_as_scores_rejects_wrong_shapes_and_nan():
    x = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"scores: expected shape \(2, 4, 4\)"):
        as_scores(np.zeros((2, 4, 5)), x)
    with pytest.raises(ValueError, match="scores"):
        as_scores(np.zeros((3, 4, 4)), x)
    bad = np.zeros((2, 4, 4))
    bad[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        as_scores(bad, x)
    with pytest.raises(ValueError, match="x: expected finite"):
        as_scores(np.zeros((2, 4, 4)), np.full((2, 4, 4, 3), np.inf))


def test_as_inputs_accepts_datasets_and_rejects_non_batches():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(6))).batch(4)
    np.testing.assert_array_equal(as_inputs("x", ds), x)
    with pytest.raises(ValueError, match="rank >= 2"):
        as_inputs("x", np.zeros(3))
    with pytest.raises(TypeError, match="x: expected an array"):
        as_inputs("x", None)
    with pytest.raises(TypeError, match="numeric"):
        as_inputs("x", np.array([["a", "b"]]))


def test_as_targets_int_and_one_hot_agree():
    labels = np.array([2, 0, 1])
    one_hot = np.eye(3)[labels]
    np.testing.assert_array_equal(as_targets(labels, 3, 3), labels)
    np.testing.assert_array_equal(as_targets(one_hot, 3, 3), labels)
    np.testing.assert_array_equal(as_targets(1, 3, 3), [1, 1, 1])
    np.testing.assert_array_equal(as_targets(np.array([2.0, 0.0, 1.0]), 3, 3), labels)
    assert as_targets(None, 3, 3) is None


def test_as_targets_errors():
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        as_targets([0, 3, 1], 3, 3)
    with pytest.raises(ValueError, match=r"targets: expected labels in \[0, 2\]"):
        as_targets([-1, 0, 1], 3, 3)
    with pytest.raises(ValueError, match="one-hot rows of shape"):
        as_targets(np.eye(4)[:3], 3, 3)
    with pytest.raises(ValueError, match="3 integer labels"):
        as_targets([0, 1], 3, 3)
    with pytest.raises(TypeError, match="integer class labels"):
        as_targets([0.5, 1.0, 0.0], 3, 3)


def test_target_probability_picks_the_target_column():
    p = np.array([[0.1, 0.9], [0.7, 0.3]])
    np.testing.assert_allclose(target_probability(p, [1, 0]), [0.9, 0.7])


def test_check_int():
    assert check_int("epochs", np.int64(3)) == 3
    with pytest.raises(TypeError, match="epochs: expected an integer >= 0, got float 2.5"):
        check_int("epochs", 2.5)
    with pytest.raises(TypeError, match="epochs"):
        check_int("epochs", True)
    with pytest.raises(ValueError, match="n_samples: expected an integer >= 1, got 0"):
        check_int("n_samples", 0, minimum=1)
