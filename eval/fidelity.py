"""MEED's fidelity metrics FS-M, FU-M, FS-A and FU-A (Liang et al., KDD 2020, Section 4.0.2).

Given binary masks z (the top-k features of an explanation), the selected features are x~_S = x * z and
the unselected ones x~_U = x * (1 - z), masked features set to 0 (eval.imputation.zero_impute). Each
metric is the share of test samples whose predicted class, computed from masked inputs, equals the
black box's class on the clean input y = argmax M(x) (the paper's ACC@1 of "consistency with y"):

- FS-M / FU-M: the black box M itself on x~_S / x~_U. M never saw masked inputs in training, so the
  paper adds
- FS-A / FU-A: fresh approximators A'_S / A'_U with M's architecture, trained on the masked
  **training** set to reproduce M's **soft** predictions on the clean training inputs, then scored on
  the masked test set. The original code trains them for 12 epochs with Adadelta (images) or 5 epochs
  with RMSprop (IMDB), batch 32 (reference/meed_original_code.md, "Evaluation"; MEED Appendix B.1).

High FS and low FU mean the selected features carry the model's decision.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import keras
import numpy as np

from eval.imputation import check_mask, zero_impute
from eval.metrics import Metric, MetricResult
from eval.protocol import Selection, as_inputs, predict_probabilities, select_masks
from eval.report import COLUMNS
from kernels.seeds import seeded
from kernels.validation import check_choice, check_int

log = logging.getLogger("eval")

FIDELITY_KEYS = ("FS-M", "FU-M", "FS-A", "FU-A")


@dataclass(frozen=True, eq=False)
class FidelityResult(Mapping):
    """The four fidelities as fractions in [0, 1], plus the training time of each approximator.

    Behaves as a read-only mapping ``{"FS-M", "FU-M", "FS-A", "FU-A"} -> float`` (``dict(result)`` or
    ``result.metrics`` give the plain dict for report.json); FS-A / FU-A are absent when the
    approximators were not trained (``epochs=0``). ``train_seconds`` maps "A'_S" and "A'_U" to the
    wall-clock seconds of their ``fit``.
    """

    fs_m: float
    fu_m: float
    fs_a: float | None = None
    fu_a: float | None = None
    train_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        values = (self.fs_m, self.fu_m, self.fs_a, self.fu_a)
        return {key: value for key, value in zip(FIDELITY_KEYS, values) if value is not None}

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def __iter__(self):
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)


def _predict(model, x: np.ndarray, batch_size: int, name: str) -> np.ndarray:
    """Class probabilities of ``model`` on ``x``, checked to be one row of class scores per sample."""
    if not hasattr(model, "predict"):
        raise TypeError(f"{name}: expected a Keras model (something with .predict), got {type(model).__name__}")
    probabilities = predict_probabilities(model, x, batch_size)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(x):
        raise ValueError(
            f"{name}: expected outputs of shape ({len(x)}, n_classes) (class probabilities), "
            f"got {probabilities.shape}"
        )
    return probabilities


def _agreement(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose argmax equals ``labels`` (ACC@1 against the black box's classes)."""
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def _checked_batch(name: str, x) -> np.ndarray:
    x = as_inputs(name, x)
    if len(x) == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {x.shape}")
    return x


def _model_fidelity(blackbox, x, masks, labels, batch_size) -> dict[str, float]:
    selected = _predict(blackbox, zero_impute(x, masks), batch_size, "blackbox")
    unselected = _predict(blackbox, zero_impute(x, 1 - masks), batch_size, "blackbox")
    return {"FS-M": _agreement(selected, labels), "FU-M": _agreement(unselected, labels)}


def model_fidelity(blackbox, x, masks, *, batch_size: int = 256) -> dict[str, float]:
    """FS-M and FU-M: agreement of M(x * mask) and M(x * (1 - mask)) with M(x), as fractions.

    ``masks`` are binary with the per-sample score shape ((N, H, W) for images (N, H, W, C)), or exactly
    x's shape; ``batch_size`` bounds the prediction batches.
    """
    x = _checked_batch("x", x)
    masks = check_mask(x, masks, name="masks")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    labels = _predict(blackbox, x, batch_size, "blackbox").argmax(axis=1)
    return _model_fidelity(blackbox, x, masks, labels, batch_size)


