"""Comparison methods of the four papers, registered in the one registry (eval.registry; baselines.methods).

    from eval import registry
    explainer = registry.get("integrated_gradients", model, steps=32, output="logit")
    scores = explainer.explain(x, targets=None, batch_size=64)   # (N, H, W) / (N, L) / (N, d)

Every method follows the contract of eval.protocol (see baselines.base for the shared behaviour: inputs,
targets, batch_size, progress bar, output="probability" | "logit", select, export, get_config): the
gradient family (gradient, saliency, gradient_input, integrated_gradients, smoothgrad, vargrad,
guided_backprop), Grad-CAM (gradcam, guided_gradcam), occlusion, the controls (random,
centered_gaussian), the perturbation methods (rise, lime, kernel_shap, meaningful_perturbation, infd) and
the amortised explainers (l2x, vibi, cxplain: keras models trained first with ``fit``; their class
attribute ``requires_fit`` is True, see baselines.amortised). Short aliases used by the papers' tables
("grad", "gi", "ig", "mp") resolve too. ``baselines.names()`` / ``baselines.get()`` are deprecated
aliases of the registry's (the README once showed them).
"""
from __future__ import annotations

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
from eval import registry


def names() -> list[str]:
    """Deprecated (the README once showed it): ``eval.registry.names("baselines")``."""
    return registry.names("baselines")


def get(name: str, model, **hyper) -> Baseline:
    """Deprecated (the README once showed it): ``eval.registry.get(name, model, **hyper)``."""
    return registry.get(name, model, **hyper)


__all__ = [
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
    "names",
]
