"""The shared platform below the paper packages: the explainer contract, the registry, the run layer,
the report schema, the metrics (functions and classes, in suites per paper), training plumbing, figures.

- Contract: ``eval.protocol`` (explain / select / fit / export / get_config; inputs, targets, outputs).
- Registry: ``eval.registry`` (every method by name; ``python -m eval.registry``).
- Run layer: ``eval.run`` (shared flags, one error path, run directories, phases); reports:
  ``eval.report`` (one schema), ``eval.summary`` (mean +- std over any runs).
- Metrics: MEED (Liang et al., KDD 2020): FS-M / FU-M (``model_fidelity``), FS-A / FU-A (``fidelity``),
  SEN (``max_sensitivity``), TPS (``time_per_sample``), sanity (model / data randomisation); IBA (Schulz
  et al., ICLR 2020): ``degradation``, ``sensitivity_n``, ``bbox_ratio``, ``cascading_randomization``;
  VP: ``consistency``, ``local_lipschitz``, ``perturbation_curves``; masking (Gupta et al., NeurIPS 2022):
  ``completeness_soundness``, ``deletion``, ``insertion``, ``saliency_metric``.
  Each also as a class (``eval.metrics``: ``Metric(model, x, targets).evaluate(explainer_or_scores)``),
  grouped in suites per paper (``eval.suites``) that ``eval.harness`` runs for several methods.
- Training plumbing: ``eval.training`` (seeded epoch batches, checkpoints and exact resume, the loss
  convention under tf.distribute).

Names are imported on first use (data.lazy): importing ``eval`` loads nothing heavy.
"""
from data.lazy import lazy_exports

_EXPORTS = {
    "CascadingResult": "eval.cascading", "cascading_randomization": "eval.cascading",
    "normalize_heatmaps": "eval.cascading", "ssim": "eval.cascading",
    "DegradationResult": "eval.degradation", "degradation": "eval.degradation",
    "FIDELITY_KEYS": "eval.fidelity", "FidelityResult": "eval.fidelity", "fidelity": "eval.fidelity",
    "model_fidelity": "eval.fidelity",
    "heatmap_overlay": "eval.figures", "masked_grid": "eval.figures", "plot_degradation": "eval.figures",
    "bbox_ratio": "eval.localization", "bbox_ratio_summary": "eval.localization",
    "check_mask": "eval.imputation", "zero_impute": "eval.imputation",
    "Explainer": "eval.protocol", "OUTPUTS": "eval.protocol", "Selection": "eval.protocol",
    "as_inputs": "eval.protocol", "as_scores": "eval.protocol", "as_targets": "eval.protocol",
    "predict_probabilities": "eval.protocol", "score_shape": "eval.protocol", "select_masks": "eval.protocol",
    "target_probability": "eval.protocol",
    "COLUMNS": "eval.report", "Column": "eval.report", "PERCENT_COLUMNS": "eval.report",
    "build_report": "eval.report", "environment": "eval.report", "markdown_table": "eval.report",
    "percent": "eval.report", "to_jsonable": "eval.report", "validate_report": "eval.report",
    "write_report": "eval.report", "atomic_write": "data.io",
    "data_randomization": "eval.sanity", "expected_random_cosine": "eval.sanity",
    "mask_cosine_similarity": "eval.sanity", "model_randomization": "eval.sanity", "sanity_report": "eval.sanity",
    "SensitivityResult": "eval.sensitivity", "max_sensitivity": "eval.sensitivity",
    "SensitivityNResult": "eval.sensitivity_n", "sensitivity_n": "eval.sensitivity_n",
    "time_per_sample": "eval.timing",
    "consistency": "eval.consistency", "local_lipschitz": "eval.stability",
    "perturbation_curves": "eval.perturbation_curves", "completeness_soundness": "eval.completeness",
    "deletion": "eval.insertion", "insertion": "eval.insertion", "saliency_metric": "eval.saliency_metric",
    "DEFAULT_METRICS": "eval.summary", "load_reports": "eval.summary", "summarize": "eval.summary",
    "summary_table": "eval.summary",
    "registry": "eval.registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
