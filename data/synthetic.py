"""Synthetic datasets whose truly relevant features are known (offline, seeded, any size).

Each generator takes ``seed`` and draws everything from one ``np.random.default_rng(seed)``: the same
seed gives the same arrays. Each returns, next to the inputs and labels, a boolean mask of the features
that decide the label, shaped like one explanation per sample ((n, d) tabular, (n, L) text,
(n, H, W) images), so that "true positive rate of the selected features" and "bounding-box hit rate"
can be measured without any real data.

- ``l2x_tabular``: the four synthetic tasks of L2X (Chen et al. 2018, "Learning to Explain"),
  X ~ N(0, I_10). Convention here: P(y=1 | x) = sigmoid(f(x)) (the paper's "P(Y=1|X) ∝ exp f"); the
  L2X code puts 1/(1+exp f) = sigmoid(-f) in its label-1 column, i.e. its labels are ours flipped.
  Labels are sampled from that Bernoulli (the L2X code trains on the two probabilities instead).
  For "switch" the nonlinear-additive group really lives on features 4..7 (the L2X code's
  ``X2[:,4:8], X2[:,:4] = X2[:,:4], X2[:,4:8]`` does not swap numpy views: it copies features 0..3 onto
  4..7 and leaves 0..3 as they were, so there the additive features appear twice).
- ``planted_text``: token-id documents in the IMDB/L2X format whose label is decided by planted keywords.
- ``localization``: one object (a shape or a Fashion-MNIST item) at a random place on a larger
  cluttered canvas, with its bounding box.
- ``timeseries``: a stand-in for the MEED paper's private Tencent Gaming Dataset (3 x 643 sensor time
  series in 41 feature groups, stacked-LSTM black box): Gaussian AR(1) noise whose label is decided by
  a few planted features at sample-dependent time steps, marked (n, steps, features).
"""
from __future__ import annotations

import numpy as np

from kernels.validation import check_choice, check_int, check_positive

L2X_TASKS = ("xor", "orange_skin", "nonlinear_additive", "switch")
L2X_N_FEATURES = 10
SHAPE_NAMES = ("square", "disk", "triangle", "cross")

# IMDB/L2X token format: 0 = padding, 1 = start of document, 2 = out of vocabulary, words from 3.
PAD_ID, START_ID, OOV_ID, FIRST_WORD_ID = 0, 1, 2, 3

# Localisation generator constants (documented in ``localization``).
_OBJECT_INTENSITY = (0.6, 1.0)
_CLUTTER_INTENSITY = (0.15, 0.35)
_STROKE_LENGTH = (3.0, 9.0)
_STROKE_HALF_WIDTH = 0.6
_STROKE_WINDOW = 11  # each stroke is drawn in an 11 x 11 window around its centre


# Time-series generator constants (documented in ``timeseries``).
TS_SWITCH_FEATURES = 2  # features of the switch group that carry the regime
TS_SWITCH_SHIFT = 2.0   # the regime shifts them by -2 ("early") or +2 ("late") at every step


def _sigmoid(f: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * f))  # = 1 / (1 + exp(-f)) without overflow


def _orange_skin(x4: np.ndarray) -> np.ndarray:
    return np.sum(x4 ** 2, axis=1) - 4.0


def _nonlinear_additive(x4: np.ndarray) -> np.ndarray:
    # The constants of the L2X code (make_data.py), not re-derived from the paper's printed formula.
    return -100.0 * np.sin(0.2 * x4[:, 0]) + np.abs(x4[:, 1]) + x4[:, 2] + np.exp(-x4[:, 3]) - 2.4


