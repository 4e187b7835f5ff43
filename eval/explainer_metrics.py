"""All columns of MEED's result tables for one explainer: FS-M, FU-M, FS-A, FU-A, SEN, TPS (and TPR).

MEED (Liang et al., KDD 2020, Section 4.0.2, Tables 1-5) evaluates every method the same way: the top-k
binary masks of its explanation on the training and test splits give FS-M / FU-M (the black box on the
masked test inputs) and FS-A / FU-A (post-hoc approximators trained on the masked training inputs,
``eval.fidelity``); SEN is the max-sensitivity of its scores (``eval.max_sensitivity``) and TPS the
explanation time per sample (``eval.time_per_sample``). ``evaluate_explainer`` runs them in that order
for any Explainer; ``meed.evaluate`` and ``python -m eval.benchmark`` both use it, so MEED and the
baselines are scored by exactly the same code. Synthetic data with known relevant features also gets
the true-positive rate of the masks (``eval.groundtruth``).
"""
from __future__ import annotations

import time

import numpy as np

from eval.fidelity import fidelity
from eval.groundtruth import chance_true_positive_rate, true_positive_rate
from eval.protocol import as_inputs, as_scores, predict_probabilities
from eval.sensitivity import max_sensitivity
from eval.timing import time_per_sample
from kernels.topk import topk_mask
from kernels.validation import check_int


def select_masks(explainer, x, k: int | None, *, batch_size: int = 256) -> np.ndarray:
    """Top-k binary masks of ``explainer`` on ``x``: its own ``select(x, k)`` when it has one (amortised
    explainers pick on their own grid), else the top-k of its ``explain`` scores (kernels.topk_mask)."""
    if hasattr(explainer, "select"):
        return np.asarray(explainer.select(x, k, batch_size=batch_size))
    if k is None:
        raise ValueError("k: expected the number of features to select, got None (the explainer has no select)")
    return topk_mask(as_scores(explainer, x, batch_size=batch_size), k).numpy()


def evaluate_explainer(explainer, blackbox, x_train, x_test, *, k: int | None, approximator_factory,
                       optimizer_factory, eval_epochs: int = 12, eval_batch_size: int = 32, seed: int = 0,
                       sen_samples: int | None = None, sen_legacy: bool = False, sen_clean_targets: bool = False,
                       ground_truth=None, timed=None, batch_size: int = 256,
                       verbose: int = 0) -> tuple[dict, dict, dict]:
    """Return (metrics, timings, masks) of ``explainer`` for ``blackbox`` (fractions; TPS in seconds).

    Args:
        explainer: an Explainer (``explain(x, targets, batch_size)``; ``select(x, k, batch_size=...)``
            is used for the masks when present).
        x_train, x_test: the inputs whose masks train the post-hoc approximators / are scored.
        k: features per mask (None: the explainer's own default, for explainers with ``select``).
        approximator_factory, optimizer_factory, eval_epochs, eval_batch_size: see ``eval.fidelity``
            (eval_epochs = 0 skips FS-A / FU-A).
        seed: the approximators' and SEN's randomness.
        sen_samples: SEN on the first test samples only (default all); no SEN on integer token ids
            (the paper reports none for IMDB).
        sen_legacy: the released MEED code's SEN (last perturbation only).
        sen_clean_targets: explain every perturbation for the clean input's probabilities M(x) (the
            released MEED code does not recompute y); default: each input's own prediction.
        ground_truth: (N_test, *score shape) relevant-feature marks of synthetic data -> "TPR", "TPR chance".
        timed: what TPS times (default the explainer's ``explain``), e.g. the black box's predict to
            reproduce the released MEED code.
        batch_size: of mask selection, SEN and TPS.
    """
    x_train, x_test = as_inputs("x_train", x_train), as_inputs("x_test", x_test)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    timings = {}
    start = time.perf_counter()
    masks_train = select_masks(explainer, x_train, k, batch_size=batch_size)
    masks_test = select_masks(explainer, x_test, k, batch_size=batch_size)
    timings["select_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    scores = fidelity(blackbox, x_train, x_test, masks_train, masks_test, approximator_factory=approximator_factory,
                      optimizer_factory=optimizer_factory, epochs=eval_epochs, batch_size=eval_batch_size,
                      seed=seed, verbose=verbose)
    timings["fidelity_seconds"] = time.perf_counter() - start
    metrics = dict(scores)

    if ground_truth is not None:  # synthetic data: the share of truly relevant features selected
        metrics["TPR"] = true_positive_rate(masks_test, ground_truth)[0]
        n_features = int(np.prod(masks_test.shape[1:]))
        metrics["TPR chance"] = chance_true_positive_rate(int(masks_test.reshape(len(masks_test), -1)[0].sum()),
                                                          n_features)

    metrics["SEN"] = None
    if x_test.dtype.kind == "f":
        x_sen = x_test if sen_samples is None else x_test[:check_int("sen_samples", sen_samples, minimum=1)]
        targets = predict_probabilities(blackbox, x_sen, batch_size) if sen_clean_targets else None
        start = time.perf_counter()
        metrics["SEN"] = max_sensitivity(explainer, x_sen, seed=seed, legacy=sen_legacy, targets=targets,
                                         batch_size=batch_size).mean
        timings["sen_seconds"] = time.perf_counter() - start

    metrics["TPS"] = time_per_sample(explainer if timed is None else timed, x_test, batch_size=batch_size)
    return metrics, timings, {"train": masks_train, "test": masks_test}
