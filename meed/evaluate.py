"""Test-split evaluation of a trained MEED explainer: the paper's Table 1-5 columns.

The metrics are computed by ``eval.explainer_metrics.evaluate_explainer``, the code that scores every
method of ``python -m eval.benchmark``: FS-M / FU-M / FS-A / FU-A from ``eval.fidelity`` (post-hoc
approximators with the black box's architecture, trained on the masked training set), SEN from
``eval.max_sensitivity`` (50 uniform perturbations of radius 0.2 on the explainer's logits), TPS from
``eval.time_per_sample``. This module adds MEED's settings: the preset's approximator optimiser,
epochs and batch size, and the legacy flags that reproduce the released code's SEN (last perturbation
only, y not recomputed) and TPS (timing the black box's prediction instead of the explainer).
"""
from __future__ import annotations

from data.models import approximator_factory
from eval.explainer_metrics import evaluate_explainer


def evaluate(model, dataset, preset, *, eval_epochs: int | None = None, seed: int = 0,
             sen_samples: int | None = None, x_train=None, verbose: int = 0) -> tuple[dict, dict, dict]:
    """Return (metrics, timings, masks) for ``model`` on ``dataset``'s test split.

    Datasets with known relevant features (``dataset.ground_truth``) also get "TPR", the share of them
    the top-k masks keep, and "TPR chance" (k / d).

    ``x_train`` defaults to the dataset's whole training split (the inputs of the post-hoc
    approximators); ``sen_samples`` limits SEN to the first test samples (default: all).
    """
    if model.legacy.tps_blackbox:
        timed = lambda xb: model.blackbox.predict(xb, verbose=0)  # noqa: E731  (the released code's TPS)
    else:
        timed = model.explainer_logits
    return evaluate_explainer(
        model, model.blackbox, dataset.x_train if x_train is None else x_train, dataset.x_test, k=model.k,
        approximator_factory=approximator_factory(dataset.name), optimizer_factory=preset.make_optimizer,
        eval_epochs=preset.eval_epochs if eval_epochs is None else eval_epochs,
        eval_batch_size=preset.eval_batch_size, seed=seed, sen_samples=sen_samples,
        sen_legacy=model.legacy.sen_reset, sen_clean_targets=model.legacy.sen_reset,
        ground_truth=None if dataset.ground_truth is None else dataset.ground_truth["test"], timed=timed,
        verbose=verbose)
