"""Completeness and soundness of saliency maps (Gupta et al., NeurIPS 2022, Section 3, Appendix D), as the
authors' released code computes them (../shared/reference/masking_definitions.md).

For an image x, a label a and a map m_a (one map per evaluated label):

- T_s(m): the binary mask of the s highest-scored pixels (all channels of a pixel together); ties: the
  lower row-major index first (deterministic; the released code's argsort leaves ties arbitrary).
- The base metric g_s(x, a, m) = f(x T_s(m) + (1 - T_s(m)) mu, a): keep the top s pixels, the rest from a
  substrate mu: "gray" (a constant, 0 = gray in a zero-centred input space, the code's choice) or "random"
  (images of a pool; g_s is then the mean over ``n_random`` pool images drawn per image without replacement,
  the same draws for every label, level and method -- the code's ``eval_mask_noise_batch_AUC``).
- The AUC metric g_AUC = mean of g_s over s in ``fractions`` x d (d = H W pixels, s = floor(f d)): the
  paper's 28 levels d/28, 2d/28, ..., d ("paper": s = 0 excluded, the full image included), or the CIFAR
  appendix variant 0.2 d .. 0.6 d ("cifar": steps of 0.02 d, our choice: the paper gives no step).
- completeness c = min(1, max(eps1, g_AUC) / f(x, a)); soundness s = min(1, max(eps2, f(x, a)) / g_AUC)
  (1 where the denominator is 0). Defaults: the appendix tables' eps1 = 0, eps2 = 0.1 (the scripts: 0.1 / 0.1).
- Worst case: the mean over images of the minimum over the evaluated labels: ``labels="top2"`` (the paper,
  App. D: the predicted and the second most probable label), "all" (the code: every listed label), "top1",
  a list of class ids, or an (N, L) array.

f is the model's probability; with ``class_subset`` the softmax runs over those classes only (the released
demo's six-label wrapper), for f(x, a), the evaluated labels and every g_s. All levels (and substrates) of a
chunk of images go through one forward pass (``eval.ranked_perturbation``).

The curves g_s (averaged over images, per label rank) are the paper's Figure 9 (``CertificateResult.mean_curves``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from eval.metrics import Metric, MetricResult
from eval.protocol import as_scores, as_targets, predict_probabilities
from eval.ranked_perturbation import RankedScorer, pixel_ranks, restrict
from eval.report import Column
from eval.tile_perturbation import check_images
from kernels.validation import check_choice, check_int

#: The retained fractions of the AUC metric: the paper's 28 levels and the CIFAR appendix variant.
FRACTIONS = {
    "paper": np.arange(1, 29) / 28.0,
    "cifar": np.round(np.arange(0.20, 0.60 + 1e-9, 0.02), 10),
}
LABELS = ("top1", "top2", "all")
SUBSTRATES = ("gray", "random")
#: Pool images averaged per image for the "random" substrate (the code's ``noise_bs`` default).
DEFAULT_N_RANDOM = 40


# ------------------------------------------------------------------------------------------ pieces

def retained_fractions(fractions="paper") -> np.ndarray:
    """The fractions f of the AUC metric: a preset name ("paper", "cifar") or values in (0, 1]."""
    if isinstance(fractions, str):
        return FRACTIONS[check_choice("fractions", fractions, FRACTIONS)].astype(np.float64)
    try:
        values = np.asarray(fractions, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"fractions: expected a preset {sorted(FRACTIONS)} or fractions in (0, 1], "
                         f"got {fractions!r}") from None
    if values.size == 0 or not np.all(np.isfinite(values)) or values.min() <= 0 or values.max() > 1:
        raise ValueError(f"fractions: expected a preset {sorted(FRACTIONS)} or a non-empty list of fractions in "
                         f"(0, 1], got {fractions!r}")
    return values


def retained_sizes(n_features: int, fractions="paper") -> np.ndarray:
    """Pixel counts s = floor(f d) (at least 1) of the levels f for maps of d = ``n_features`` pixels."""
    n_features = check_int("n_features", n_features, minimum=1)
    values = retained_fractions(fractions)
    return np.clip(np.floor(values * n_features + 1e-9).astype(np.int64), 1, n_features)


def top_s_masks(scores, sizes) -> np.ndarray:
    """T_s of each map (N, *shape) for each count of ``sizes`` (S,): float32 {0, 1} (N, S, *shape).

    Ties: the lower row-major index first (eval.ranked_perturbation.pixel_ranks)."""
    ranks = pixel_ranks(scores)
    sizes = np.asarray(sizes, np.int64).reshape((1, -1) + (1,) * (ranks.ndim - 1))
    return (ranks[:, None] < sizes).astype(np.float32)


def check_eps(name: str, value) -> float:
    """An epsilon of completeness / soundness: a number in [0, 1] (ValueError naming it otherwise)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


