"""Sanity checks of an explainer: model and data randomisation (MEED, Liang et al., KDD 2020, Section 4.1.3).

Adebayo et al. (NeurIPS 2018, "Sanity checks for saliency maps") ask whether an explanation depends on the
model at all: if an explainer selects (nearly) the same features for a model whose weights were re-drawn at
random (**model randomisation**) or for a model trained on permuted labels (**data randomisation**), it
explains the inputs rather than the model. MEED runs both tests on IMDB and scores them by the cosine
similarity between the original binary masks and the masks of the explainer retrained against the
randomised model: 9.39% (model) and 10.25% (data), low values meaning the masks depend on the model. The
released code has no sanity-check code (reference/meed_original_code.md), so this module follows the text.

The workflow, of which this module provides the randomised objects and the comparison:

1. ``model_randomization(blackbox, seed)`` -> a re-initialised copy of the black box; or retrain the
   black box on ``data_randomization(y_train, seed)``.
2. Retrain the explainer against that randomised model (the caller's training code) and select its
   top-k masks on the same test inputs.
3. ``sanity_report(masks_original, masks_randomized, k)``: the mean cosine against its chance level k/d.
"""
from __future__ import annotations

import math

import keras
import numpy as np


from eval.imputation import binary_values
from kernels.seeds import seeded
from kernels.validation import check_int, check_k, check_positive, check_same_shape


def _binary_rows(name: str, masks) -> np.ndarray:
    """``masks`` (N, ...) as a bool array (N, features) after checking it is a non-empty batch of 0/1 values."""
    if masks is None:
        raise TypeError(f"{name}: expected a batch of binary masks, got None")
    m = binary_values(name, masks)
    if m.ndim < 2 or m.shape[0] == 0 or m[0].size == 0:
        raise ValueError(
            f"{name}: expected a batch of masks (N, ...) with N >= 1 and >= 1 feature, got shape {m.shape}"
        )
    return m.reshape(len(m), -1) != 0