def fidelity(blackbox, x_train, x_test, masks_train, masks_test, *, approximator_factory,
             optimizer_factory, epochs: int = 12, batch_size: int = 32, seed: int = 0, verbose: int = 0,
             predict_batch_size: int = 256) -> FidelityResult:
    """All four MEED fidelities: FS-M / FU-M on the test set and FS-A / FU-A from trained approximators.

    Args:
        blackbox: the Keras model M explained (softmax outputs).
        x_train, x_test: input batches; ``masks_train`` / ``masks_test`` their binary masks (top-k of the
            explanation, shape as for ``model_fidelity``).
        approximator_factory: ``(input_shape, n_classes) -> fresh uncompiled keras.Model`` with softmax
            outputs, e.g. ``data.models.approximator_factory(dataset)`` (M's architecture, as in MEED).
        optimizer_factory: ``() -> fresh keras optimizer`` (e.g. ``data.models.recipe(dataset).optimizer``:
            Adadelta(lr 1.0) for images, RMSprop for IMDB, as the original code).
        epochs: training epochs of A'_S and A'_U (12 for images, 5 for IMDB in the original code);
            0 skips them and returns FS-M / FU-M only, for quick runs.
        batch_size: the approximators' training batch size (32 in the original code).
        seed: seeds the approximators' initial weights, dropout and shuffling. Each approximator is
            built and trained inside ``kernels.seeds.seeded(seed)`` (the global generators seeded with
            ``seed``, the caller's restored afterwards); A'_S and A'_U therefore start from the same
            initial weights and the result does not depend on the order they are trained in.
        verbose: passed to ``model.fit`` (0 silent, 1 progress bar, 2 one line per epoch); each
            approximator's training is also announced on the "eval" logger.
        predict_batch_size: batch size of every prediction (bounded memory; does not change results).

    Returns:
        A ``FidelityResult`` (a mapping with keys FS-M, FU-M[, FS-A, FU-A], fractions in [0, 1]).
    """
    x_train = _checked_batch("x_train", x_train)
    x_test = _checked_batch("x_test", x_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_test: expected samples of the shape of x_train's {x_train.shape[1:]}, got {x_test.shape[1:]}"
        )
    masks_train = check_mask(x_train, masks_train, name="masks_train")
    masks_test = check_mask(x_test, masks_test, name="masks_test")
    epochs = check_int("epochs", epochs, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    predict_batch_size = check_int("predict_batch_size", predict_batch_size, minimum=1)
    for name, factory in (("approximator_factory", approximator_factory), ("optimizer_factory", optimizer_factory)):
        if not callable(factory):
            raise TypeError(f"{name}: expected a callable, got {factory!r}")

    labels_test = _predict(blackbox, x_test, predict_batch_size, "blackbox").argmax(axis=1)
    model_scores = _model_fidelity(blackbox, x_test, masks_test, labels_test, predict_batch_size)
    if epochs == 0:
        return FidelityResult(fs_m=model_scores["FS-M"], fu_m=model_scores["FU-M"])

    soft_targets = _predict(blackbox, x_train, predict_batch_size, "blackbox")
    scores, seconds = {}, {}
    for name, train_mask, test_mask in (("A'_S", masks_train, masks_test),
                                        ("A'_U", 1 - masks_train, 1 - masks_test)):
        scores[name], seconds[name] = _approximator_agreement(
            name, blackbox, x_train, x_test, train_mask, test_mask, soft_targets, labels_test,
            approximator_factory=approximator_factory, optimizer_factory=optimizer_factory, epochs=epochs,
            batch_size=batch_size, seed=seed, verbose=verbose, predict_batch_size=predict_batch_size)
    return FidelityResult(fs_m=model_scores["FS-M"], fu_m=model_scores["FU-M"], fs_a=scores["A'_S"],
                          fu_a=scores["A'_U"], train_seconds=seconds)


def _approximator_agreement(name, blackbox, x_train, x_test, train_mask, test_mask, soft_targets, labels_test, *,
                            approximator_factory, optimizer_factory, epochs, batch_size, seed, verbose,
                            predict_batch_size) -> tuple[float, float]:
    """(agreement of the approximator ``name`` with M on the masked test set, its training seconds)."""
    n_classes = soft_targets.shape[1]
    log.info("%s: training a post-hoc approximator on %d masked training inputs (%d epochs)", name, len(x_train),
             epochs)
    with seeded(seed):
        approximator = approximator_factory(x_train.shape[1:], n_classes)
        if not isinstance(approximator, keras.Model):
            raise TypeError(
                f"approximator_factory: expected it to return a keras.Model, got {type(approximator).__name__}"
            )
        approximator.compile(optimizer=optimizer_factory(), loss="categorical_crossentropy")
        start = time.perf_counter()
        approximator.fit(zero_impute(x_train, train_mask), soft_targets, epochs=epochs, batch_size=batch_size,
                         shuffle=True, verbose=verbose)
        seconds = time.perf_counter() - start
    predictions = _predict(approximator, zero_impute(x_test, test_mask), predict_batch_size,
                           "approximator_factory's model")
    if predictions.shape[1] != n_classes:
        raise ValueError(
            f"approximator_factory: expected a model with {n_classes} outputs (the black box's classes), "
            f"got {predictions.shape[1]}"
        )
    return _agreement(predictions, labels_test), seconds


# --------------------------------------------------------------------------------------- classes

PARTS = ("selected", "unselected")


class ModelFidelity(Metric):
    """FS-M (``part="selected"``) or FU-M (``"unselected"``): the black box on the zero-imputed top-k features.

    ``evaluate(explainer | scores | Selection)``: the masks are the explainer's ``select(x, k)``, the
    top-k of given scores, or the given Selection's. The reference class is the model's prediction on
    the clean inputs (the paper's ACC@1 of consistency with y); ``targets`` is not used.
    """

    column: ClassVar = COLUMNS["FS-M"]

    def __init__(self, model, x, targets=None, *, k=None, part: str = "selected", batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.k = k
        self.part = check_choice("part", part, PARTS)
        self._labels = None

    @property
    def name(self) -> str:
        return "FS-M" if self.part == "selected" else "FU-M"

    @property
    def higher_is_better(self) -> bool:
        return self.part == "selected"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        masks = check_mask(self.x, select_masks(explainer_or_scores, self.x, self.k, batch_size=self.batch_size),
                           name="masks")
        if self._labels is None:
            self._labels = _predict(self.model, self.x, self.batch_size, "model").argmax(axis=1)
        kept = masks if self.part == "selected" else 1 - masks
        predictions = _predict(self.model, zero_impute(self.x, kept), self.batch_size, "model")
        return MetricResult(self.name, _agreement(predictions, self._labels), {"n": int(len(self.x))})


class ApproximatorFidelity(Metric):
    """FS-A (``part="selected"``) or FU-A: a fresh approximator trained on the masked training inputs.

    The approximator (``approximator_factory(input_shape, n_classes)``, the black box's architecture in
    MEED) learns M's soft predictions on the clean training inputs from their masked version, for
    ``epochs`` with ``optimizer_factory()`` and batch ``train_batch_size``, built and trained inside
    ``seeded(seed)``; the value is its agreement with M's class on the masked test inputs.
    ``evaluate(explainer | Selection(test=..., train=...))``: the masks of both sets are needed.
    """

    column: ClassVar = COLUMNS["FS-A"]
    requires: ClassVar = ("x_train",)

    def __init__(self, model, x, targets=None, *, x_train, k=None, part: str = "selected", approximator_factory,
                 optimizer_factory, epochs: int = 12, train_batch_size: int = 32, seed: int = 0, verbose: int = 0,
                 batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.x_train = _checked_batch("x_train", x_train)
        if self.x_train.shape[1:] != self.x.shape[1:]:
            raise ValueError(f"x_train: expected samples of the shape of x {self.x.shape[1:]}, "
                             f"got {self.x_train.shape[1:]}")
        self.k = k
        self.part = check_choice("part", part, PARTS)
        self.epochs = check_int("epochs", epochs, minimum=1)
        self.train_batch_size = check_int("train_batch_size", train_batch_size, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.verbose = verbose
        self.approximator_factory, self.optimizer_factory = approximator_factory, optimizer_factory

    @property
    def name(self) -> str:
        return "FS-A" if self.part == "selected" else "FU-A"

    @property
    def higher_is_better(self) -> bool:
        return self.part == "selected"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        if isinstance(explainer_or_scores, Selection):
            if explainer_or_scores.train is None:
                raise ValueError(f"explainer_or_scores: {self.name} trains on masked training inputs; the "
                                 "Selection needs the masks of x_train too (train=...)")
            test, train = explainer_or_scores.test, explainer_or_scores.train
        elif hasattr(explainer_or_scores, "select") or hasattr(explainer_or_scores, "explain"):
            test = select_masks(explainer_or_scores, self.x, self.k, batch_size=self.batch_size)
            train = select_masks(explainer_or_scores, self.x_train, self.k, batch_size=self.batch_size)
        else:
            raise TypeError(f"explainer_or_scores: {self.name} needs the masks of x_train too: pass the explainer "
                            f"or a Selection(test=..., train=...), got {type(explainer_or_scores).__name__}")
        test = check_mask(self.x, test, name="masks_test")
        train = check_mask(self.x_train, train, name="masks_train")
        if self.part == "unselected":
            test, train = 1 - test, 1 - train
        labels = _predict(self.model, self.x, self.batch_size, "model").argmax(axis=1)
        soft = _predict(self.model, self.x_train, self.batch_size, "model")
        value, seconds = _approximator_agreement(
            "A'_S" if self.part == "selected" else "A'_U", self.model, self.x_train, self.x, train, test, soft, labels,
            approximator_factory=self.approximator_factory, optimizer_factory=self.optimizer_factory,
            epochs=self.epochs, batch_size=self.train_batch_size, seed=self.seed, verbose=self.verbose,
            predict_batch_size=self.batch_size)
        return MetricResult(self.name, value, {"train_seconds": seconds, "epochs": self.epochs,
                                               "n_train": int(len(self.x_train))})
