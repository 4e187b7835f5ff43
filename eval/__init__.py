"""The shared evaluation suite: the Explainer protocol, MEED's metrics, reports and figures.

Metrics (MEED, Liang et al., KDD 2020, Section 4): FS-M / FU-M (``model_fidelity``), FS-A / FU-A
(``fidelity``), SEN (``max_sensitivity``, Yeh et al. 2019) and TPS (``time_per_sample``). They accept
scores, binary masks or Explainer objects as documented in ``eval.protocol``. IBA's metrics (Schulz et al.,
ICLR 2020, Section 4): ``degradation`` (MoRF / LeRF area), ``sensitivity_n``, ``bbox_ratio`` and
``cascading_randomization`` (with ``ssim``). Aggregation over runs (``summarize``, ``summary_table``,
``load_reports``, ``DEFAULT_METRICS``) lives in ``eval.summary``, imported on first use so that
``python -m eval.summary`` runs its CLI without importing the module twice.
"""
from eval.cascading import CascadingResult, cascading_randomization, normalize_heatmaps, ssim
from eval.degradation import DegradationResult, degradation
from eval.fidelity import FIDELITY_KEYS, FidelityResult, fidelity, model_fidelity
from eval.figures import heatmap_overlay, masked_grid, plot_degradation
from eval.localization import bbox_ratio, bbox_ratio_summary
from eval.masking_ops import apply_mask, check_mask
from eval.protocol import (
    Explainer,
    as_inputs,
    as_scores,
    as_targets,
    predict_probabilities,
    score_shape,
    target_probability,
)
from eval.report import (
    PERCENT_COLUMNS,
    atomic_write,
    environment,
    markdown_table,
    percent,
    to_jsonable,
    write_report,
)
from eval.sanity import (
    data_randomization,
    expected_random_cosine,
    mask_cosine_similarity,
    model_randomization,
    sanity_report,
)
from eval.sensitivity import SensitivityResult, max_sensitivity
from eval.sensitivity_n import SensitivityNResult, sensitivity_n
from eval.timing import time_per_sample

__all__ = [
    "CascadingResult",
    "DEFAULT_METRICS",
    "DegradationResult",
    "Explainer",
    "FIDELITY_KEYS",
    "FidelityResult",
    "PERCENT_COLUMNS",
    "SensitivityNResult",
    "SensitivityResult",
    "apply_mask",
    "as_inputs",
    "as_scores",
    "as_targets",
    "atomic_write",
    "bbox_ratio",
    "bbox_ratio_summary",
    "cascading_randomization",
    "check_mask",
    "data_randomization",
    "degradation",
    "environment",
    "expected_random_cosine",
    "fidelity",
    "heatmap_overlay",
    "load_reports",
    "markdown_table",
    "mask_cosine_similarity",
    "masked_grid",
    "max_sensitivity",
    "model_fidelity",
    "model_randomization",
    "normalize_heatmaps",
    "percent",
    "plot_degradation",
    "predict_probabilities",
    "sanity_report",
    "sensitivity_n",
    "score_shape",
    "ssim",
    "summarize",
    "summary_table",
    "target_probability",
    "time_per_sample",
    "to_jsonable",
    "write_report",
]

_LAZY = {"DEFAULT_METRICS", "load_reports", "summarize", "summary_table"}


def __getattr__(name):
    if name in _LAZY:
        import eval.summary as summary  # noqa: PLC0415 (lazy: see the module docstring)
        return getattr(summary, name)
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