def _checked_pair(masks_a, masks_b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _binary_rows(name_a, masks_a), _binary_rows(name_b, masks_b)
    check_same_shape(name_a, np.asarray(masks_a), name_b, np.asarray(masks_b))
    return a, b


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of bool masks: |A and B| / sqrt(|A| |B|) (binary entries square to themselves)."""
    overlap = np.count_nonzero(a & b, axis=1)
    return overlap / np.sqrt(np.count_nonzero(a, axis=1) * np.count_nonzero(b, axis=1).astype(np.float64))


def mask_cosine_similarity(masks_a, masks_b) -> np.ndarray:
    """Per-sample cosine similarity of two batches of binary masks, as float64 of shape (N,).

    Each mask (N, ...) is flattened to one vector per sample, so image masks (N, H, W) and token masks
    (N, L) are handled alike. For binary masks the cosine is |A and B| / sqrt(|A| |B|): 1 for identical
    masks, 0 for disjoint ones, and for two k-hot masks the share of the k features they have in common.
    MEED reports its mean over the test samples (Section 4.1.3). A mask that selects nothing has no
    direction, so an all-zero row raises a ValueError naming the samples.
    """
    a, b = _checked_pair(masks_a, masks_b, "masks_a", "masks_b")
    for name, rows in (("masks_a", a), ("masks_b", b)):
        empty = np.flatnonzero(~rows.any(axis=1))
        if empty.size:
            raise ValueError(
                f"{name}: expected every mask to select at least one feature (the cosine of an empty mask is "
                f"undefined), got {empty.size} empty masks, e.g. samples {empty[:5].tolist()}"
            )
    return _cosine(a, b)


def expected_random_cosine(k: int, d: int) -> float:
    """Chance level of ``mask_cosine_similarity`` for k-hot masks over d features: k / d.

    If one of two k-hot masks is a uniformly random k-subset, independent of the other, their overlap H
    is hypergeometric with mean k * k / d, so the cosine H / k has mean k / d (2.5% for MEED's IMDB
    setting, k = 10 words of d = 400). Reports show it beside the measured cosine.
    """
    d = check_int("d", d, minimum=1)
    k = check_k("k", k, d)
    return k / d


def _chance_std(k: int, d: int) -> float:
    """Standard deviation of one sample's cosine H / k under chance (H hypergeometric, see sanity_report)."""
    return (d - k) / (d * math.sqrt(d - 1))


def sanity_report(masks_original, masks_randomized, k: int, *, z: float = 3.0) -> dict[str, object]:
    """Summarise a randomisation test: the mean mask cosine, its chance level and whether it is at chance.

    ``masks_original`` and ``masks_randomized`` are k-hot masks (N, ...) of the same test inputs, from the
    explainer trained against the original and against the randomised model. Every mask must select
    exactly ``k`` of its d features (per-feature masks, e.g. (N, H, W) for images, not per channel).

    Chance level. Under the null hypothesis "the randomised explainer selects a uniformly random k-subset,
    independent of the original mask", a sample's overlap H is hypergeometric (population d, k marked,
    k drawn): E[H] = k^2 / d and Var[H] = k (k/d) (1 - k/d) (d - k) / (d - 1). The cosine H / k therefore
    has mean k / d and standard deviation sigma = (d - k) / (d sqrt(d - 1)), and the mean over N
    independent samples has standard error se = sigma / sqrt(N) (and is close to normal for N in the
    hundreds, the size of a test set).

    ``passes`` is the one-sided test mean <= k/d + z * se: the masks overlap no more than chance allows,
    with z = 3 (a false failure rate of about 0.1% for a randomised explainer that truly is at chance).
    The test is strict: with many samples se is small, so any systematic overlap fails it. MEED's IMDB
    scores (9.39% / 10.25% against a chance level of 2.5% for k = 10, d = 400) would not pass it; the
    paper reads "low" informally. ``z_score`` = (mean - k/d) / se tells how far above chance a result is.

    Returns a dict with ``cosine_mean``, ``cosine_std`` (sample std over the N cosines, ddof=1; 0 for one
    sample), ``n_samples``, ``k``, ``d``, ``chance`` (k/d), ``chance_std_error`` (se), ``threshold``
    (k/d + z se), ``z``, ``z_score`` and ``passes``.
    """
    a, b = _checked_pair(masks_original, masks_randomized, "masks_original", "masks_randomized")
    n, d = a.shape
    k = check_k("k", k, d)
    if k == d:
        raise ValueError(f"k: expected k < d = {d} (selecting every feature makes all masks equal), got {k}")
    check_positive("z", z)
    for name, rows in (("masks_original", a), ("masks_randomized", b)):
        counts = np.count_nonzero(rows, axis=1)
        if np.any(counts != k):
            raise ValueError(
                f"{name}: expected exactly k={k} selected features in every mask, got counts between "
                f"{counts.min()} and {counts.max()}"
            )
    cosines = _cosine(a, b)
    mean = float(cosines.mean())
    chance = k / d
    std_error = _chance_std(k, d) / math.sqrt(n)
    threshold = chance + float(z) * std_error
    return {
        "cosine_mean": mean,
        "cosine_std": float(cosines.std(ddof=1)) if n > 1 else 0.0,
        "n_samples": int(n),
        "k": k,
        "d": int(d),
        "chance": chance,
        "chance_std_error": std_error,
        "threshold": threshold,
        "z": float(z),
        "z_score": (mean - chance) / std_error,
        "passes": bool(mean <= threshold),
    }


def model_randomization(blackbox, seed: int = 0) -> keras.Model:
    """A copy of ``blackbox`` with every weight re-drawn from its layer's own initializer (model randomisation).

    Adebayo et al.'s full model randomisation test (MEED Section 4.1.3): the explainer is retrained against
    this model, whose outputs carry no learned relationship, and its masks are compared with the original
    ones by ``mask_cosine_similarity``. ``keras.models.clone_model`` rebuilds every layer from its config,
    so each weight (kernels, biases, embeddings, BatchNorm statistics, including those of frozen layers)
    is drawn afresh from that layer's initializer: zero-initialised biases become zeros again, kernels a
    new Glorot (or whatever the layer declares) draw. ``blackbox`` itself is left unchanged.

    ``seed`` makes the draw reproducible: the clone is built inside ``kernels.seeds.seeded(seed)`` (as in
    ``eval.fidelity``; the caller's global generators are restored afterwards). An initializer created
    with an explicit seed draws the same values as when the black box was built, i.e. its untrained
    initial weights. The copy is not compiled.
    """
    if not isinstance(blackbox, keras.Model):
        raise TypeError(f"blackbox: expected a keras.Model, got {type(blackbox).__name__}")
    seed = check_int("seed", seed, minimum=0)
    if not blackbox.built or not blackbox.weights:
        raise ValueError(f"blackbox: expected a built model with weights, got {blackbox.name!r} with none")
    with seeded(seed):
        randomized = keras.models.clone_model(blackbox)
    shapes = [tuple(w.shape) for w in blackbox.weights]
    new_shapes = [tuple(w.shape) for w in randomized.weights]
    if new_shapes != shapes:
        raise ValueError(
            f"blackbox: expected clone_model to rebuild the same weights {shapes}, got {new_shapes} "
            "(a subclassed model needs get_config/from_config and must build in its constructor)"
        )
    return randomized


def data_randomization(y, seed: int = 0) -> np.ndarray:
    """A seeded random permutation of the labels ``y`` (data randomisation; MEED Section 4.1.3).

    Adebayo et al.'s data randomisation test retrains the black box on permuted training labels, which
    keeps the class balance but destroys the relation between inputs and labels; the explainer is then
    retrained against that model. ``y`` holds integer labels (N,) or one-hot / probability rows (N, C);
    rows are permuted with ``numpy.random.default_rng(seed)``. Returns a new array; ``y`` is not modified.
    """
    if y is None:
        raise TypeError("y: expected labels (N,) or one-hot rows (N, C), got None")
    labels = np.asarray(y)
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"y: expected numeric labels, got dtype {labels.dtype}")
    if labels.ndim not in (1, 2) or len(labels) == 0:
        raise ValueError(f"y: expected labels (N,) or one-hot rows (N, C) with N >= 1, got shape {labels.shape}")
    seed = check_int("seed", seed, minimum=0)
    return labels[np.random.default_rng(seed).permutation(len(labels))]
