"""Comparison methods of the four papers behind one registry.

    import baselines
    explainer = baselines.get("integrated_gradients", model, steps=32, output="logit")
    scores = explainer.explain(x, targets=None, batch_size=64)   # (N, H, W) / (N, L) / (N, d)

Every method follows the Explainer protocol of eval.protocol (see baselines.base for the shared
behaviour: inputs, targets, batch_size, progress bar, output="probability" | "logit"). Implemented so
far: the gradient family (gradient, saliency, gradient_input, integrated_gradients, smoothgrad, vargrad,
guided_backprop), Grad-CAM (gradcam, guided_gradcam), occlusion, the controls (random,
centered_gaussian), the perturbation methods (rise, lime, kernel_shap, meaningful_perturbation, infd) and
the amortised explainers (l2x, vibi, cxplain: keras models that are trained
first with ``fit_explainer``; their class attribute ``trainable_explainer`` is True, see
baselines.amortised). ``names()`` lists them; short aliases used by the papers' tables ("grad", "gi",
"ig") resolve too.
"""
from __future__ import annotations

import inspect

from baselines.amortised import CXPlain, L2X, VIBI
from baselines.base import Baseline
from baselines.cam import GradCAM, GuidedGradCAM
from baselines.controls import CenteredGaussian, Random
from baselines.gradients import (
    Gradient,
    GradientInput,
    GuidedBackprop,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    VarGrad,
)
from baselines.infd import INFD
from baselines.meaningful import MeaningfulPerturbation
from baselines.perturbation import Occlusion
from baselines.rise import RISE
from baselines.surrogates import LIME, KernelSHAP
from kernels.validation import check_choice

_METHODS: dict[str, type[Baseline]] = {
    cls.name: cls
    for cls in (Gradient, Saliency, GradientInput, IntegratedGradients, SmoothGrad, VarGrad, GuidedBackprop,
                GradCAM, GuidedGradCAM, Occlusion, RISE, LIME, KernelSHAP, MeaningfulPerturbation, INFD, Random,
                CenteredGaussian, L2X, VIBI, CXPlain)
}
# Names the papers' tables use (MEED: "Grad", "GI").
ALIASES = {"grad": "gradient", "gi": "gradient_input", "ig": "integrated_gradients"}


def names() -> list[str]:
    """The registered method names (aliases excluded), in registry order."""
    return list(_METHODS)


def get(name: str, model, **hyper) -> Baseline:
    """The baseline ``name`` for ``model`` with hyperparameters ``hyper`` (see each class for them).

    Unknown names raise ValueError listing the known ones (with close matches); unknown hyperparameters
    raise TypeError listing the accepted ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a method name (str), got {name!r}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    cls = _METHODS.get(key)
    if cls is None:
        check_choice("name", name, list(_METHODS) + list(ALIASES))
    accepted = hyperparameters(key)
    unknown = sorted(set(hyper) - set(accepted))
    if unknown:
        raise TypeError(f"{key}: unknown hyperparameter(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(model, **hyper)


def hyperparameters(name: str) -> list[str]:
    """Keyword arguments the method ``name`` accepts (its own and the shared ones)."""
    cls = _METHODS[check_choice("name", ALIASES.get(name, name), _METHODS)]
    accepted = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        for parameter in inspect.signature(klass.__init__).parameters.values():
            if parameter.kind == parameter.KEYWORD_ONLY and parameter.name not in accepted:
                accepted.append(parameter.name)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(klass.__init__).parameters.values()):
            break
    return accepted


__all__ = [
    "ALIASES",
    "Baseline",
    "CXPlain",
    "CenteredGaussian",
    "GradCAM",
    "Gradient",
    "GradientInput",
    "GuidedBackprop",
    "GuidedGradCAM",
    "INFD",
    "IntegratedGradients",
    "KernelSHAP",
    "L2X",
    "LIME",
    "MeaningfulPerturbation",
    "Occlusion",
    "RISE",
    "Random",
    "Saliency",
    "SmoothGrad",
    "VIBI",
    "VarGrad",
    "get",
    "hyperparameters",
    "names",
]
