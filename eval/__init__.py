"""The shared evaluation suite: the Explainer protocol, MEED's metrics, reports and figures.

Metrics (MEED, Liang et al., KDD 2020, Section 4): FS-M / FU-M (``model_fidelity``), FS-A / FU-A
(``fidelity``), SEN (``max_sensitivity``, Yeh et al. 2019) and TPS (``time_per_sample``). They accept
scores, binary masks or Explainer objects as documented in ``eval.protocol``.
"""
from eval.fidelity import FIDELITY_KEYS, FidelityResult, fidelity, model_fidelity
from eval.figures import heatmap_overlay, masked_grid
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
from eval.summary import DEFAULT_METRICS, load_reports, summarize, summary_table
from eval.timing import time_per_sample

__all__ = [
    "DEFAULT_METRICS",
    "Explainer",
    "FIDELITY_KEYS",
    "FidelityResult",
    "PERCENT_COLUMNS",
    "SensitivityResult",
    "apply_mask",
    "as_inputs",
    "as_scores",
    "as_targets",
    "atomic_write",
    "check_mask",
    "data_randomization",
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
    "percent",
    "predict_probabilities",
    "sanity_report",
    "score_shape",
    "summarize",
    "summary_table",
    "target_probability",
    "time_per_sample",
    "to_jsonable",
    "write_report",
]
