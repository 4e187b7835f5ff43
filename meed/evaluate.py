"""Test-split evaluation of a trained MEED explainer: the paper's Table 1-5 columns.

The metrics are those of ``eval.suites.MEEDSuite``, the suite that scores every method of
``python -m eval.benchmark``: FS-M / FU-M / FS-A / FU-A (post-hoc approximators with the black box's
architecture, trained on the masked training set), SEN (50 uniform perturbations of radius 0.2 on the
explainer's logits), TPS. This module adds MEED's settings: the preset's approximator optimiser, epochs
and batch size, and the legacy flags that select the suite's options reproducing the released code's
SEN (last perturbation only, y not recomputed) and TPS (timing the black box's prediction).
"""
from __future__ import annotations

from data.models import approximator_factory, default_recipe
from eval.suites import MEEDSuite


def suite(model, dataset, preset, *, eval_epochs: int | None = None, seed: int = 0, sen_samples: int | None = None,
          x_train=None, verbose: int = 0) -> MEEDSuite:
    """The MEED suite for ``model`` (a trained meed.MEED) on ``dataset``'s test split with the preset's
    evaluation settings; ``x_train`` defaults to the whole training split (the post-hoc approximators'
    inputs); ``sen_samples`` limits SEN to the first test samples. Datasets with known relevant features
    (``dataset.ground_truth``) also get "TPR" and "TPR chance"."""
    info = getattr(model.blackbox, "blackbox_info", None) or {}
    recipe = info.get("recipe") or default_recipe(dataset.name)
    legacy = model.legacy
    return MEEDSuite(
        model.blackbox, dataset.x_train if x_train is None else x_train, dataset.x_test, k=model.k,
        approximator_factory=approximator_factory(recipe), optimizer_factory=preset.make_optimizer,
        eval_epochs=preset.eval_epochs if eval_epochs is None else eval_epochs,
        eval_batch_size=preset.eval_batch_size, seed=seed, sen_samples=sen_samples,
        sen_form="last" if legacy.sen_reset else "max", sen_clean_conditioning=legacy.sen_reset,
        tps="blackbox" if legacy.tps_blackbox else "explainer",
        ground_truth=None if dataset.ground_truth is None else dataset.ground_truth["test"], verbose=verbose)