def l2x_tabular(task: str, n: int, *, seed: int = 0):
    """One of the four L2X tabular tasks; returns (x float32 (n, 10), y int64 (n,), relevant bool (n, 10)).

    x ~ N(0, I_10) and y ~ Bernoulli(sigmoid(f(x))) with
      xor:                f = x1 * x2                                      (relevant: features 0, 1)
      orange_skin:        f = sum_{i<4} x_i^2 - 4                          (relevant: 0..3)
      nonlinear_additive: f = -100 sin(0.2 x1) + |x2| + x3 + exp(-x4) - 2.4 (relevant: 0..3)
      switch:             a random half of the samples (exactly n // 2) gets feature 9 shifted by +3 and
                          the orange-skin label on features 0..3; the other half gets feature 9 shifted
                          by -3 and the nonlinear-additive label on features 4..7. relevant = {9} + the
                          active group, per sample.
    Draw order from ``default_rng(seed)``: x, (switch: the group permutation), then the labels.
    """
    check_choice("task", task, L2X_TASKS)
    n = check_int("n", n, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, L2X_N_FEATURES))
    relevant = np.zeros((n, L2X_N_FEATURES), dtype=bool)
    if task == "xor":
        f = x[:, 0] * x[:, 1]
        relevant[:, :2] = True
    elif task == "orange_skin":
        f = _orange_skin(x[:, :4])
        relevant[:, :4] = True
    elif task == "nonlinear_additive":
        f = _nonlinear_additive(x[:, :4])
        relevant[:, :4] = True
    else:
        orange = np.zeros(n, dtype=bool)
        orange[rng.permutation(n)[: n // 2]] = True
        x[:, 9] += np.where(orange, 3.0, -3.0)
        f = np.where(orange, _orange_skin(x[:, :4]), _nonlinear_additive(x[:, 4:8]))
        relevant[:, :4] = orange[:, None]
        relevant[:, 4:8] = ~orange[:, None]
        relevant[:, 9] = True
    y = (rng.random(n) < _sigmoid(f)).astype(np.int64)
    return x.astype(np.float32), y, relevant


def planted_text(n: int, *, length: int = 400, vocab_size: int = 5000, n_keywords: int = 5,
                 keywords_per_sample=(1, 4), seed: int = 0):
    """Documents whose binary label is decided by planted keywords, in the IMDB/L2X id format.

    Returns (ids int32 (n, length), labels int64 (n,), relevant bool (n, length), keywords int32
    (2, n_keywords)); ``keywords[c]`` are the ids that mark class c and ``relevant`` is True exactly at
    the planted keyword positions.

    Generator: two disjoint sets of ``n_keywords`` keyword ids are drawn from the word ids
    3..vocab_size-1. Labels are balanced (a seeded permutation of 0, 1, 0, 1, ...). Each document has a
    random length m (START token included) uniform in [max(kmax + 1, length // 10), length] (40..400 by
    default) and is 'pre' padded with 0 to ``length``: PAD...PAD START w_1 ... w_{m-1}. Filler words
    are drawn from a Zipf law (probability ∝ 1 / (id - 2)) over the word ids that are not keywords; then
    k ~ U{kmin..kmax} distinct word positions of the document are overwritten with keywords of the
    document's own class (drawn uniformly, with repetition). So only the keywords carry the label.
    """
    n = check_int("n", n, minimum=1)
    n_keywords = check_int("n_keywords", n_keywords, minimum=1)
    if not isinstance(keywords_per_sample, (tuple, list)) or len(keywords_per_sample) != 2:
        raise TypeError(f"keywords_per_sample: expected a pair (min, max), got {keywords_per_sample!r}")
    kmin = check_int("keywords_per_sample[0]", keywords_per_sample[0], minimum=1)
    kmax = check_int("keywords_per_sample[1]", keywords_per_sample[1], minimum=kmin)
    length = check_int("length", length, minimum=kmax + 1)
    vocab_size = check_int("vocab_size", vocab_size, minimum=FIRST_WORD_ID + 2 * n_keywords + 1)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)

    words = np.arange(FIRST_WORD_ID, vocab_size)
    keywords = rng.choice(words, size=2 * n_keywords, replace=False).reshape(2, n_keywords)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    doc_len = rng.integers(max(kmax + 1, length // 10), length + 1, size=n)  # START included

    filler = np.setdiff1d(words, keywords)
    zipf = 1.0 / (filler - FIRST_WORD_ID + 1)
    ids = rng.choice(filler, size=(n, length), p=zipf / zipf.sum()).astype(np.int32)
    col = np.arange(length)[None, :]
    start = (length - doc_len)[:, None]
    ids[col < start] = PAD_ID
    ids[np.arange(n), start[:, 0]] = START_ID

    # Keyword positions: the k smallest of random keys over the document's word positions.
    k = rng.integers(kmin, kmax + 1, size=n)
    keys = np.where(col > start, rng.random((n, length)), np.inf)
    pos = np.argsort(keys, axis=1, kind="stable")[:, :kmax]
    take = np.arange(kmax)[None, :] < k[:, None]
    chosen = keywords[labels[:, None], rng.integers(0, n_keywords, size=(n, kmax))]
    rows = np.broadcast_to(np.arange(n)[:, None], (n, kmax))
    ids[rows[take], pos[take]] = chosen[take]
    relevant = np.zeros((n, length), dtype=bool)
    relevant[rows[take], pos[take]] = True
    return ids, labels, relevant, keywords.astype(np.int32)


def _shape_masks(labels: np.ndarray, sizes: np.ndarray, window: int) -> np.ndarray:
    """Binary shapes drawn in the top-left sizes x sizes corner of a window x window patch per sample."""
    centres = np.arange(window) + 0.5
    u = centres[None, :, None] / sizes[:, None, None]  # row coordinate, 0..1 inside the shape's square
    v = centres[None, None, :] / sizes[:, None, None]  # column coordinate
    inside = (u <= 1.0) & (v <= 1.0)
    shapes = (
        lambda: np.broadcast_to(inside, (len(sizes), window, window)),              # square
        lambda: (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25,                              # disk
        lambda: inside & (np.abs(v - 0.5) <= u / 2),                                 # triangle, apex up
        lambda: inside & ((np.abs(u - 0.5) <= 1 / 6) | (np.abs(v - 0.5) <= 1 / 6)),  # cross (plus)
    )
    masks = np.zeros((len(sizes), window, window), dtype=bool)
    for c in np.unique(labels):
        sel = labels == c
        masks[sel] = shapes[c]()[sel]
    return masks


def _fashion_patches(fashion_items, size: int):
    """Validate (x, y) items, scale to [0, 1] and resize (nearest) to size x size."""
    if not isinstance(fashion_items, (tuple, list)) or len(fashion_items) != 2:
        raise TypeError(f"fashion_items: expected a pair (x, y) of item images and labels, got "
                        f"{type(fashion_items).__name__}")
    x, y = np.asarray(fashion_items[0]), np.asarray(fashion_items[1])
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or len(x) == 0 or x.dtype.kind not in "uif":
        raise ValueError(f"fashion_items: expected x of shape (M, h, w) or (M, h, w, 1) with M >= 1, got "
                         f"an array of shape {x.shape} and dtype {x.dtype}")
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise ValueError(f"fashion_items: expected y as {len(x)} integer labels, got an array of shape "
                         f"{y.shape} and dtype {y.dtype}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255)
    elif x.min() < 0 or x.max() > 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"fashion_items: expected float pixel values in [0, 1] (or uint8), got range "
                         f"[{x.min()}, {x.max()}]")
    rows = np.arange(size) * x.shape[1] // size
    cols = np.arange(size) * x.shape[2] // size
    return x[:, rows][:, :, cols].astype(np.float32), y.astype(np.int64)


def localization(n: int, *, canvas: int = 64, object_size: int = 28, source: str = "shapes",
                 n_classes: int = 3, clutter: int = 6, noise: float = 0.05, seed: int = 0,
                 fashion_items=None):
    """One labelled object on a cluttered canvas; returns (images, labels, boxes, relevant).

    images float32 (n, canvas, canvas, 1) in [0, 1]; labels int64 (n,); boxes int64 (n, 4) as
    (y0, x0, y1, x1), end-exclusive, the tight bounding box of the object's pixels, inside the canvas;
    relevant bool (n, canvas, canvas) = the box.

    Generator (all vectorised over samples):
    - source="shapes": the label c is balanced over ``n_classes`` (2..4) shapes
      ("square", "disk", "triangle", "cross"); the shape is drawn in an s x s square with s uniform in
      [max(4, object_size // 2), object_size], at a uniform position fully inside the canvas, with a
      uniform intensity in [0.6, 1].
    - source="fashion_mnist": ``fashion_items=(x, y)`` (e.g. Fashion-MNIST images and labels, uint8 or
      [0, 1] floats) are drawn uniformly with replacement, resized (nearest) to object_size x object_size,
      scaled by an intensity in [0.6, 1] and pasted at a uniform position; the label is the item's own
      label (``n_classes`` is not used).
    - clutter: ``clutter`` strokes per image, straight 1-2 px wide segments of length 3..9 px, random
      orientation, intensity in [0.15, 0.35], whose centres lie outside the object's box (they may reach
      a few pixels into it, but never lie inside it), composited with max (shape pixels, >= 0.6, always
      win; a dark pixel of a Fashion-MNIST item can be brightened by a stroke reaching into the box); then
      uniform noise in [0, noise) on every pixel, clipped to [0, 1]. Clutter and noise are independent of
      the label, so outside the box every pixel is below 0.35 + noise.
    """
    n = check_int("n", n, minimum=1)
    canvas = check_int("canvas", canvas, minimum=8)
    object_size = check_int("object_size", object_size, minimum=4, maximum=canvas)
    check_choice("source", source, ("shapes", "fashion_mnist"))
    clutter = check_int("clutter", clutter, minimum=0)
    check_positive("noise", noise, allow_zero=True)
    if noise > 0.5:
        raise ValueError(f"noise: expected a noise amplitude in [0, 0.5], got {noise!r}")
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    S = object_size

    if source == "shapes":
        n_classes = check_int("n_classes", n_classes, minimum=2, maximum=len(SHAPE_NAMES))
        labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
        extent = rng.integers(max(4, S // 2), S + 1, size=n)
        patch = _shape_masks(labels, extent, S).astype(np.float32)
    else:
        if fashion_items is None:
            raise ValueError("fashion_items: expected a pair (x, y) of item images and labels for "
                             "source='fashion_mnist', got None")
        items, item_labels = _fashion_patches(fashion_items, S)
        blank = np.flatnonzero(items.reshape(len(items), -1).max(axis=1) <= 0)
        if blank.size:
            raise ValueError(f"fashion_items: items {blank[:5].tolist()} are blank (all pixels 0); expected "
                             f"every item to show an object")
        pick = rng.integers(0, len(items), size=n)
        labels, patch = item_labels[pick], items[pick]
        extent = np.full(n, S)
    patch *= rng.uniform(*_OBJECT_INTENSITY, size=n).astype(np.float32)[:, None, None]
    oy = rng.integers(0, canvas - extent + 1)
    ox = rng.integers(0, canvas - extent + 1)

    # Tight box of the object's pixels.
    on = patch > 0
    rows_on, cols_on = on.any(axis=2), on.any(axis=1)
    boxes = np.stack([oy + rows_on.argmax(1), ox + cols_on.argmax(1),
                      oy + S - rows_on[:, ::-1].argmax(1), ox + S - cols_on[:, ::-1].argmax(1)], axis=1)
    boxes = boxes.astype(np.int64)

    # Paste the S x S windows into a canvas padded by S at the bottom/right (shapes may be smaller
    # than the window, so the window can reach past the canvas), then crop.
    big = np.zeros((n, canvas + S, canvas + S), dtype=np.float32)
    _windows(big, S)[np.arange(n), oy, ox] = patch
    images = np.maximum(big[:, :canvas, :canvas], _strokes(rng, boxes, canvas, clutter))
    images += rng.random((n, canvas, canvas), dtype=np.float32) * np.float32(noise)
    np.clip(images, 0.0, 1.0, out=images)

    grid = np.arange(canvas)
    in_rows = (grid[None, :] >= boxes[:, 0:1]) & (grid[None, :] < boxes[:, 2:3])
    in_cols = (grid[None, :] >= boxes[:, 1:2]) & (grid[None, :] < boxes[:, 3:4])
    relevant = in_rows[:, :, None] & in_cols[:, None, :]
    return images[..., None], labels, boxes, relevant


def _strokes(rng, boxes: np.ndarray, canvas: int, count: int) -> np.ndarray:
    """``count`` clutter strokes per image with centres outside ``boxes``; float32 (n, canvas, canvas)."""
    n = len(boxes)
    out = np.zeros((n, canvas, canvas), dtype=np.float32)
    if count == 0:
        return out
    cy = rng.uniform(0, canvas, size=(n, count))
    cx = rng.uniform(0, canvas, size=(n, count))
    for _ in range(100):  # rejection sampling of the centres that fell inside the box
        bad = ((cy >= boxes[:, 0:1]) & (cy < boxes[:, 2:3]) & (cx >= boxes[:, 1:2]) & (cx < boxes[:, 3:4]))
        if not bad.any():
            break
        cy[bad] = rng.uniform(0, canvas, size=bad.sum())
        cx[bad] = rng.uniform(0, canvas, size=bad.sum())
    # A box covering (nearly) the whole canvas can leave centres inside: those strokes are dropped.
    intensity = rng.uniform(*_CLUTTER_INTENSITY, size=(n, count)) * ~bad
    angle = rng.uniform(0, np.pi, size=(n, count))
    half = rng.uniform(*_STROKE_LENGTH, size=(n, count)) / 2
    dy, dx = 2 * half * np.sin(angle), 2 * half * np.cos(angle)  # segment a -> a + (dy, dx)
    ay, ax = cy - dy / 2, cx - dx / 2

    W = _STROKE_WINDOW
    top, left = np.floor(cy).astype(int) - W // 2, np.floor(cx).astype(int) - W // 2
    ay, ax, dy, dx, intensity = (a.astype(np.float32) for a in (ay, ax, dy, dx, intensity))
    offsets = np.arange(W, dtype=np.float32) + np.float32(0.5)
    py = (top[..., None].astype(np.float32) + offsets)[..., :, None]  # (n, count, W, 1) pixel centres
    px = (left[..., None].astype(np.float32) + offsets)[..., None, :]  # (n, count, 1, W)
    e = lambda a: a[..., None, None]  # noqa: E731  (n, count) -> (n, count, 1, 1)
    ry, rx = py - e(ay), px - e(ax)  # pixel centre relative to the segment start
    t = np.clip((ry * e(dy) + rx * e(dx)) / e(dy ** 2 + dx ** 2), 0.0, 1.0)
    dist2 = (ry - t * e(dy)) ** 2 + (rx - t * e(dx)) ** 2
    values = np.where(dist2 <= _STROKE_HALF_WIDTH ** 2, e(intensity), np.float32(0))

    # Paste each stroke's window into a canvas padded by W on every side (one stroke per image at a
    # time, so the fancy-index writes never collide), then crop.
    big = np.zeros((n, canvas + 2 * W, canvas + 2 * W), dtype=np.float32)
    windows, ar = _windows(big, W), np.arange(n)
    for j in range(count):
        windows[ar, top[:, j] + W, left[:, j] + W] = np.maximum(windows[ar, top[:, j] + W, left[:, j] + W],
                                                                values[:, j])
    return big[:, W:W + canvas, W:W + canvas]


def _windows(images: np.ndarray, size: int) -> np.ndarray:
    """Writable view (n, rows, cols, size, size) of every size x size window of (n, H, W) ``images``."""
    return np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2), writeable=True)


def timeseries_groups(features: int = 643, n_groups: int = 41) -> np.ndarray:
    """Group id (int64, shape (features,)) of each feature: ``n_groups`` contiguous groups of as equal
    sizes as possible, the larger ones first (``np.array_split``); 643 / 41 gives 28 groups of 16 and
    13 of 15 features, like the 41 feature groups of the MEED paper's TGD."""
    features = check_int("features", features, minimum=1)
    n_groups = check_int("n_groups", n_groups, minimum=1, maximum=features)
    size, extra = divmod(features, n_groups)
    return np.repeat(np.arange(n_groups), [size + (g < extra) for g in range(n_groups)]).astype(np.int64)


def timeseries(n: int, *, steps: int = 3, features: int = 643, n_relevant: int = 16, n_groups: int = 41,
               relevant_groups: int = 4, signal: float = 0.4, temporal_corr: float = 0.5, seed: int = 0):
    """A TGD-like binary time-series task; returns (x float32 (n, steps, features), y int64 (n,),
    relevant bool (n, steps, features)).

    A stand-in for the MEED paper's private Tencent Gaming Dataset (Section 4.5: 3 x 643 sensor features
    per sample in 41 groups, a stacked-LSTM black box at 90.16%, explanations keep 10% of the entries).

    Generator:
    - Layout (fixed by ``seed``, shared by all samples): the features form ``n_groups`` contiguous groups
      (``timeseries_groups``). One seeded group is the *switch group*, holding ``TS_SWITCH_FEATURES`` (2)
      switch features at seeded positions. ``relevant_groups`` other seeded groups hold the
      ``n_relevant`` *evidence features* (split as evenly as possible between them, at seeded positions
      inside each group), each with a seeded sign w_j = +-1.
    - Labels y and regimes r in {early, late} are balanced (seeded permutations of 0, 1, 0, 1, ...)
      and independent of each other.
    - Background: every feature other than an evidence feature is a stationary Gaussian AR(1) series
      over the steps, x_0 = e_0, x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t with rho = ``temporal_corr``,
      e iid N(0, 1) (each entry N(0, 1), corr(x_t, x_u) = rho^|t - u|). Evidence features get iid N(0, 1)
      entries instead (with temporal correlation an evidence feature at an inactive step would carry
      information about the noise at its active steps, i.e. about y). Features are independent.
    - Switch: the switch features are shifted by -2 (early) or +2 (late) at every step, so the regime
      can be read off them (one entry: 97.7%, all of them: > 99.9%).
    - Evidence: the regime's *active steps* are the first (early) or the last (late) ceil(steps / 2)
      steps (steps 0, 1 or 1, 2 for 3 steps). At each active step every evidence feature j is shifted
      by ``signal`` * w_j * c, c = +1 if y = 1 else -1 in the early regime and the opposite in the late
      one (the same feature pattern means "class 1" early and "class 0" late). Nothing else depends on y.
    - relevant = the evidence features at the sample's active steps plus the switch features at every
      step: 16 * 2 + 2 * 3 = 38 of 3 * 643 = 1929 entries (2.0%) by default.
    Hence every entry outside ``relevant`` is independent of y, also given the relevant entries (the
    evidence features at inactive steps are pure noise). Knowing the regime, the Bayes classifier is the
    sign of c_r * sum_j w_j sum_{t active} x[t, j], with accuracy Phi(signal * sqrt(n_relevant *
    ceil(steps / 2))): 98.8% by default. One evidence entry alone gives Phi(signal) (65.5%); without
    the switch the shared step carries no information and the Bayes accuracy drops to ~87% (measured,
    defaults), as does a linear classifier's, so a model must combine the switch with the evidence.

    Draw order from ``default_rng(seed)``: group permutation, positions of the switch and evidence
    features inside their groups, the signs, the labels, the regimes, the noise.
    """
    n = check_int("n", n, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    features = check_int("features", features, minimum=1)
    n_groups = check_int("n_groups", n_groups, minimum=2, maximum=features)
    relevant_groups = check_int("relevant_groups", relevant_groups, minimum=1, maximum=n_groups - 1)
    n_relevant = check_int("n_relevant", n_relevant, minimum=relevant_groups)
    check_positive("signal", signal)
    check_positive("temporal_corr", temporal_corr, allow_zero=True)
    if temporal_corr >= 1:
        raise ValueError(f"temporal_corr: expected an AR(1) coefficient in [0, 1), got {temporal_corr!r}")
    seed = check_int("seed", seed, minimum=0)
    groups = timeseries_groups(features, n_groups)
    smallest = features // n_groups
    per_group = np.full(relevant_groups, n_relevant // relevant_groups)
    per_group[: n_relevant % relevant_groups] += 1
    if smallest < TS_SWITCH_FEATURES:
        raise ValueError(f"features: {features} features in {n_groups} groups leave groups of {smallest}, too "
                         f"small for the {TS_SWITCH_FEATURES} switch features; expected features >= "
                         f"{TS_SWITCH_FEATURES * n_groups} (or fewer groups)")
    if per_group.max() > smallest:
        raise ValueError(f"n_relevant: {n_relevant} evidence features in {relevant_groups} groups of at most "
                         f"{smallest} features (the smallest of {features} features in {n_groups} groups); "
                         f"expected n_relevant <= {relevant_groups * smallest} (or more relevant_groups)")
    rng = np.random.default_rng(seed)

    # Layout: the switch group, then the evidence groups; seeded positions inside each group.
    chosen = rng.permutation(n_groups)[: relevant_groups + 1]
    starts = np.searchsorted(groups, chosen)
    switch = starts[0] + np.sort(rng.permutation(smallest)[:TS_SWITCH_FEATURES])
    evidence = np.concatenate([start + np.sort(rng.permutation(smallest)[:k])
                               for start, k in zip(starts[1:], per_group)])
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n_relevant)
    y = rng.permutation(np.arange(n) % 2).astype(np.int64)
    late = rng.permutation(np.arange(n) % 2).astype(bool)

    x = rng.standard_normal((n, steps, features), dtype=np.float32)
    is_evidence = np.zeros(features, dtype=bool)
    is_evidence[evidence] = True
    keep, fresh = np.float32(temporal_corr), np.float32(np.sqrt(1.0 - temporal_corr ** 2))
    for t in range(1, steps):  # AR(1) over the steps, on the non-evidence features only
        x[:, t, ~is_evidence] = keep * x[:, t - 1, ~is_evidence] + fresh * x[:, t, ~is_evidence]
    x[:, :, switch] += np.where(late, TS_SWITCH_SHIFT, -TS_SWITCH_SHIFT).astype(np.float32)[:, None, None]

    n_active = (steps + 1) // 2
    active = np.zeros((n, steps), dtype=bool)  # (sample, step): the regime's active steps
    active[~late, :n_active] = True
    active[late, steps - n_active:] = True
    c = np.where(y == 1, np.float32(1), np.float32(-1)) * np.where(late, np.float32(-1), np.float32(1))
    shift = np.float32(signal) * c
    x[:, :, evidence] += (active * shift[:, None])[:, :, None] * signs

    relevant = np.zeros((n, steps, features), dtype=bool)
    relevant[:, :, evidence] = active[:, :, None]
    relevant[:, :, switch] = True
    return x, y, relevant
