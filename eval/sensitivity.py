"""Max-sensitivity SEN of an explanation (Yeh et al., NeurIPS 2019; MEED, Liang et al., KDD 2020, Section 4).

Yeh et al. define the max-sensitivity of an explanation s at x as the largest change of s over a ball
of radius r around x. MEED reports it relative to the explanation's size and estimates the maximum by
sampling (reference/meed_original_code.md, "Evaluation"): n_samples = 50 perturbations drawn
uniformly from the L-inf ball of radius r = 0.2,

    SEN(x) = max_j ||s(x) - s(x + delta_j)||_2 / ||s(x)||_2,   delta_j ~ U(-r, r)^D,

the norms taken over all of the sample's features (Frobenius norm for image score maps), on the
explainer's raw scores. The perturbed inputs are **not clipped** to the data range: Yeh et al.'s ball
is centred on x whatever the range, and the description of the original code mentions no clipping.
Near the ends of the range the explainer is therefore evaluated slightly outside the data it was
trained on.

The original code resets its running maximum inside the loop, so it reports the ratio of the last
perturbation only; ``legacy=True`` reproduces that number from the same draws.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from eval.metrics import Metric, MetricResult, require_explainer
from eval.progress import Progress
from eval.protocol import Explainer, as_inputs, as_scores
from eval.report import COLUMNS
from kernels.validation import check_choice, check_int, check_positive


@dataclass(frozen=True, eq=False)
class SensitivityResult:
    """SEN per sample and its mean over the samples (``float(result)`` is the mean).

    ``ratios`` holds every ratio ||s(x) - s(x')|| / ||s(x)|| as (N, n_samples), in draw order;
    ``per_sample`` is their row maximum, or the last column when ``legacy``. A sample whose clean
    scores are all zero (||s(x)|| = 0) has ratio 0 for a perturbation that leaves the scores zero and
    +inf otherwise (any change is infinitely large relative to an empty explanation); ``n_zero_norm``
    counts such samples, and one +inf makes ``mean`` +inf.
    """

    mean: float
    per_sample: np.ndarray
    ratios: np.ndarray
    radius: float
    n_samples: int
    legacy: bool
    n_zero_norm: int

    def __float__(self) -> float:
        return self.mean


def _checked_scores(scores, inputs) -> np.ndarray:
    return as_scores(scores, inputs)


def _flat(scores: np.ndarray) -> np.ndarray:
    """(B, *score_shape) -> (B, features) in float64, so that the norms are accurate."""
    return scores.reshape(len(scores), -1).astype(np.float64)


def _relative_change(diff_norms: np.ndarray, clean_norms: np.ndarray) -> np.ndarray:
    """diff / clean, with 0 / 0 = 0 and d / 0 = +inf for d > 0 (never NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = diff_norms / clean_norms
    return np.where(clean_norms > 0, ratio, np.where(diff_norms > 0, np.inf, 0.0))


def max_sensitivity(explain_fn, x, *, radius: float = 0.2, n_samples: int = 50, seed: int = 0,
                    batch_size: int = 256, legacy: bool = False, targets=None, explain_kwargs: Mapping | None = None,
                    verbose: int = 0) -> SensitivityResult:
    """SEN of ``explain_fn`` on the batch ``x`` (MEED's SEN, Yeh et al.'s max-sensitivity).

    Args:
        explain_fn: an Explainer (its ``explain(x, targets, batch_size)`` is used) or a callable
            ``x -> scores``; scores have one value per feature (see eval.protocol).
        x: float inputs (N, ...). Token ids are rejected: uniform noise is meaningless on them
            (MEED reports no SEN for IMDB).
        radius: half-width r of the uniform L-inf perturbation (0.2 in MEED).
        n_samples: perturbations per sample (50 in MEED).
        seed: seeds the perturbations (NumPy PCG64); draws do not depend on ``batch_size``.
        batch_size: the N * n_samples perturbed inputs are built and explained in chunks of this size.
        legacy: report the ratio of the last perturbation instead of the maximum (the original code's
            reset running maximum); same draws, so legacy <= the correct value for every sample.
        targets: passed to an Explainer's ``explain`` for x and, repeated, for its perturbations (so
            every perturbation is explained for the clean input's target). None lets the explainer use
            the model's prediction on each input it gets. Only for Explainers.
        explain_kwargs: further per-sample arrays (first axis N) passed to ``explain`` as keyword
            arguments in the same way, e.g. MEED's ``conditioning`` on the clean input's y, which is
            what the original code did by not recomputing y. Only for Explainers.
        verbose: 1 shows a progress bar over the chunks.

    Returns:
        A ``SensitivityResult``: ``mean`` (the reported SEN, a ratio; x100 for the paper's %),
        ``per_sample`` (N,), ``ratios`` (N, n_samples).
    """
    x = as_inputs("x", x)
    if x.dtype.kind != "f":
        raise TypeError(f"x: expected float inputs to perturb with uniform noise, got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"x: expected at least one sample, got shape {x.shape}")
    check_positive("radius", radius)
    n_samples = check_int("n_samples", n_samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    n = len(x)
    extra = dict(explain_kwargs or {})
    if targets is not None:
        extra["targets"] = targets
    for key, value in extra.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] != n:
            raise ValueError(f"{key}: expected one value per sample of x ({n}), got shape {value.shape}")
        extra[key] = value
    if isinstance(explain_fn, Explainer):
        def explain(inputs, rows):
            options = {key: value[rows] for key, value in extra.items()}
            scores = explain_fn.explain(inputs, batch_size=batch_size, **options)
            return _checked_scores(scores, inputs)
    elif callable(explain_fn):
        if extra:
            raise TypeError(f"{', '.join(sorted(extra))}: only an Explainer takes them; a plain callable gets x only")

        def explain(inputs, rows):
            return _checked_scores(explain_fn(inputs), inputs)
    else:
        raise TypeError(f"explain_fn: expected an Explainer or a callable x -> scores, got {explain_fn!r}")

    clean = np.concatenate([_flat(explain(x[i:i + batch_size], slice(i, i + batch_size)))
                            for i in range(0, n, batch_size)])
    clean_norms = np.linalg.norm(clean, axis=1)

    total = n * n_samples
    ratios = np.empty(total, dtype=np.float64)
    rng = np.random.default_rng(seed)
    progress = Progress(total, verbose, "perturbation")
    for start in range(0, total, batch_size):
        flat = np.arange(start, min(start + batch_size, total))
        owner = flat // n_samples
        # Drawn chunk after chunk from one stream: identical to drawing all N * n_samples at once.
        noise = rng.uniform(-radius, radius, size=(len(flat),) + x.shape[1:]).astype(x.dtype)
        perturbed = x[owner] + noise
        scores = _flat(explain(perturbed, owner))
        ratios[flat] = _relative_change(np.linalg.norm(scores - clean[owner], axis=1), clean_norms[owner])
        progress.update(flat[-1] + 1)
    ratios = ratios.reshape(n, n_samples)
    per_sample = ratios[:, -1] if legacy else ratios.max(axis=1)
    return SensitivityResult(mean=float(per_sample.mean()), per_sample=per_sample, ratios=ratios,
                             radius=float(radius), n_samples=n_samples, legacy=bool(legacy),
                             n_zero_norm=int(np.count_nonzero(clean_norms == 0)))


FORMS = ("max", "last")


class MaxSensitivity(Metric):
    """SEN of an explainer on ``x`` (``max_sensitivity``): ``form="max"`` is Yeh et al.'s maximum over the
    draws, ``"last"`` the released MEED code's last draw only; ``explain_kwargs`` as there (e.g. MEED's
    ``conditioning`` on the clean y, the code's other quirk). ``evaluate(explainer)``: the explainer is
    called on the perturbed inputs. Only the first ``n_inputs`` inputs are used when given.
    """

    column: ClassVar = COLUMNS["SEN"]
    requires: ClassVar = ("explainer",)

    def __init__(self, model, x, targets=None, *, radius: float = 0.2, n_samples: int = 50, seed: int = 0,
                 form: str = "max", explain_kwargs: Mapping | None = None, n_inputs: int | None = None,
                 verbose: int = 0, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        if n_inputs is not None:
            self.x = self.x[:check_int("n_inputs", n_inputs, minimum=1)]
            self.targets = None if targets is None else np.asarray(targets)[:n_inputs]
        self.radius, self.n_samples, self.seed = radius, n_samples, seed
        self.form = check_choice("form", form, FORMS)
        self.explain_kwargs = {key: np.asarray(value)[:len(self.x)] for key, value in (explain_kwargs or {}).items()}
        self.verbose = verbose

    @property
    def name(self) -> str:
        return "SEN"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        explainer = require_explainer(self, explainer_or_scores, "explains perturbed inputs")
        result = max_sensitivity(explainer, self.x, radius=self.radius, n_samples=self.n_samples, seed=self.seed,
                                 batch_size=self.batch_size, legacy=self.form == "last", targets=self.targets,
                                 explain_kwargs=self.explain_kwargs, verbose=self.verbose)
        return MetricResult("SEN", result.mean, {"form": self.form, "n_inputs": int(len(self.x)),
                                                  "n_zero_norm": result.n_zero_norm}, result=result)
