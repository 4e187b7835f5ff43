"""The bounding-box ratio (eval.localization; IBA Section 4.5, Table 1 "bbox")."""
import numpy as np
import pytest

from data.synthetic import localization
from eval import bbox_ratio, bbox_ratio_summary
from eval.localization import box_masks


def test_box_indicator_scores_one_on_synthetic_boxes():
    images, _, boxes, relevant = localization(6, canvas=24, object_size=10, seed=3)
    np.testing.assert_array_equal(box_masks(boxes, 24, 24), relevant)
    for ties in ("expected", "index"):
        np.testing.assert_array_equal(bbox_ratio(relevant.astype(np.float32), boxes, ties=ties), np.ones(6))
    # The images themselves: the object is brighter than the clutter, so its pixels rank first.
    assert bbox_ratio(images[..., 0], boxes).min() > 0.5


def test_hand_made_example():
    scores = np.zeros((1, 4, 4))
    box = np.array([[0, 0, 2, 2]])  # 4 pixels: (0,0), (0,1), (1,0), (1,1)
    scores[0, 0, 0], scores[0, 1, 1] = 9, 8  # inside
    scores[0, 3, 3], scores[0, 2, 0] = 7, 6  # outside
    scores[0, 0, 1] = 5  # inside, fifth: just misses the top 4
    assert bbox_ratio(scores, box)[0] == 0.5
    # -scores: the 11 zeros are the highest and tie for the 4 places; one of them, (1,0), is in the box.
    assert bbox_ratio(-scores, box, ties="expected")[0] == pytest.approx(4 * (1 / 11) / 4)
    # Index order: the first zeros in row-major order are (0,2), (0,3), (1,0), (1,2) -> one in the box.
    assert bbox_ratio(-scores, box, ties="index")[0] == 1 / 4


def test_ties_constant_and_random_scores_give_the_box_share():
    boxes = np.array([[0, 0, 2, 2], [1, 1, 4, 3], [0, 2, 4, 4]])
    share = np.array([4, 6, 8]) / 16
    np.testing.assert_allclose(bbox_ratio(np.ones((3, 4, 4)), boxes), share)
    # Index ties on a constant map take the first row(s): box (0,0,2,2) gets (0,0), (0,1) of the top 4.
    assert bbox_ratio(np.ones((1, 4, 4)), boxes[:1], ties="index")[0] == 0.5
    rng = np.random.default_rng(0)
    n = 4000
    many = np.repeat(boxes, n // 3 + 1, axis=0)[:n]
    ratios = bbox_ratio(rng.random((n, 4, 4)), many)
    expected = np.repeat(share, n // 3 + 1)[:n]
    assert abs(ratios.mean() - expected.mean()) < 0.02


def test_summary_keeps_small_boxes_like_the_paper():
    boxes = np.array([[0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 2, 3]])  # shares 0.25, 1.0, 0.375
    scores = box_masks(boxes, 4, 4).astype(float)
    summary = bbox_ratio_summary(scores, boxes)
    assert summary == {"mean": 1.0, "std": 0.0, "n_images": 1, "n_excluded": 2, "chance": 0.25}
    everything = bbox_ratio_summary(scores, boxes, max_box_fraction=None)
    assert everything["n_images"] == 3 and everything["chance"] == pytest.approx((0.25 + 1 + 0.375) / 3)
    with pytest.raises(ValueError, match="every box covers more than max_box_fraction=0.1"):
        bbox_ratio_summary(scores, boxes, max_box_fraction=0.1)
    with pytest.raises(ValueError, match=r"max_box_fraction: expected a share in \(0, 1\]"):
        bbox_ratio_summary(scores, boxes, max_box_fraction=1.5)


@pytest.mark.parametrize("scores, boxes, error, match", [
    (np.ones((2, 4, 4)), np.array([[0, 0, 5, 2], [0, 0, 1, 1]]), ValueError, r"inside the 4x4 image.*row 0: \[0, 0, 5, 2\]"),
    (np.ones((2, 4, 4)), np.array([[0, 0, 1, 1], [-1, 0, 1, 1]]), ValueError, r"1 bad rows, e.g. row 1"),
    (np.ones((1, 4, 4)), np.array([[2, 0, 2, 3]]), ValueError, r"non-empty boxes"),
    (np.ones((1, 4, 4)), np.array([[0, 0, 1]]), ValueError, r"boxes: expected shape \(1, 4\)"),
    (np.ones((2, 4, 4)), np.array([[0, 0, 1, 1]]), ValueError, r"boxes: expected shape \(2, 4\)"),
    (np.ones((1, 4, 4)), np.array([[0, 0, 1.5, 1]]), ValueError, r"boxes: expected integer pixel coordinates"),
    (np.ones((1, 4, 4)), np.array([["0", "0", "1", "1"]]), TypeError, r"boxes: expected integer .* dtype <U1"),
    (np.ones((1, 4, 4)), None, TypeError, r"boxes: expected an int array"),
    (np.full((1, 4, 4), np.nan), np.array([[0, 0, 1, 1]]), ValueError, r"scores: expected finite values"),
    (np.ones((1, 16)), np.array([[0, 0, 1, 1]]), ValueError, r"scores: expected rank 3"),
])
def test_bad_inputs_raise_clear_errors(scores, boxes, error, match):
    with pytest.raises(error, match=match):
        bbox_ratio(scores, boxes)


def test_unknown_ties_mode():
    with pytest.raises(ValueError, match=r"ties: unknown value 'random'"):
        bbox_ratio(np.ones((1, 4, 4)), np.array([[0, 0, 1, 1]]), ties="random")
