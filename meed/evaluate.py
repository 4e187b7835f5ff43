"""Test-split evaluation of a trained MEED explainer: the paper's Table 1-5 columns.

FS-M / FU-M / FS-A / FU-A come from ``eval.fidelity`` (post-hoc approximators with the black box's
architecture, trained on the masked training set), SEN from ``eval.max_sensitivity`` (50 uniform
perturbations of radius 0.2 on the explainer's logits), TPS from ``eval.time_per_sample``. The legacy
flags reproduce the released code's SEN (last perturbation only, y not recomputed) and TPS (timing the
black box's prediction instead of the explainer).
"""
from __future__ import annotations

import time

import numpy as np

from data.models import approximator_factory
from eval.fidelity import fidelity
from eval.groundtruth import chance_true_positive_rate, true_positive_rate
from eval.sensitivity import max_sensitivity
from eval.timing import time_per_sample


def evaluate(model, dataset, preset, *, eval_epochs: int | None = None, seed: int = 0,
             sen_samples: int | None = None, x_train=None, verbose: int = 0) -> tuple[dict, dict, dict]:
    """Return (metrics, timings, masks) for ``model`` on ``dataset``'s test split.

    Datasets with known relevant features (``dataset.ground_truth``) also get "TPR", the share of them
    the top-k masks keep, and "TPR chance" (k / d).

    ``x_train`` defaults to the dataset's whole training split (the inputs of the post-hoc
    approximators); ``sen_samples`` limits SEN to the first test samples (default: all).
    """
    x_train = dataset.x_train if x_train is None else x_train
    x_test = dataset.x_test
    eval_epochs = preset.eval_epochs if eval_epochs is None else eval_epochs
    timings = {}
    start = time.perf_counter()
    masks_train, masks_test = model.select(x_train), model.select(x_test)
    timings["select_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    scores = fidelity(model.blackbox, x_train, x_test, masks_train, masks_test,
                      approximator_factory=approximator_factory(dataset.name),
                      optimizer_factory=preset.make_optimizer, epochs=eval_epochs,
                      batch_size=preset.eval_batch_size, seed=seed, verbose=verbose)
    timings["fidelity_seconds"] = time.perf_counter() - start
    metrics = dict(scores)

    if dataset.ground_truth is not None:  # synthetic data: the share of truly relevant features selected
        metrics["TPR"] = true_positive_rate(masks_test, dataset.ground_truth["test"])[0]
        metrics["TPR chance"] = chance_true_positive_rate(model.k, int(np.prod(masks_test.shape[1:])))

    metrics["SEN"] = None
    if x_test.dtype.kind == "f":  # no SEN on word ids (the paper reports none for IMDB)
        x_sen = x_test if sen_samples is None else x_test[:sen_samples]
        targets = model.blackbox.predict(x_sen, verbose=0) if model.legacy.sen_reset else None
        start = time.perf_counter()
        metrics["SEN"] = max_sensitivity(model, x_sen, seed=seed, legacy=model.legacy.sen_reset,
                                         targets=targets).mean
        timings["sen_seconds"] = time.perf_counter() - start

    if model.legacy.tps_blackbox:
        timed = lambda xb: model.blackbox.predict(xb, verbose=0)  # noqa: E731  (the released code's TPS)
    else:
        timed = model.explainer_logits
    metrics["TPS"] = time_per_sample(timed, x_test, batch_size=256)
    return metrics, timings, {"train": masks_train, "test": masks_test}
