"""MEED behind the method registry protocol, so that ``python -m eval.benchmark --methods meed`` resolves it.

Like ``baselines``, this module offers ``names()``, ``hyperparameters(name)`` and ``get(name, model,
**hyper)``. The object ``get`` returns follows the training protocol of the amortised baselines
(baselines.amortised): ``fit_explainer(x_train, y_train=None, epochs=..., batch_size=...)`` trains it
with keras ``fit`` (MEED learns from M(x); the labels are ignored), then ``explain(x)`` /
``select(x, k)`` follow the Explainer protocol. The MEED model itself is built by ``meed.builder.build``
from a preset: ``preset`` names one of ``meed.PRESETS``, or, when omitted, the preset named after
``dataset`` (the benchmark passes its dataset name).
"""
from __future__ import annotations

import inspect
from typing import ClassVar

from kernels.validation import check_choice, check_int
from meed import presets
from meed.builder import build
from meed.training import epoch_batches


class MEEDExplainer:
    """A MEED model for ``model`` built from a preset, trainable with ``fit_explainer``.

    Args:
        model: the black box.
        preset: a name of ``meed.PRESETS``; default: the preset called ``dataset``.
        dataset: the dataset the benchmark runs on (used to pick the preset).
        k: features to select (default: the preset's k).
        seed: initial weights and the Gumbel / SWD noise (meed.build) and the batch order.
        legacy, ablation: as ``meed.build`` (the released code's quirks; "no-output" | "no-ail" | "no-prior").
        batch_size, epochs: defaults of ``fit_explainer`` (the preset's).
        verbose: keras ``fit`` verbosity.
    """

    name: ClassVar[str] = "meed"
    trainable_explainer: ClassVar[bool] = True
    uses_targets: ClassVar[bool] = False

    def __init__(self, model, *, preset: str | None = None, dataset: str | None = None, k: int | None = None,
                 seed: int = 0, legacy: bool = False, ablation: str | None = None, batch_size: int | None = None,
                 epochs: int | None = None, verbose: int = 1):
        if preset is None:
            if dataset is None:
                raise ValueError(f"preset: expected one of {sorted(presets.PRESETS)} (or a dataset with a preset), "
                                 f"got None")
            preset = dataset
        overrides = {} if k is None else {"k": check_int("k", k, minimum=1)}
        self.preset = presets.get(preset, **overrides)
        self.seed = check_int("seed", seed, minimum=0)
        self.batch_size = self.preset.batch_size if batch_size is None else check_int("batch_size", batch_size,
                                                                                       minimum=1)
        self.epochs = self.preset.epochs if epochs is None else check_int("epochs", epochs, minimum=1)
        self.verbose = check_int("verbose", int(verbose), minimum=0)
        self.model = build(self.preset, model, legacy=legacy, ablation=ablation, seed=self.seed)
        self.blackbox = model
        self.k = self.model.k
        self.hyper = {"preset": self.preset.name, "k": self.k, "seed": self.seed, "legacy": bool(legacy),
                      "ablation": ablation}

    def fit_explainer(self, x, y=None, *, epochs: int | None = None, batch_size: int | None = None,
                      validation_data=None, callbacks=None, verbose: int | None = None):
        """Train with ``fit`` on seeded batches of ``x`` (``y`` is ignored: MEED learns M(x)); returns the History.

        ``validation_data`` is x_val (or (x_val, y_val)): the validation FS-M / FU-M of MEED's test_step.
        """
        epochs = self.epochs if epochs is None else check_int("epochs", epochs, minimum=1)
        batch_size = self.batch_size if batch_size is None else check_int("batch_size", batch_size, minimum=1)
        x = self.model._check_x(x)
        if isinstance(validation_data, (tuple, list)):
            validation_data = validation_data[0]
        return self.model.fit(epoch_batches(x, batch_size, self.seed, 0, epochs), epochs=epochs,
                              steps_per_epoch=len(x) // batch_size, validation_data=validation_data,
                              callbacks=callbacks, verbose=self.verbose if verbose is None else verbose)

    def explain(self, x, targets=None, batch_size: int | None = None):
        """MEED's explainer logits per feature (targets: see ``MEED.explain``)."""
        return self.model.explain(x, targets, batch_size)

    def select(self, x, k: int | None = None, batch_size: int | None = None):
        """Top-k binary masks (k defaults to the preset's)."""
        return self.model.select(x, k, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"MEEDExplainer({self.blackbox.name!r}, {self.hyper})"


_METHODS = {MEEDExplainer.name: MEEDExplainer}


def names() -> list[str]:
    """The method names this package registers: ["meed"]."""
    return list(_METHODS)


def hyperparameters(name: str) -> list[str]:
    """Keyword arguments of the method ``name``."""
    cls = _METHODS[check_choice("name", name, _METHODS)]
    return [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind == p.KEYWORD_ONLY]


def get(name: str, model, **hyper) -> MEEDExplainer:
    """The method ``name`` ("meed") for the black box ``model``; unknown hyperparameters raise TypeError."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a method name (str), got {name!r}")
    key = check_choice("name", name.strip().lower(), _METHODS)
    unknown = sorted(set(hyper) - set(hyperparameters(key)))
    if unknown:
        raise TypeError(f"{key}: unknown hyperparameter(s) {unknown}; accepted: {sorted(hyperparameters(key))}")
    return _METHODS[key](model, **hyper)
