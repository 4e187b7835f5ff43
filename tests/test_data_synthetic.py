"""Synthetic ground-truth datasets: determinism, shapes, ground truth, and that the label really depends
on the features marked relevant (and only on them)."""
import numpy as np
import pytest

from data import synthetic
from data.dataset import load
from data.synthetic import l2x_tabular, localization, planted_text


def accuracy(pred, y):
    return float(np.mean(pred.astype(np.int64) == y))


def logistic_fit_accuracy(z, y, steps=25):
    """Accuracy of a 1-D logistic regression y ~ sigmoid(w z + b) fitted by Newton's method; and w."""
    a = np.stack([z, np.ones_like(z)], axis=1).astype(np.float64)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-a @ w))
        hess = a.T @ (a * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        w += np.linalg.solve(hess, a.T @ (y - p))
    return accuracy(a @ w > 0, y), w[0]


# ------------------------------------------------------------------------------ L2X tabular

@pytest.mark.parametrize("task", synthetic.L2X_TASKS)
def test_l2x_shapes_and_determinism(task):
    x, y, rel = l2x_tabular(task, 500, seed=3)
    assert x.shape == (500, 10) and x.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert rel.shape == (500, 10) and rel.dtype == bool
    again = l2x_tabular(task, 500, seed=3)
    for a, b in zip((x, y, rel), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(x, l2x_tabular(task, 500, seed=4)[0])


def test_l2x_relevant_features_per_task():
    expected = {"xor": [0, 1], "orange_skin": [0, 1, 2, 3], "nonlinear_additive": [0, 1, 2, 3]}
    for task, feats in expected.items():
        _, _, rel = l2x_tabular(task, 50)
        want = np.zeros(10, bool)
        want[feats] = True
        assert np.all(rel == want), task
    x, _, rel = l2x_tabular("switch", 1001, seed=1)
    orange = rel[:, 0]
    assert orange.sum() == 500  # exactly n // 2 samples in the orange-skin group
    assert np.all(rel[:, 9]) and np.all(rel[:, 4:8] == ~orange[:, None]) and np.all(rel[:, :4] == orange[:, None])
    assert rel.sum(axis=1).tolist() == [5] * 1001
    assert x[orange, 9].mean() > 2.5 and x[~orange, 9].mean() < -2.5  # feature 9 shifted by +-3


def test_l2x_labels_depend_on_the_relevant_features():
    n = 20000
    x, y, _ = l2x_tabular("xor", n, seed=0)
    acc, w = logistic_fit_accuracy(x[:, 0] * x[:, 1], y)
    # P(y=1) = sigmoid(x1 x2): the fitted coefficient is ~1 and the accuracy near the Bayes rate (~0.63)
    assert 0.85 < w < 1.15 and acc > 0.6
    control, _ = logistic_fit_accuracy(x[:, 5] * x[:, 6], y)
    assert control < 0.53

    x, y, _ = l2x_tabular("orange_skin", n, seed=0)
    assert accuracy(np.sum(x[:, :4] ** 2, 1) > 4, y) > 0.75
    assert accuracy(np.sum(x[:, 4:8] ** 2, 1) > 4, y) < 0.56

    x, y, _ = l2x_tabular("nonlinear_additive", n, seed=0)
    f = -100 * np.sin(0.2 * x[:, 0]) + np.abs(x[:, 1]) + x[:, 2] + np.exp(-x[:, 3]) - 2.4
    assert accuracy(f > 0, y) > 0.9

    x, y, rel = l2x_tabular("switch", n, seed=0)
    orange = rel[:, 0]
    f_orange = np.sum(x[:, :4] ** 2, 1) - 4
    x4 = x[:, 4:8]
    f_add = -100 * np.sin(0.2 * x4[:, 0]) + np.abs(x4[:, 1]) + x4[:, 2] + np.exp(-x4[:, 3]) - 2.4
    assert accuracy(f_orange[orange] > 0, y[orange]) > 0.75
    assert accuracy(f_add[~orange] > 0, y[~orange]) > 0.9
    # the additive group really lives on features 4..7 (a real swap): features 0..3 do not decide it
    f_wrong = -100 * np.sin(0.2 * x[:, 0]) + np.abs(x[:, 1]) + x[:, 2] + np.exp(-x[:, 3]) - 2.4
    assert accuracy(f_wrong[~orange] > 0, y[~orange]) < 0.56


# ------------------------------------------------------------------------------ planted text

def test_planted_text_format_and_keywords():
    ids, y, rel, kw = planted_text(300, length=120, vocab_size=800, seed=5)
    assert ids.shape == (300, 120) and ids.dtype == np.int32
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [150, 150]
    assert rel.shape == (300, 120) and rel.dtype == bool
    assert kw.shape == (2, 5) and len(set(kw.ravel().tolist())) == 10 and kw.min() >= 3 and kw.max() < 800
    assert ids.min() >= 0 and ids.max() < 800
    nonzero = ids != 0
    first = nonzero.argmax(axis=1)
    # 'pre' padding: zeros, then START, then words (>= 3) only
    assert np.all(nonzero.any(axis=1))
    assert np.all(ids[np.arange(300), first] == 1)
    cols = np.arange(120)[None, :]
    assert np.all(nonzero == (cols >= first[:, None]))
    assert np.all(ids[cols > first[:, None]] >= 3)
    assert (120 - first).min() >= 12 and (120 - first).max() <= 120
    # keywords: 1..4 per document, of its own class only, exactly at the relevant positions
    is_kw = np.isin(ids, kw)
    np.testing.assert_array_equal(is_kw, rel)
    assert rel.sum(1).min() >= 1 and rel.sum(1).max() <= 4
    for c in (0, 1):
        docs = ids[y == c]
        assert np.all(np.isin(docs[np.isin(docs, kw)], kw[c]))
        assert not np.isin(docs, kw[1 - c]).any()
    again = planted_text(300, length=120, vocab_size=800, seed=5)
    for a, b in zip((ids, y, rel, kw), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ids, planted_text(300, length=120, vocab_size=800, seed=6)[0])


def test_planted_text_filler_is_zipf_like():
    ids, _, rel, _ = planted_text(400, seed=0)
    words = ids[(ids >= 3) & ~rel]
    counts = np.bincount(words, minlength=5000)
    assert counts[3:13].sum() > counts[1000:1010].sum() * 20  # frequent ranks dominate


# ------------------------------------------------------------------------------ localisation

def test_localization_shapes_boxes_and_clutter():
    noise = 0.05
    x, y, boxes, rel = localization(200, canvas=48, object_size=20, n_classes=4, clutter=8, noise=noise, seed=2)
    assert x.shape == (200, 48, 48, 1) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [50] * 4
    assert boxes.shape == (200, 4) and np.issubdtype(boxes.dtype, np.integer)
    y0, x0, y1, x1 = boxes.T
    assert np.all((0 <= y0) & (y0 < y1) & (y1 <= 48) & (0 <= x0) & (x0 < x1) & (x1 <= 48))
    assert np.all((y1 - y0 <= 20) & (x1 - x0 <= 20))
    grid = np.arange(48)
    want = ((grid[None, :, None] >= y0[:, None, None]) & (grid[None, :, None] < y1[:, None, None])
            & (grid[None, None, :] >= x0[:, None, None]) & (grid[None, None, :] < x1[:, None, None]))
    np.testing.assert_array_equal(rel, want)
    img = x[..., 0]
    # outside the box only clutter and noise (< 0.35 + noise); inside, the object (>= 0.6)
    assert img[~rel].max() <= 0.35 + noise
    inside_max = np.array([img[i][rel[i]].max() for i in range(200)])
    assert inside_max.min() >= 0.6
    assert (img[~rel] > noise).any()  # there is clutter
    # the object touches all four sides of its (tight) box
    obj = img >= 0.6
    assert np.all(obj[np.arange(200), y0].any(1)) and np.all(obj[np.arange(200), y1 - 1].any(1))
    assert np.all(obj[np.arange(200), :, x0].any(1)) and np.all(obj[np.arange(200), :, x1 - 1].any(1))

    again = localization(200, canvas=48, object_size=20, n_classes=4, clutter=8, noise=noise, seed=2)
    for a, b in zip((x, y, boxes, rel), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(x, localization(200, canvas=48, object_size=20, n_classes=4, seed=3)[0])


def test_localization_shapes_differ_by_class():
    x, y, boxes, _ = localization(400, clutter=0, noise=0.0, seed=0, n_classes=4)
    img = x[..., 0]
    assert np.all(img[img > 0] >= 0.6)  # no clutter, no noise: only the object
    area = (img > 0).sum((1, 2)) / np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    fill = [area[y == c].mean() for c in range(4)]  # square 1, disk ~pi/4, triangle ~1/2, cross ~5/9
    assert fill[0] == 1.0 and 0.7 < fill[1] < 0.85 and 0.4 < fill[2] < 0.6 and 0.5 < fill[3] < 0.65


def test_localization_fashion_items():
    rng = np.random.default_rng(0)
    items = np.zeros((6, 28, 28), np.uint8)
    for i in range(6):
        items[i, 4 + i:20 + i, 6:22] = rng.integers(100, 256, size=(16, 16))  # an item with a margin
    labels = np.array([0, 1, 2, 0, 1, 2])
    x, y, boxes, rel = localization(50, source="fashion_mnist", fashion_items=(items, labels), seed=1)
    assert x.shape == (50, 64, 64, 1) and set(np.unique(y)) <= {0, 1, 2}
    assert np.all(boxes[:, 2] - boxes[:, 0] == 16) and np.all(boxes[:, 3] - boxes[:, 1] == 16)  # tight
    assert x[..., 0][~rel].max() <= 0.35 + 0.05
    # without clutter and noise each box holds one item, scaled, of the image's own label
    x, y, boxes, rel = localization(50, source="fashion_mnist", fashion_items=(items, labels), clutter=0,
                                    noise=0.0, seed=1)
    assert np.all(x[..., 0][~rel] == 0)
    for i in range(50):
        y0, x0 = boxes[i, :2]
        patch = x[i, y0:y0 + 16, x0:x0 + 16, 0]
        content = np.stack([items[j, 4 + j:20 + j, 6:22] for j in range(6)]) / 255.0  # all >= 100/255
        scale = patch / content  # constant (the intensity) for the pasted item only
        match = [j for j in range(6) if np.allclose(scale[j], scale[j].mean(), rtol=1e-4)]
        assert len(match) == 1 and labels[match[0]] == y[i]
        assert 0.6 - 1e-6 <= scale[match[0]].mean() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="fashion_items"):
        localization(5, source="fashion_mnist")
    with pytest.raises(ValueError, match="fashion_items"):
        localization(5, source="fashion_mnist", fashion_items=(np.zeros((3, 28, 28)), np.zeros(3, int)))


# ------------------------------------------------------------------------------ load()

@pytest.fixture(scope="module")
def loc():
    return load("localization", seed=0)


def test_load_synthetic_sets():
    for name, d, shape in (("xor", 10, (10,)), ("switch", 10, (10,)), ("planted_text", 400, (400,))):
        ds = load(name, seed=1)
        assert ds.source == "synthetic" and ds.feature_shape == shape
        assert set(ds.ground_truth) == {"train", "val", "test"} and ds.boxes is None
        for split in ("train", "val", "test"):
            x, y, gt = getattr(ds, "x_" + split), getattr(ds, "y_" + split), ds.ground_truth[split]
            assert gt.dtype == bool and gt.shape == x.shape and len(y) == len(x)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (5000, 1000, 1000)
    assert ds.class_names == ["negative", "positive"]
    a, b = load("xor", seed=2), load("xor", seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.ground_truth["test"], b.ground_truth["test"])
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (10000, 1000, 1000)
    assert not np.array_equal(a.x_train, load("xor", seed=3).x_train)


def test_load_localization_ground_truth_and_classes(loc):
    assert loc.feature_shape == (64, 64, 1) and loc.class_names == ["square", "disk", "triangle"]
    assert (len(loc.y_train), len(loc.y_val), len(loc.y_test)) == (6000, 1000, 1000)
    for split in ("train", "val", "test"):
        gt, boxes = loc.ground_truth[split], loc.boxes[split]
        assert gt.shape == (len(boxes), 64, 64) and boxes.shape == (len(gt), 4)
        np.testing.assert_array_equal(gt.sum((1, 2)), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    sub = load("localization", classes=(2, 0), seed=0)
    assert sub.class_names == ["triangle", "square"]
    keep = loc.y_train != 1
    np.testing.assert_array_equal(sub.y_train, np.where(loc.y_train[keep] == 2, 0, 1))
    np.testing.assert_array_equal(sub.boxes["train"], loc.boxes["train"][keep])
    np.testing.assert_array_equal(sub.ground_truth["train"], loc.ground_truth["train"][keep])


# ------------------------------------------------------------------------------ bad inputs

def test_synthetic_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="n: expected an integer >= 1, got 0"):
        l2x_tabular("xor", 0)
    with pytest.raises(TypeError, match="n: expected an integer"):
        planted_text(2.5)
    with pytest.raises(ValueError, match="task: unknown value 'XOR'"):
        l2x_tabular("XOR", 10)
    with pytest.raises(ValueError, match=r"keywords_per_sample\[1\]"):
        planted_text(10, keywords_per_sample=(3, 1))
    with pytest.raises(TypeError, match="keywords_per_sample"):
        planted_text(10, keywords_per_sample=3)
    with pytest.raises(ValueError, match="length"):
        planted_text(10, length=3)
    with pytest.raises(ValueError, match="vocab_size"):
        planted_text(10, vocab_size=10)
    with pytest.raises(ValueError, match="source: unknown value 'circles'"):
        localization(10, source="circles")
    with pytest.raises(ValueError, match="n_classes"):
        localization(10, n_classes=5)
    with pytest.raises(ValueError, match="object_size"):
        localization(10, canvas=16, object_size=20)
    with pytest.raises(ValueError, match="noise"):
        localization(10, noise=-0.1)
    with pytest.raises(TypeError, match="seed"):
        localization(10, seed="a")
