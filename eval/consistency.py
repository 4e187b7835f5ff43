"""Consistency across mask resolutions (VP, Section 4.2.1, Table 1).

A method whose attribution is a low-resolution mask upsampled to the input should give similar maps at
every upsample size m (the mask has (H/m, W/m) cells). VP computes the maps of one method at three sizes
({1, 2, 4} at 28 px, {4, 8, 16} at 224 px), compares each pair ({1, 2}, {2, 4}, {1, 4}) by SSIM, Pearson's
correlation (PC) and PSNR, averages the three pairs per sample, averages over 50 randomly drawn samples,
repeats the draw 4 times and reports the mean of the 4 averages (their std stayed below 0.05 for SSIM and
PC and 0.5 for PSNR). The paper publishes nothing more; here:

- each map is resized bilinearly (``kernels.image.resize``) to ``size`` when it has another shape, then
  min-max normalised per map to [0, 1] (a constant map becomes all zeros);
- SSIM is ``tf.image.ssim`` with max_val 1, a Gaussian window of 11 and sigma 1.5 (Wang et al.'s,
  K1 = 0.01, K2 = 0.03). ``tf.image.ssim`` needs the window to fit in the map: on maps smaller than 11
  pixels the window is the largest odd size <= min(H, W) and sigma is scaled with it, 1.5 * w / 11
  (``ssim_window``). After resizing to the input size this only happens on inputs under 11 pixels;
- PC is Pearson's r over the pixels of the two normalised maps; it is undefined (NaN) when either map
  is constant, and NaN values are left out of the averages (``n_undefined_pc`` counts them);
- PSNR is 10 log10(1 / MSE) of the normalised maps (``tf.image.psnr`` with max_val 1), capped at
  ``psnr_cap`` = 100 dB: identical maps (MSE 0) would be +inf; the cap is MSE 1e-10;
- the repeats are independent seeded draws of ``n_samples`` distinct samples from the pool (a sample may
  appear in several repeats); ``std`` is the sample std (ddof = 1) of the repeat averages.

``consistency(maps)`` scores maps already computed, ``{m: (N, H, W)}``. The class ``Consistency`` takes a
factory ``make(m) -> explainer`` (the method built at upsample size m) and explains only the samples the
draws use. ``RESOLUTION_PARAMETER`` says, for every registered method that has a mask resolution, which
constructor argument it is and how m maps onto it; ``resolution_factory`` builds a method at size m from
its name or from an explainer's ``get_config()``. Methods without one (gradients, the perceptual ball,
L2X here) are in ``NO_RESOLUTION`` with the reason.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import tensorflow as tf

from eval.metrics import Metric, MetricResult
from eval.protocol import as_scores
from eval.report import Column
from kernels.image import resize
from kernels.validation import as_float_tensor, check_choice, check_int, check_positive

MEASURES = ("ssim", "pc", "psnr")
#: SSIM's window and sigma (Wang et al. 2004; tf.image.ssim's defaults).
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
#: PSNR of identical maps (MSE 0): capped at 100 dB, i.e. MSE floored at 1e-10.
PSNR_CAP = 100.0
#: The paper's upsample sizes: 28-pixel inputs (MNIST) and 224-pixel inputs (CUB, ImageNet).
PAPER_SIZES = {28: (1, 2, 4), 224: (4, 8, 16)}


def default_sizes(input_size) -> tuple[int, ...]:
    """The paper's upsample sizes for inputs of ``input_size`` (H, W): (1, 2, 4) below 112 pixels (MNIST's
    setting), (4, 8, 16) from 112 pixels on (the 224-pixel setting)."""
    return PAPER_SIZES[28] if max(int(s) for s in input_size) < 112 else PAPER_SIZES[224]


def check_sizes(sizes) -> tuple[int, ...]:
    """Upsample sizes as distinct ints >= 1, sorted; at least two (a pair to compare)."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes: expected a list of upsample sizes (ints), got {sizes!r}")
    values = [check_int("sizes", s, minimum=1) for s in sizes]
    if len(set(values)) != len(values):
        raise ValueError(f"sizes: expected distinct upsample sizes, got {list(sizes)}")
    if len(values) < 2:
        raise ValueError(f"sizes: expected at least 2 upsample sizes to compare, got {list(sizes)}")
    return tuple(sorted(values))