def completeness(auc, probability, eps1: float = 0.0) -> np.ndarray:
    """c = min(1, max(eps1, g_AUC) / f(x, a)) elementwise; 1 where f(x, a) <= max(eps1, g_AUC) (also f = 0)."""
    eps1 = check_eps("eps1", eps1)
    numerator, p = np.maximum(eps1, np.asarray(auc, np.float64)), np.asarray(probability, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(numerator >= p, 1.0, numerator / np.where(p > 0, p, 1.0))


def soundness(auc, probability, eps2: float = 0.1) -> np.ndarray:
    """s = min(1, max(eps2, f(x, a)) / g_AUC) elementwise; 1 where g_AUC <= max(eps2, f(x, a)) (also g_AUC = 0)."""
    eps2 = check_eps("eps2", eps2)
    numerator, auc = np.maximum(eps2, np.asarray(probability, np.float64)), np.asarray(auc, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(numerator >= auc, 1.0, numerator / np.where(auc > 0, auc, 1.0))


def check_class_subset(class_subset, n_classes: int):
    """``class_subset`` as a tuple of distinct class ids (its order kept) in [0, n_classes) (at least 2), or None."""
    if class_subset is None:
        return None
    values = np.asarray(class_subset)
    if values.ndim != 1 or values.size < 2 or values.dtype.kind not in "iu" or len(set(values.tolist())) != values.size:
        raise ValueError(f"class_subset: expected a list of at least 2 distinct integer class ids, "
                         f"got {class_subset!r}")
    if values.min() < 0 or values.max() >= n_classes:
        raise ValueError(f"class_subset: expected class ids in [0, {n_classes - 1}], got {class_subset!r}")
    return tuple(int(v) for v in values)


def evaluated_labels(probabilities, labels="top2", *, class_subset=None) -> np.ndarray:
    """The labels evaluated per image (N, L) int64, original class ids.

    ``labels``: "top1" / "top2" (the model's most probable labels, in order; ties: the lower class id first),
    "all" (every class, or every class of ``class_subset``, in the subset's order), a list of class ids (the
    same for every image) or an (N, L) integer array. With ``class_subset`` the ranking runs over its classes
    and every label must belong to it.
    """
    probabilities = np.asarray(probabilities, np.float64)
    n, n_classes = probabilities.shape
    subset = check_class_subset(class_subset, n_classes)
    classes = np.arange(n_classes) if subset is None else np.asarray(subset)
    if isinstance(labels, str):
        check_choice("labels", labels, LABELS)
        if labels == "all":
            return np.broadcast_to(classes, (n, len(classes))).astype(np.int64).copy()
        order = np.argsort(-restrict(probabilities, subset), axis=1, kind="stable")[:, :int(labels[-1])]
        return classes[order].astype(np.int64)
    values = np.asarray(labels)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    if values.dtype.kind not in "iu" or values.ndim not in (1, 2) or values.size == 0:
        raise ValueError(f"labels: expected one of {list(LABELS)}, a list of class ids or an (N, L) int array, "
                         f"got {labels!r}"[:300])
    values = np.broadcast_to(values, (n, values.shape[-1])) if values.ndim == 1 else values
    if values.shape[0] != n:
        raise ValueError(f"labels: expected {n} rows (one per image), got shape {values.shape}")
    if values.min() < 0 or values.max() >= n_classes:
        raise ValueError(f"labels: expected class ids in [0, {n_classes - 1}], got values in "
                         f"[{values.min()}, {values.max()}]")
    if subset is not None and not np.isin(values, classes).all():
        raise ValueError(f"labels: every label must belong to class_subset {list(subset)}, got "
                         f"{sorted(set(values.ravel().tolist()) - set(subset))[:10]} outside it")
    return values.astype(np.int64)


def label_columns(labels: np.ndarray, class_subset) -> np.ndarray:
    """Class ids -> columns of the (restricted) probability vector."""
    if class_subset is None:
        return np.asarray(labels, np.int64)
    position = {c: i for i, c in enumerate(class_subset)}
    return np.vectorize(position.__getitem__, otypes=[np.int64])(labels)


def label_maps(explainer_or_scores, x: np.ndarray, labels: np.ndarray, *, batch_size=None) -> np.ndarray:
    """Maps (N, L, H, W) of the evaluated labels (N, L): an array of that shape ((N, H, W) when L = 1), or
    an explainer -- its ``explain_labels(x, labels=...)`` when it has one (the masking optimiser learns all
    pairs in one run), else one ``explain(x, labels[:, l])`` per label rank."""
    n, n_labels = labels.shape
    if hasattr(explainer_or_scores, "explain"):
        if hasattr(explainer_or_scores, "explain_labels"):
            maps = np.asarray(explainer_or_scores.explain_labels(x, labels=labels, batch_size=batch_size))
        else:
            maps = np.stack([as_scores(explainer_or_scores, x, targets=labels[:, l], batch_size=batch_size)
                             for l in range(n_labels)], axis=1)
    else:
        maps = np.asarray(explainer_or_scores, np.float32)
        if maps.shape == (n,) + x.shape[1:3] and n_labels == 1:
            maps = maps[:, None]
    if maps.shape != (n, n_labels) + x.shape[1:3]:
        raise ValueError(f"scores: expected one map per evaluated label, shape {(n, n_labels) + x.shape[1:3]}, "
                         f"got {maps.shape}")
    if not np.all(np.isfinite(maps)):
        raise ValueError("scores: expected finite maps, got NaN/Inf entries")
    return maps.astype(np.float32)


def substrate_table(x: np.ndarray, substrate: str, value: float, pool, n_random: int, seed: int):
    """(table (K, H, W, C), per-image draws (N, R) into it) for the substrate of the base metric."""
    check_choice("substrate", substrate, SUBSTRATES)
    n = len(x)
    if substrate == "gray":
        if pool is not None:
            raise ValueError("pool: only used with substrate='random', got a pool with substrate='gray'")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(value):
            raise ValueError(f"value: expected a finite number (the gray value), got {value!r}")
        return np.full((1,) + x.shape[1:], value, np.float32), np.zeros((n, 1), np.int64)
    if pool is None:
        raise ValueError("pool: substrate='random' needs a pool of images (K, H, W, C), got None")
    pool = check_images(pool)
    if pool.shape[1:] != x.shape[1:]:
        raise ValueError(f"pool: expected images of shape {x.shape[1:]} (that of x), got {pool.shape[1:]}")
    n_random = check_int("n_random", n_random, minimum=1)
    if n_random > len(pool):
        raise ValueError(f"n_random: expected at most the pool size {len(pool)} (drawn without replacement), "
                         f"got {n_random}")
    draws = np.stack([np.random.default_rng([seed, i]).choice(len(pool), n_random, replace=False) for i in range(n)])
    return pool, draws


# ------------------------------------------------------------------------------------------ result

@dataclass(frozen=True, eq=False)
class CertificateResult:
    """Completeness and soundness per (image, evaluated label), their worst cases and the AUC curves.

    ``labels`` (N, L) class ids; ``probability`` f(x, a) (N, L); ``curves`` g_s (N, L, S) for the levels
    ``fractions`` / ``sizes`` (S,); ``auc`` (N, L) their mean; ``completeness`` / ``soundness`` (N, L);
    ``worst_completeness`` / ``worst_soundness``: the mean over images of the minimum over labels.
    """

    labels: np.ndarray
    probability: np.ndarray
    curves: np.ndarray
    auc: np.ndarray
    completeness: np.ndarray
    soundness: np.ndarray
    fractions: np.ndarray
    sizes: np.ndarray
    eps1: float
    eps2: float
    substrate: str
    label_rule: str
    class_subset: tuple | None

    @property
    def worst_completeness(self) -> float:
        return float(self.completeness.min(axis=1).mean())

    @property
    def worst_soundness(self) -> float:
        return float(self.soundness.min(axis=1).mean())

    @property
    def mean_curves(self) -> np.ndarray:
        """(L, S): g_s averaged over images for each label rank (Figure 9's curves)."""
        return self.curves.mean(axis=0)

    def to_dict(self) -> dict:
        return {
            "completeness": self.worst_completeness, "soundness": self.worst_soundness,
            "completeness_per_label": self.completeness.mean(axis=0).tolist(),
            "soundness_per_label": self.soundness.mean(axis=0).tolist(),
            "auc_per_label": self.auc.mean(axis=0).tolist(),
            "probability_per_label": self.probability.mean(axis=0).tolist(),
            "mean_curves": self.mean_curves.tolist(), "fractions": self.fractions.tolist(),
            "sizes": self.sizes.tolist(), "eps1": self.eps1, "eps2": self.eps2, "substrate": self.substrate,
            "labels": self.label_rule, "class_subset": None if self.class_subset is None else list(self.class_subset),
            "n_images": int(len(self.labels)),
        }


def completeness_soundness(model, x, explainer_or_scores, *, labels="top2", eps1: float = 0.0, eps2: float = 0.1,
                           substrate: str = "gray", value: float = 0.0, pool=None, n_random: int = DEFAULT_N_RANDOM,
                           fractions="paper", class_subset=None, seed: int = 0, batch_size: int = 256,
                           verbose: int = 0) -> CertificateResult:
    """Completeness and soundness of the maps of ``explainer_or_scores`` (module docstring).

    Args:
        model: a Keras classifier (one input, class probabilities out).
        x: images (N, H, W, C).
        explainer_or_scores: an explainer (asked for one map per evaluated label) or maps (N, L, H, W) in the
            order of ``labels`` ((N, H, W) for one label).
        labels: "top2" (default), "top1", "all", a list of class ids or an (N, L) array (``evaluated_labels``).
        eps1, eps2: the epsilons of completeness and soundness, in [0, 1] (defaults 0 and 0.1: the appendix).
        substrate: "gray" (the constant ``value``, default 0) or "random" (``n_random`` images of ``pool`` per
            image, seeded by ``seed`` and the image's position).
        fractions: "paper" (d/28 .. d), "cifar" (0.2 d .. 0.6 d) or a list of fractions in (0, 1].
        class_subset: restrict the softmax to these class ids (None: all classes).
        batch_size: composite images per model call (an explainer runs with its own batch size).
        verbose: 1 shows a progress bar over the model calls.
    """
    x = check_images(x)
    eps1, eps2 = check_eps("eps1", eps1), check_eps("eps2", eps2)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    height, width = x.shape[1:3]
    sizes = retained_sizes(height * width, fractions)
    table, draws = substrate_table(x, substrate, value, pool, n_random, seed)
    clean = predict_probabilities(model, x, batch_size)
    subset = check_class_subset(class_subset, clean.shape[1])
    label_ids = evaluated_labels(clean, labels, class_subset=subset)
    columns = label_columns(label_ids, subset)
    maps = label_maps(explainer_or_scores, x, label_ids)
    n, n_labels = label_ids.shape
    n_sizes, n_draws = len(sizes), draws.shape[1]

    # Rows in (image, label, level, draw) order.
    shape = (n, n_labels, n_sizes, n_draws)
    image = np.broadcast_to(np.arange(n)[:, None, None, None], shape)
    scorer = RankedScorer(model, x, pixel_ranks(maps.reshape((n * n_labels,) + maps.shape[2:])), table,
                          columns=subset, batch_size=batch_size)
    values = scorer.run(
        image.ravel(),
        np.broadcast_to((np.arange(n)[:, None] * n_labels + np.arange(n_labels)[None])[..., None, None], shape).ravel(),
        np.broadcast_to(sizes[None, None, :, None], shape).ravel(),
        np.ones(image.size, bool),
        np.broadcast_to(draws[:, None, None, :], shape).ravel(),
        np.broadcast_to(columns[:, :, None, None], shape).ravel(),
        verbose=verbose)
    curves = values.reshape(shape).mean(axis=3)
    auc = curves.mean(axis=2)
    probability = np.take_along_axis(restrict(clean, subset), columns, axis=1)
    return CertificateResult(
        labels=label_ids, probability=probability, curves=curves, auc=auc,
        completeness=completeness(auc, probability, eps1), soundness=soundness(auc, probability, eps2),
        fractions=retained_fractions(fractions), sizes=sizes, eps1=eps1, eps2=eps2, substrate=substrate,
        label_rule=labels if isinstance(labels, str) else "given", class_subset=subset)


# ------------------------------------------------------------------------------------------ classes

class _Certificate(Metric):
    """Shared set-up of ``Completeness`` and ``Soundness`` (``completeness_soundness``'s options).
    ``targets`` (N,) int labels, when given, are the one evaluated label per image (instead of ``labels``).
    Both values are in the details of either class (``details["completeness"]``, ``details["soundness"]``)."""

    default_batch_size: ClassVar = 256
    measure: ClassVar[str] = ""

    def __init__(self, model, x, targets=None, *, labels="top2", eps1: float = 0.0, eps2: float = 0.1,
                 substrate: str = "gray", value: float = 0.0, pool=None, n_random: int = DEFAULT_N_RANDOM,
                 fractions="paper", class_subset=None, seed: int = 0, batch_size=None, verbose: int = 0):
        super().__init__(model, x, targets, batch_size=batch_size)
        if targets is not None:
            labels = as_targets(targets, len(self.x), int(model.outputs[0].shape[-1]))[:, None]
        check_eps("eps1", eps1), check_eps("eps2", eps2), check_choice("substrate", substrate, SUBSTRATES)
        self.substrate = substrate
        self.options = dict(labels=labels, eps1=eps1, eps2=eps2, substrate=substrate, value=value, pool=pool,
                            n_random=n_random, fractions=fractions, class_subset=class_subset, seed=seed,
                            verbose=verbose)

    @property
    def name(self) -> str:
        return f"{self.measure} ({'gray' if self.substrate == 'gray' else 'random image'})"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        result = completeness_soundness(self.model, self.x, explainer_or_scores, batch_size=self.batch_size,
                                        **self.options)
        return MetricResult(self.name, getattr(result, f"worst_{self.measure}"), result.to_dict(), result=result)


class Completeness(_Certificate):
    """Worst-case completeness (Gupta et al. 2022, eq. 1): the mean over images of min over the evaluated
    labels of min(1, max(eps1, g_AUC) / f(x, a)); higher is better. Options as ``completeness_soundness``."""

    column: ClassVar = Column("number", True, "worst-case completeness: min(1, max(eps1, AUC) / f(x, a)), "
                                              "min over the evaluated labels, mean over images")
    measure = "completeness"


class Soundness(_Certificate):
    """Worst-case soundness (Gupta et al. 2022, Def. 3.7): the mean over images of min over the evaluated
    labels of min(1, max(eps2, f(x, a)) / g_AUC); higher is better. Options as ``completeness_soundness``."""

    column: ClassVar = Column("number", True, "worst-case soundness: min(1, max(eps2, f(x, a)) / AUC), "
                                              "min over the evaluated labels, mean over images")
    measure = "soundness"
