"""The papers' published numbers and settings that reports put beside our measurements.

MEED (Liang et al., KDD 2020): Tables 1 (IMDB, no SEN), 3 (MNIST 3 vs 8), 4 (Fashion-MNIST Pullover vs
Shirt) and 5 (ImageNet, MEED only): FS-M, FU-M, FS-A, FU-A and SEN in %, TPS in seconds per sample,
keyed by registry method name; ``MEED_CLASSES``: the class pairs of its settings (reference/
meed_original_code.md), the default of MEED's presets and of the MEED benchmark. ``meed_reference``
gives them as report reference rows (fractions, as reports store measurements).
"""
from __future__ import annotations

MEED_SOURCE = "MEED (Liang et al., KDD 2020), Tables 1, 3, 4, 5"
MEED_COLUMNS = ("FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS")
#: Class pairs of MEED's image settings (original label ids, in this order).
MEED_CLASSES = {"fashion_mnist": (2, 6), "mnist": (3, 8)}
MEED_TABLES = {
    "fashion_mnist": {
        "gradient": (58.60, 76.20, 93.70, 95.45, 2528, 5e-5),
        "gradient_input": (62.15, 66.25, 93.35, 94.45, 2662, 5e-5),
        "lime": (75.63, 94.30, 73.60, 97.35, 61.03, 3e-2),
        "kernel_shap": (63.29, 55.78, 93.97, 95.58, 84.59, 4e-2),
        "cxplain": (59.65, 16.50, 94.85, 95.10, 107, 1e-4),
        "infd": (100.0, 45.80, 100.0, 100.0, 87.37, 5e-1),
        "l2x": (77.30, 87.30, 89.85, 96.00, 1.76, 1e-4),
        "vibi": (84.10, 70.85, 91.90, 94.40, 17.36, 1e-4),
        "meed": (97.80, 66.65, 99.80, 99.65, 0.70, 1e-4),
    },
    "mnist": {
        "gradient": (98.19, 68.75, 99.55, 99.55, 139, 5e-5),
        "gradient_input": (99.45, 67.64, 99.55, 99.24, 120, 5e-5),
        "lime": (80.37, 99.75, 82.46, 99.80, 62.6, 3e-2),
        "kernel_shap": (92.74, 90.83, 98.87, 99.75, 87.2, 4e-2),
        "cxplain": (99.40, 64.77, 99.70, 99.24, 91.8, 1e-4),
        "infd": (89.62, 96.62, 99.95, 99.95, 101, 1e-0),
        "l2x": (91.38, 91.18, 98.54, 99.65, 6.90, 1e-4),
        "vibi": (98.29, 86.29, 99.29, 99.65, 6.35, 1e-4),
        "meed": (99.04, 74.70, 99.80, 99.70, 6.11, 1e-4),
    },
    "imdb": {
        "gradient": (85.58, 87.58, 86.18, 85.79, None, 5e-5),
        "gradient_input": (87.31, 86.25, 87.88, 83.86, None, 5e-5),
        "lime": (89.75, 82.13, 88.53, 82.96, None, 3e-2),
        "kernel_shap": (50.17, 99.16, 50.24, 99.50, None, 4e-2),
        "cxplain": (90.60, 80.01, 90.70, 83.04, None, 1e-4),
        "infd": (40.50, 99.80, 64.50, 96.70, None, 3e-0),
        "l2x": (89.23, 82.90, 89.05, 83.81, None, 1e-4),
        "vibi": (90.79, 80.36, 90.12, 82.57, None, 1e-4),
        "meed": (98.48, 59.05, 98.70, 81.83, None, 1e-4),
    },
    "imagenet": {
        "meed": (83.0, 98.0, 90.0, 93.0, 39.91, None),
    },
}
#: The paper's label of each method in its tables.
MEED_LABELS = {"gradient": "Grad", "gradient_input": "GI", "lime": "LIME", "kernel_shap": "SHAP",
               "cxplain": "CXP", "infd": "INFD", "l2x": "L2X", "vibi": "VIBI", "meed": "Ours"}


def meed_paper_row(dataset: str, method: str) -> dict[str, float] | None:
    """The paper's numbers for ``method`` on ``dataset`` as {metric: value in the table's units (% / s)}."""
    values = MEED_TABLES.get(dataset, {}).get(method)
    if values is None:
        return None
    return {column: value for column, value in zip(MEED_COLUMNS, values) if value is not None}


def meed_reference(dataset: str, methods) -> list[dict]:
    """Report reference rows ``{"label": "<method> (<paper label>)", "source": ..., metric: fraction}`` for
    the ``methods`` the paper's table for ``dataset`` has (percentages / 100; TPS in seconds)."""
    rows = []
    for method in methods:
        values = meed_paper_row(dataset, method)
        if values is not None:
            rows.append({"label": f"{method} ({MEED_LABELS[method]})", "source": MEED_SOURCE,
                         **{k: (v if k == "TPS" else v / 100.0) for k, v in values.items()}})
    return rows


#: VP (ICLR 2022 submission), Tables 1-3, the MNIST columns (the CUB / ImageNet ones need data this machine
#: lacks): consistency SSIM, PC, PSNR; stability (local Lipschitz, mean); perturbation areas for the
#: probability, the logit and the KL divergence. None: not in that table (RealTime on MNIST; InputGrad and
#: AP have no consistency row).
VP_SOURCE = "VP (ICLR 2022 submission), Tables 1-3, MNIST"
VP_COLUMNS = ("consistency SSIM", "consistency PC", "consistency PSNR", "Lipschitz", "perturbation (probability)",
              "perturbation (logit)", "perturbation (KL)")
VP_MNIST = {
    "saliency": (None, None, None, 1.53, 0.44, 7.61, 0.24),
    "l2x": (0.40, 0.59, 9.49, 0.99, 0.43, 7.65, 0.24),
    "meaningful_perturbation": (0.52, 0.48, 11.50, 3.73, 0.37, 5.61, 0.30),
    "rise": (0.11, 0.07, 12.51, 0.16, 0.22, 4.52, 0.33),
    "extremal_perturbation": (0.58, 0.81, 13.15, 3.48, 0.40, 6.87, 0.35),
    "perceptual_ball": (None, None, None, 1.60, 0.51, 8.25, 0.31),
    "nvp": (0.49, 0.81, 13.07, 0.13, 0.70, 12.91, 0.37),
    "vp": (0.56, 0.85, 13.81, 0.06, 0.70, 12.97, 0.37),
}
VP_LABELS = {"saliency": "Input-grad.", "l2x": "L2X", "meaningful_perturbation": "MP", "rise": "RISE",
             "extremal_perturbation": "EP", "perceptual_ball": "AP", "nvp": "nVP", "vp": "VP (Ours)"}


def vp_reference(methods) -> list[dict]:
    """Report reference rows of VP's MNIST tables for the ``methods`` they have."""
    rows = []
    for method in methods:
        values = VP_MNIST.get(method)
        if values is not None:
            rows.append({"label": f"{method} ({VP_LABELS[method]})", "source": VP_SOURCE,
                         **{k: v for k, v in zip(VP_COLUMNS, values) if v is not None}})
    return rows