def ssim_window(height: int, width: int, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> tuple[int, float]:
    """(window, sigma) for maps of (height, width): ``window`` if it fits, else the largest odd size <= the
    smaller side with sigma scaled by the same factor (module docstring)."""
    side = min(int(height), int(width))
    if window <= side:
        return window, sigma
    fitted = side if side % 2 == 1 else side - 1
    return fitted, sigma * fitted / window


def minmax(maps) -> np.ndarray:
    """Each map of (N, H, W) rescaled to [0, 1] by its own min and max (float64); constant maps -> zeros."""
    maps = np.asarray(maps, np.float64)
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1)[:, None, None] if flat.size else np.zeros((0, 1, 1))
    span = flat.max(axis=1)[:, None, None] - low if flat.size else np.zeros((0, 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)


def pair_scores(a, b, *, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
                psnr_cap: float = PSNR_CAP) -> dict[str, np.ndarray]:
    """SSIM, PC and PSNR (each (N,), float64) of the map pairs a[i], b[i] (N, H, W), already normalised to
    [0, 1] (``minmax``). PC is NaN where a map is constant; PSNR is capped at ``psnr_cap``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    window, sigma = ssim_window(a.shape[1], a.shape[2], window, sigma)
    ssim = tf.image.ssim(tf.constant(a[..., None], tf.float32), tf.constant(b[..., None], tf.float32), max_val=1.0,
                         filter_size=window, filter_sigma=sigma).numpy().astype(np.float64)
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    ca, cb = fa - fa.mean(axis=1, keepdims=True), fb - fb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ca * ca).sum(axis=1) * (cb * cb).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = np.where(denominator > 0, (ca * cb).sum(axis=1) / denominator, np.nan)
    mse = np.mean((fa - fb) ** 2, axis=1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 10.0 ** (-psnr_cap / 10.0)))
    return {"ssim": ssim, "pc": pc, "psnr": psnr}


def consistency_draws(n: int, n_samples: int = 50, repeats: int = 4, seed: int = 0) -> np.ndarray:
    """(repeats, min(n_samples, n)) int: each row ``n_samples`` distinct sample indices out of n, drawn from
    one NumPy PCG64 stream seeded by ``seed``, row after row."""
    n = check_int("n", n, minimum=1)
    n_samples = check_int("n_samples", n_samples, minimum=1)
    repeats = check_int("repeats", repeats, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    count = min(n_samples, n)
    return np.stack([np.sort(rng.choice(n, size=count, replace=False)) for _ in range(repeats)])


def _nanmean(values: np.ndarray, axis) -> np.ndarray:
    valid = np.isfinite(values)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _std(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


@dataclass(frozen=True, eq=False)
class ConsistencyResult:
    """Consistency of one method over upsample sizes (``float(result)`` is the mean SSIM).

    ``mean`` / ``std``: {"ssim", "pc", "psnr"} -> the mean of the repeat averages and their sample std;
    ``per_repeat``: measure -> (repeats,); ``per_sample``: measure -> (N,) the average over the pairs of
    each sample (NaN for samples no draw used); ``per_pair``: measure -> {"m1-m2": mean over the drawn
    samples}; ``draws`` (repeats, n_samples) the sample indices of each repeat.
    """

    mean: dict
    std: dict
    per_repeat: dict
    per_sample: dict
    per_pair: dict
    sizes: tuple
    draws: np.ndarray
    window: int
    sigma: float
    psnr_cap: float
    n_undefined_pc: int

    def __float__(self) -> float:
        return float(self.mean["ssim"])

    def to_dict(self) -> dict[str, object]:
        """Means, stds, per-repeat and per-pair values with the settings, for report.json."""
        return {
            "mean": dict(self.mean), "std": dict(self.std),
            "per_repeat": {k: v.tolist() for k, v in self.per_repeat.items()},
            "per_pair": {k: dict(v) for k, v in self.per_pair.items()},
            "sizes": list(self.sizes), "n_samples": int(self.draws.shape[1]), "repeats": int(self.draws.shape[0]),
            "ssim_window": self.window, "ssim_sigma": self.sigma, "psnr_cap": self.psnr_cap,
            "n_undefined_pc": self.n_undefined_pc,
        }


def _check_maps(maps, size) -> tuple[tuple[int, ...], dict[int, np.ndarray]]:
    if not isinstance(maps, Mapping):
        raise TypeError(f"maps: expected a dict {{upsample size: maps (N, H, W)}}, got {type(maps).__name__}")
    sizes = check_sizes(list(maps))
    checked = {m: as_float_tensor(f"maps[{m}]", maps[m], rank=3) for m in sizes}
    counts = {m: int(v.shape[0]) for m, v in checked.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"maps: expected the same number of maps at every upsample size, got {counts}")
    if next(iter(counts.values())) == 0:
        raise ValueError("maps: expected at least one map per upsample size, got none")
    shapes = {m: tuple(int(s) for s in v.shape[1:]) for m, v in checked.items()}
    if size is None:
        if len(set(shapes.values())) != 1:
            raise ValueError(f"maps: expected maps of one shape at every upsample size, got {shapes}; pass size= "
                             f"(the input's (H, W)) to resize them first")
    else:
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in size)):
            raise ValueError(f"size: expected a pair (height, width) of ints >= 1, got {size!r}")
        size = (int(size[0]), int(size[1]))
        checked = {m: v if shapes[m] == size else resize(v, size) for m, v in checked.items()}
    return sizes, {m: minmax(v.numpy()) for m, v in checked.items()}


def consistency(maps: Mapping, *, n_samples: int = 50, repeats: int = 4, seed: int = 0, size=None,
                window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, psnr_cap: float = PSNR_CAP,
                draws=None) -> ConsistencyResult:
    """VP's consistency of the maps of one method at several upsample sizes (Table 1).

    Args:
        maps: {upsample size m: maps (N, H, W)}, the same N samples at every size (at least two sizes).
        n_samples, repeats: samples per draw (50) and draws (4), as in the paper; a pool smaller than
            ``n_samples`` is used whole in every draw.
        seed: seeds the draws (``consistency_draws``).
        size: (H, W) to resize every map to first (bilinear); None: the maps must already share a shape.
        window, sigma: SSIM's Gaussian window (11, 1.5; smaller on small maps, see ``ssim_window``).
        psnr_cap: the PSNR of identical maps (dB).
        draws: explicit (repeats, n) sample indices instead of the seeded draws (``Consistency`` passes
            the positions of the samples it explained).

    Returns a ``ConsistencyResult`` (module docstring for every step).
    """
    sizes, normalised = _check_maps(maps, size)
    window = check_int("window", window, minimum=1)
    if window % 2 == 0:
        raise ValueError(f"window: expected an odd SSIM window size, got {window}")
    check_positive("sigma", sigma)
    check_positive("psnr_cap", psnr_cap)
    n = len(normalised[sizes[0]])
    if draws is None:
        draws = consistency_draws(n, n_samples, repeats, seed)
    else:
        draws = np.asarray(draws)
        if draws.ndim != 2 or draws.size == 0 or draws.dtype.kind not in "iu" or draws.min() < 0 or draws.max() >= n:
            raise ValueError(f"draws: expected a non-empty (repeats, n_samples) array of indices in [0, {n}), "
                             f"got {draws.shape} {draws.dtype}")
    used = np.unique(draws)
    window, sigma = ssim_window(*normalised[sizes[0]].shape[1:], window, sigma)
    pairs = list(itertools.combinations(sizes, 2))
    scores = {key: np.full((len(pairs), n), np.nan) for key in MEASURES}
    for p, (m1, m2) in enumerate(pairs):
        values = pair_scores(normalised[m1][used], normalised[m2][used], window=window, sigma=sigma,
                             psnr_cap=psnr_cap)
        for key in MEASURES:
            scores[key][p, used] = values[key]
    per_sample = {key: _nanmean(scores[key], axis=0) for key in MEASURES}
    per_repeat = {key: _nanmean(per_sample[key][draws], axis=1) for key in MEASURES}
    drawn = draws.reshape(-1)
    per_pair = {key: {f"{m1}-{m2}": float(_nanmean(scores[key][p, drawn], axis=0)) for p, (m1, m2) in enumerate(pairs)}
                for key in MEASURES}
    return ConsistencyResult(
        mean={key: float(_nanmean(per_repeat[key], axis=0)) for key in MEASURES},
        std={key: _std(per_repeat[key]) for key in MEASURES}, per_repeat=per_repeat, per_sample=per_sample,
        per_pair=per_pair, sizes=sizes, draws=draws, window=int(window), sigma=float(sigma), psnr_cap=float(psnr_cap),
        n_undefined_pc=int(np.count_nonzero(~np.isfinite(scores["pc"][:, used]))),
    )


# ------------------------------------------------------------------------ methods at a mask resolution

@dataclass(frozen=True)
class ResolutionParameter:
    """The constructor argument ``name`` that sets a method's mask resolution; ``value(m, (H, W))`` is its
    value at upsample size m; ``rederived``: hyper-parameters whose default follows it, dropped from a
    config when the method is rebuilt (so that they follow m again); ``rule``: the mapping in words."""

    name: str
    value: Callable
    rule: str
    rederived: tuple[str, ...] = ()


def _m(m, size):
    return int(m)


def _cells(m, size):
    return max(1, min(int(s) for s in size) // int(m))


def _mask_shape(m, size):
    return tuple(max(1, int(s) // int(m)) for s in size)


#: Registered method name -> its mask-resolution parameter (module docstring). VP / nVP: ``upsample`` is m
#: (the mask has H/m x W/m cells); MP: ``upsample`` is m (ceil(H/m) cells); EP: the smooth mask's cell
#: ``step`` is m pixels (sigma re-derived as 3 m, TorchRay's 21 / 7); RISE: ``grid`` = min(H, W) // m cells
#: per side (cells of m pixels); Real-Time Saliency: ``mask_resolution`` = (H // m, W // m); CXPlain: blocks
#: of ``patch`` = m pixels.
RESOLUTION_PARAMETER: dict[str, ResolutionParameter] = {
    "vp": ResolutionParameter("upsample", _m, "upsample = m"),
    "nvp": ResolutionParameter("upsample", _m, "upsample = m"),
    "meaningful_perturbation": ResolutionParameter("upsample", _m, "upsample = m"),
    "extremal_perturbation": ResolutionParameter("step", _m, "step = m pixels (sigma = 3 m)", ("sigma",)),
    "rise": ResolutionParameter("grid", _cells, "grid = min(H, W) // m cells"),
    "real_time_saliency": ResolutionParameter("mask_resolution", _mask_shape, "mask_resolution = (H // m, W // m)"),
    "cxplain": ResolutionParameter("patch", _m, "patch = m pixels"),
}

#: Methods without a mask resolution, with the reason they have no consistency score.
NO_RESOLUTION: dict[str, str] = {
    "saliency": "a gradient map has no mask resolution (VP, Section 4.2.1: InputGrad is not in Table 1)",
    "perceptual_ball": "the perceptual ball perturbs pixels, it has no mask (VP, Section 4.2.1: AP is not in Table 1)",
    "l2x": "baselines.amortised.L2X selects on the pixel grid: it has no mask-resolution parameter to vary",
}


def _canonical(name: str) -> str:
    from eval import registry

    try:
        return registry.spec(name).name
    except ValueError:
        return str(name).strip().lower()


def resolution_parameter(name: str) -> ResolutionParameter | None:
    """The ResolutionParameter of the registered method ``name`` (aliases resolve), None when it has none."""
    return RESOLUTION_PARAMETER.get(_canonical(name))


def no_resolution_reason(name: str) -> str:
    """Why the method ``name`` has no consistency score ("" when it has a resolution parameter)."""
    canonical = _canonical(name)
    if canonical in RESOLUTION_PARAMETER:
        return ""
    return NO_RESOLUTION.get(canonical, f"{canonical!r} has no mask-resolution parameter known to "
                                        f"eval.consistency.RESOLUTION_PARAMETER")


def resolution_factory(method, model, *, hyper: Mapping | None = None, fit: Callable | None = None,
                       reuse: bool = True) -> Callable:
    """``make(m) -> explainer``: the registered method at upsample size m, for the black box ``model``.

    ``method``: a registered name (built with ``hyper``), or an explainer (rebuilt from its ``get_config()``:
    its method name and the hyper-parameters the registry accepts, minus the resolution parameter and those
    it re-derives; with ``reuse`` the explainer itself is returned for the m it already has). ``fit``:
    ``fit(explainer)`` for methods that must be fitted (``requires_fit``); ValueError when one is needed
    and missing. ValueError naming ``method`` for a method without a resolution parameter (the reason).
    """
    from eval import registry

    explainer = None
    if isinstance(method, str):
        name, config = method, dict(hyper or {})
    elif hasattr(method, "get_config"):
        explainer = method
        config = dict(method.get_config())
        name = config.pop("method", None)
        if not isinstance(name, str):
            raise ValueError(f"method: the explainer's get_config() names no method, got {config!r}")
        config.update(hyper or {})
    else:
        raise TypeError(f"method: expected a registered method name or an explainer with get_config(), got "
                        f"{type(method).__name__}")
    spec = registry.spec(name)
    parameter = RESOLUTION_PARAMETER.get(spec.name)
    if parameter is None:
        raise ValueError(f"method: no consistency score for {spec.name!r}: {no_resolution_reason(spec.name)}")
    if spec.requires_fit and fit is None:
        raise ValueError(f"fit: {spec.name!r} must be fitted before it explains; expected fit(explainer)")
    current = config.get(parameter.name)
    settings = {key: value for key, value in config.items()
                if spec.accepts(key) and key != parameter.name and key not in parameter.rederived}
    size = tuple(int(s) for s in model.inputs[0].shape[1:3])

    def make(m):
        value = parameter.value(check_int("m", m, minimum=1), size)
        if explainer is not None and reuse and current is not None and np.array_equal(np.asarray(current),
                                                                                         np.asarray(value)):
            return explainer
        built = spec.build(model, **settings, **{parameter.name: value})
        if spec.requires_fit:
            fit(built)
        return built

    return make


class Consistency(Metric):
    """VP's consistency (``consistency``) of a method over upsample sizes; ``evaluate(make)`` with
    ``make(m) -> explainer`` (or a dict {m: explainer or maps (N, H, W) of x}). The value is the mean of
    ``measure`` ("ssim", "pc" or "psnr"; higher is better); the details hold all three with their stds.
    Only the samples of the seeded draws are explained (each size's explainer once, in batches)."""

    column: ClassVar = Column("number", True, "similarity of the maps of one method at different upsample sizes")
    requires: ClassVar = ("factory",)
    default_batch_size: ClassVar = 64

    def __init__(self, model, x, targets=None, *, sizes=None, measure: str = "ssim", n_samples: int = 50,
                 repeats: int = 4, seed: int = 0, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
                 psnr_cap: float = PSNR_CAP, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.sizes = check_sizes(default_sizes(self.x.shape[1:3]) if sizes is None else sizes)
        self.measure = check_choice("measure", measure, MEASURES)
        self.draws = consistency_draws(len(self.x), n_samples, repeats, seed)
        self.options = {"window": window, "sigma": sigma, "psnr_cap": psnr_cap}

    @property
    def name(self) -> str:
        return f"consistency {self.measure.upper()}"

    def maps(self, make) -> tuple[dict, np.ndarray]:
        """({m: maps of the drawn samples}, the drawn sample indices into x) for a factory or a dict."""
        used = np.unique(self.draws)
        x = self.x[used]
        targets = None if self.targets is None else np.asarray(self.targets)[used]
        maps = {}
        for m in self.sizes:
            if isinstance(make, Mapping):
                if m not in make:
                    raise ValueError(f"make: expected an entry for every upsample size {list(self.sizes)}, "
                                     f"got {sorted(make)}")
                source = make[m]
            elif callable(make):
                source = make(m)
            else:
                raise TypeError(f"make: expected make(m) -> explainer or a dict {{m: explainer or maps}}, got "
                                f"{type(make).__name__}")
            if hasattr(source, "explain"):
                maps[m] = as_scores(source, x, targets=targets, batch_size=self.batch_size, name=f"maps[{m}]")
            else:
                full = np.asarray(as_float_tensor(f"maps[{m}]", source, rank=3))
                if len(full) != len(self.x):
                    raise ValueError(f"maps[{m}]: expected one map per sample of x ({len(self.x)}), got shape "
                                     f"{full.shape}")
                maps[m] = full[used]
        return maps, used

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        maps, used = self.maps(explainer_or_scores)
        result = consistency(maps, draws=np.searchsorted(used, self.draws), size=tuple(self.x.shape[1:3]),
                             **self.options)
        return MetricResult(self.name, result.mean[self.measure], result.to_dict(), result=result)
