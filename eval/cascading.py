"""Cascading model-parameter randomisation with SSIM (Adebayo et al., NeurIPS 2018; IBA Section 4.3, App. G.1).

A sound attribution depends on the model's parameters. Starting from the top (logits) layer, the
weights of one more layer are re-initialised at each step, cumulatively, until every layer is random;
after each step the attribution of the same inputs is recomputed and compared with the original one by
SSIM. A method whose heatmaps stay similar (SSIM near 1) while the network is destroyed does not explain
the network. IBA (App. G.1) clips each heatmap to its 1st and 99th percentiles, rescales it to [0, 1]
and uses scikit-image's SSIM with a window of 5.

``ssim`` reproduces ``skimage.metrics.structural_similarity(a, b, win_size=5, data_range=1.0)``:
a **uniform** 5 x 5 window (skimage's default, ``gaussian_weights=False``), sample covariances
(``use_sample_covariance=True``: variances scaled by w^2 / (w^2 - 1)), K1 = 0.01, K2 = 0.03, and the
mean of the SSIM map over the positions where the window lies inside the image (skimage crops
(w - 1) / 2 pixels at each border before averaging).

Re-initialisation reuses ``eval.sanity.model_randomization`` (a clone whose every weight is re-drawn
from its layer's own initializer): step k copies its weights into the top k layers of a working clone of
the model. The user's model is never modified.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import keras
import numpy as np
import tensorflow as tf

from eval.metrics import Metric, MetricResult
from eval.protocol import as_inputs, as_scores, as_targets, predict_probabilities
from eval.report import Column
from eval.sanity import model_randomization
from kernels.hooks import all_layers, check_model, find_layer
from kernels.validation import as_float_tensor, check_choice, check_int, check_positive

NORMALIZATIONS = ("percentile", "minmax", "none")
# Wang et al. 2004's stability constants (skimage's defaults).
_K1, _K2 = 0.01, 0.03


def ssim(a, b, *, window: int = 5, data_range: float = 1.0) -> np.ndarray:
    """Mean SSIM of each pair of 2-D maps: a, b (N, H, W) -> float64 (N,) (skimage's settings, see module doc).

    ``data_range`` is the value range of the maps (1 after IBA's normalisation to [0, 1]).
    """
    a = as_float_tensor("a", a, rank=3)
    b = as_float_tensor("b", b, rank=3)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"b: expected the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    window = check_int("window", window, minimum=3)
    if window % 2 == 0 or window > min(a.shape[1], a.shape[2]):
        raise ValueError(f"window: expected an odd size in [3, min(H, W) = {min(a.shape[1], a.shape[2])}], "
                         f"got {window}")
    check_positive("data_range", data_range)
    if a.shape[0] == 0:
        return np.zeros(0, np.float64)
    return _ssim(tf.cast(a, tf.float64), tf.cast(b, tf.float64), window, float(data_range)).numpy()


@tf.function(reduce_retracing=True)
def _ssim(a, b, window, data_range):
    def local_mean(t):  # uniform window, valid positions only (= skimage's filter + border crop)
        return tf.nn.avg_pool2d(t[..., None], window, 1, "VALID")[..., 0]

    points = float(window * window)
    cov_norm = points / (points - 1.0)
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = cov_norm * (local_mean(a * a) - mu_a * mu_a)
    var_b = cov_norm * (local_mean(b * b) - mu_b * mu_b)
    cov = cov_norm * (local_mean(a * b) - mu_a * mu_b)
    c1 = tf.constant((_K1 * data_range) ** 2, tf.float64)
    c2 = tf.constant((_K2 * data_range) ** 2, tf.float64)
    ssim_map = ((2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return tf.reduce_mean(ssim_map, axis=[1, 2])


def normalize_heatmaps(heatmaps, method: str = "percentile") -> np.ndarray:
    """Heatmaps (N, H, W) rescaled per map to [0, 1] for SSIM (float64).

    "percentile" (IBA App. G.1): clip to the map's 1st and 99th percentiles (linear interpolation), then
    rescale; "minmax": rescale between the map's minimum and maximum; "none": unchanged. A map that is
    constant after clipping becomes all zeros.
    """
    check_choice("normalize", method, NORMALIZATIONS)
    maps = np.asarray(as_float_tensor("heatmaps", heatmaps, rank=3)).astype(np.float64)
    if method == "none" or maps.shape[0] == 0:
        return maps
    flat = maps.reshape(len(maps), -1)
    q = (1.0, 99.0) if method == "percentile" else (0.0, 100.0)
    low, high = np.percentile(flat, q, axis=1)[:, :, None, None]
    span = high - low
    clipped = np.clip(maps, low, high)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 0, (clipped - low) / np.where(span > 0, span, 1.0), 0.0)


@dataclass(frozen=True, eq=False)
class CascadingResult:
    """SSIM between the original heatmaps and those of the progressively randomised model.

    ``steps`` (K + 1,) names the state of the model at each step: "original" (a faithful copy; SSIM 1
    for a deterministic explainer), then the name of the layer re-initialised last -- step k has the top
    k layers of ``layer_names`` random. ``ssim`` (K + 1,) is the mean over the images of
    ``ssim_per_sample`` (K + 1, N).
    """

    layer_names: tuple[str, ...]
    ssim: np.ndarray
    ssim_per_sample: np.ndarray
    normalize: str
    window: int
    seed: int

    @property
    def steps(self) -> tuple[str, ...]:
        return ("original",) + self.layer_names

    def to_dict(self) -> dict[str, object]:
        """The mean SSIM per step with the layer names and settings, for report.json."""
        return {
            "steps": list(self.steps),
            "ssim": self.ssim.tolist(),
            "n_images": int(self.ssim_per_sample.shape[1]),
            "normalize": self.normalize,
            "window": self.window,
            "seed": self.seed,
        }


def _weighted_layers(model) -> list:
    """Layers of ``model`` that own weights, in model order (nested models' layers, not the containers)."""
    return [layer for layer in all_layers(model) if not isinstance(layer, keras.Model) and layer.weights]


def _faithful_copy(model) -> keras.Model:
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _cascade(model, layers) -> list[int]:
    """Indices into _weighted_layers(model) of the layers to randomise, in randomisation order."""
    weighted = _weighted_layers(model)
    if not weighted:
        raise ValueError(f"model: expected a model with weights to randomise, got {model.name!r} with none")
    if layers is None:
        return list(range(len(weighted)))[::-1]
    if isinstance(layers, (str, keras.layers.Layer)) or not isinstance(layers, Sequence) or not layers:
        raise TypeError(f"layers: expected a non-empty list of layer names or layers (top first), got {layers!r}")
    indices = []
    for item in layers:
        layer = find_layer(model, item, name="layers")
        index = next((i for i, candidate in enumerate(weighted) if candidate is layer), None)
        if index is None:
            raise ValueError(f"layers: the layer {layer.name!r} has no weights to randomise")
        if index in indices:
            raise ValueError(f"layers: the layer {layer.name!r} is listed twice")
        indices.append(index)
    return indices


def cascading_randomization(model, explain_fn: Callable, x, targets=None, *, seed: int = 0,
                            normalize: str = "percentile", layers=None, window: int = 5,
                            sign_invariant: bool = False, batch_size: int = 256) -> CascadingResult:
    """Adebayo et al.'s cascading randomisation test as in IBA App. G.1.

    Args:
        model: the Keras classifier explained; it is cloned, never modified.
        explain_fn: ``explain_fn(model, x, targets) -> heatmaps (N, H, W)``, called on the original model
            and on each randomised copy.
        x: inputs (N, H, W, C) (or any input whose heatmaps are 2-D maps (N, H, W)).
        targets: class labels (N,) or one-hot rows; None = the original model's prediction on x. The same
            targets are explained at every step (the class of the original decision).
        seed: seeds the re-initialised weights (``eval.sanity.model_randomization``).
        normalize: "percentile" (IBA: clip to the 1st/99th percentile, rescale to [0, 1]), "minmax" or
            "none" (then SSIM's data range is that of the original heatmaps).
        layers: the layers to randomise, top first, one per step; None = every layer with weights, from
            the last one down.
        window: SSIM window size (5 in IBA).
        sign_invariant: IBA's variant for LRP: max(SSIM(h_o, norm(h_r)), SSIM(h_o, norm(-h_r))).
        batch_size: batch size of the prediction that resolves targets=None.
    """
    model = check_model("model", model)
    if not callable(explain_fn):
        raise TypeError(f"explain_fn: expected a callable (model, x, targets) -> heatmaps, got {explain_fn!r}")
    x = as_inputs("x", x)
    if len(x) == 0:
        raise ValueError(f"x: expected at least one input, got shape {x.shape}")
    seed = check_int("seed", seed, minimum=0)
    check_choice("normalize", normalize, NORMALIZATIONS)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if check_int("window", window, minimum=3) % 2 == 0:
        raise ValueError(f"window: expected an odd SSIM window size, got {window}")
    cascade = _cascade(model, layers)
    if targets is None:
        targets = predict_probabilities(model, x, batch_size).argmax(axis=1)
    else:
        targets = as_targets(targets, len(x), int(model.outputs[0].shape[-1]))

    def heatmaps(explained_model, name):
        maps = as_scores(explain_fn(explained_model, x, targets), x, name=name)
        if maps.ndim != 3:
            raise ValueError(f"{name}: expected 2-D heatmaps (N, H, W), got shape {maps.shape}")
        return maps

    reference_raw = heatmaps(model, "explain_fn(model)")
    reference = normalize_heatmaps(reference_raw, normalize)
    data_range = 1.0
    if normalize == "none":
        data_range = float(reference.max() - reference.min()) or 1.0

    def compare(maps):
        score = ssim(reference, normalize_heatmaps(maps, normalize), window=window, data_range=data_range)
        if sign_invariant:
            score = np.maximum(score, ssim(reference, normalize_heatmaps(-maps, normalize), window=window,
                                           data_range=data_range))
        return score

    fresh = _weighted_layers(model_randomization(model, seed))
    working = _faithful_copy(model)
    target_layers = _weighted_layers(working)
    source_layers = _weighted_layers(model)
    if len(fresh) != len(source_layers) or len(target_layers) != len(source_layers):
        raise ValueError(f"model: clone_model rebuilt {len(target_layers)} layers with weights, expected "
                         f"{len(source_layers)} (a subclassed model needs get_config/from_config)")
    scores = [compare(heatmaps(working, "explain_fn(copy)"))]
    for index in cascade:
        target_layers[index].set_weights(fresh[index].get_weights())
        scores.append(compare(heatmaps(working, f"explain_fn(randomised up to {source_layers[index].name!r})")))
    per_sample = np.stack(scores)
    return CascadingResult(
        layer_names=tuple(source_layers[i].name for i in cascade), ssim=per_sample.mean(axis=1),
        ssim_per_sample=per_sample, normalize=normalize, window=window, seed=seed,
    )


class CascadingRandomization(Metric):
    """The cascading randomisation sanity check (``cascading_randomization``): the mean SSIM between the
    original heatmaps and those after every layer is re-initialised (lower is better: the explanation
    depends on the weights). ``evaluate(explain_fn)`` with ``explain_fn(model, x, targets) -> heatmaps``
    (it re-explains on each randomised copy); the details hold the whole curve, step by step."""

    column: ClassVar = Column("number", False, "mean SSIM with the original heatmaps after re-initialising layers")
    requires: ClassVar = ("explain_fn",)

    def __init__(self, model, x, targets=None, *, seed: int = 0, normalize: str = "percentile", layers=None,
                 window: int = 5, sign_invariant: bool = False, batch_size=None):
        super().__init__(model, x, targets, batch_size=batch_size)
        self.options = {"seed": seed, "normalize": normalize, "layers": layers, "window": window,
                        "sign_invariant": sign_invariant}

    @property
    def name(self) -> str:
        return "SSIM, all layers random"

    def detailed_evaluate(self, explainer_or_scores) -> MetricResult:
        if not callable(explainer_or_scores):
            raise TypeError(f"explainer_or_scores: {self.name} re-explains on randomised models; expected "
                            f"explain_fn(model, x, targets) -> heatmaps, got {type(explainer_or_scores).__name__}")
        result = cascading_randomization(self.model, explainer_or_scores, self.x, self.targets,
                                         batch_size=self.batch_size, **self.options)
        return MetricResult(self.name, float(result.ssim[-1]), result.to_dict(), result=result)
