"""Our baselines against xplique: time and agreement of each method both libraries have, in one run.

For every method xplique also implements (saliency, gradient_input, integrated_gradients, smoothgrad,
vargrad, occlusion, rise, lime, kernel_shap, gradcam, guided_backprop) both libraries explain the same
inputs of the same Keras model for the same targets (the model's predictions), with the hyperparameters
mapped between the two APIs and the same bound B on the rows of one forward/backward pass
(``--batch-size``): xplique's ``batch_size`` = B; ours ``explain(batch_size=B)`` and, for the methods that
evaluate the model many times per input, ``internal_batch_size`` = B (a chunk x group pass holds about B
rows). Each side gets a warm-up call (tracing), then
``--repeats`` timed calls, ours and xplique's alternating so that load from other jobs on the shared
cores hits both; the median is reported, with the ratio xplique / ours.

Agreement: the per-image Pearson r between the two score maps, averaged over the images (a constant map,
e.g. an all-zero Grad-CAM, has no r and is skipped). Xplique runs with ``reducer=None`` where it has one
and its per-channel output is reduced the way ours reduces channels ("r, same reduction"); the r against
xplique's own default reduction is shown too. For the stochastic methods the r of our method with two
seeds gives the agreement to expect from sampling alone.

Models: the Fashion-MNIST black box of the MEED setting (data.blackbox, cached) and, unless
``--models fashion_mnist``, a small seeded ResNet-like on 64x64x3 inputs (untrained: speed and agreement
do not need a trained model).

Needs the benchmark environment (xplique pins tensorflow<=2.20), see benchmarks/README.md:
    /work/benchenv/bin/python benchmarks/baselines_vs_xplique.py [--n 64] [--repeats 3] [--batch-size 256]
Writes <out>/baselines_vs_xplique.json (after each model) and replaces its own section of
benchmarks/RESULTS.md (between the markers below; the rest of the file is kept); ``--markdown-from
<json>`` rewrites that section from a saved run without measuring.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval import registry  # noqa: E402
from eval.papers import MEED_CLASSES  # noqa: E402
from eval.report import environment  # noqa: E402
from kernels.tiles import n_tiles, tile_grid  # noqa: E402
from sections import markers, write_section  # noqa: E402

SECTION = "baselines_vs_xplique"
START, END = markers(SECTION)
METHODS = ("saliency", "gradient_input", "integrated_gradients", "smoothgrad", "vargrad", "occlusion", "rise",
           "lime", "kernel_shap", "gradcam", "guided_backprop")
# Where xplique runs a Python loop per input (the 2x target); the others loop per batch of rows.
PER_INPUT_LOOPS = {"occlusion", "rise", "lime", "kernel_shap"}


@dataclass
class Pair:
    """One method in both libraries: how to build each side, and how to compare their outputs."""

    name: str
    ours: dict                       # hyperparameters of registry.get(name, model, ...)
    xplique: Callable                # (model, batch_size) -> xplique explainer
    reduce_like_ours: str            # how xplique's (N, H, W, C) output is reduced to our (N, H, W)
    reduce_like_xplique: str         # xplique's own default reduction of that output
    stochastic: bool = False
    forward_rows: int = 0            # forward-only methods: model rows evaluated per input (0: not timed)
    setting: str = ""
    differences: list[str] = field(default_factory=list)


def reduce_channels(values: np.ndarray, how: str) -> np.ndarray:
    """(N, H, W, C) -> (N, H, W): 'sum', 'mean', 'sum_abs', 'max_abs' or 'squeeze' (C == 1)."""
    values = np.asarray(values, np.float64)
    if values.ndim == 3:
        return values
    if how == "squeeze":
        return values[..., 0]
    if how == "max_abs":
        return np.abs(values).max(axis=-1)
    if how == "sum_abs":
        return np.abs(values).sum(axis=-1)
    return values.sum(axis=-1) if how == "sum" else values.mean(axis=-1)


def mean_pearson(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Mean over images of the Pearson r of two (N, ...) score maps; images where one map is constant
    are skipped. Returns (mean r, number of images used)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    ok = den > 1e-30
    if not ok.any():
        return float("nan"), 0
    return float(np.mean((a * b).sum(axis=1)[ok] / den[ok])), int(ok.sum())


def pairs(input_shape, hp: dict) -> dict[str, Pair]:
    """The mapped settings of every method for one model (xplique imported here: bench env only)."""
    from sklearn import linear_model
    from xplique.attributions import (GradCAM, GradientInput, GuidedBackprop, IntegratedGradients, KernelShap,
                                      Lime, Occlusion, Rise, Saliency, SmoothGrad, VarGrad)

    steps, n, noise, patch = hp["steps"], hp["n_samples"], hp["noise"], hp["patch"]
    height, width, channels = input_shape
    tiles, masks = hp["tile"], hp["n_masks"]
    n_features = n_tiles(height, width, tiles)
    grid = tf.constant(tile_grid(height, width, tiles))
    zeros = np.zeros(channels, np.float32)
    channel_rule = "xplique's default reducer is the channel mean, ours the sum (the same map up to a factor)"
    out = {
        "saliency": Pair(
            "saliency", {}, lambda m, b: Saliency(m, batch_size=b, reducer=None), "max_abs", "max_abs",
            setting="max over channels of abs(d p_c / d x)",
            differences=["same definition (Simonyan et al.: max over channels of the absolute gradient)"]),
        "gradient_input": Pair(
            "gradient_input", {"signed": True}, lambda m, b: GradientInput(m, batch_size=b, reducer=None),
            "sum", "mean", setting="ours signed=True",
            differences=["our default (signed=False) is MEED's GI, |g * x| summed over channels; xplique's is "
                         "the signed g * x: compared with signed=True", channel_rule]),
        "integrated_gradients": Pair(
            "integrated_gradients", {"steps": steps, "rule": "trapezoid", "baseline": 0.0},
            lambda m, b: IntegratedGradients(m, batch_size=b, reducer=None, steps=steps, baseline_value=0.0),
            "sum", "mean", setting=f"{steps} steps, trapezoid, baseline 0",
            differences=["xplique uses the trapezoid rule on linspace(0, 1, steps); our default is the "
                         "midpoint rule: compared with rule='trapezoid'", channel_rule]),
        "smoothgrad": Pair(
            "smoothgrad", {"n_samples": n, "noise_level": noise},
            lambda m, b: SmoothGrad(m, batch_size=b, reducer=None, nb_samples=n, noise=noise),
            "sum_abs", "mean", stochastic=True, setting=f"{n} samples, sigma {noise}",
            differences=["xplique's sigma is absolute (noise=0.2), ours is relative to each input's range "
                         "(noise_level x (max - min)); equal for inputs spanning [0, 1]",
                         "xplique returns the signed mean gradient (channel mean); ours the sum over channels "
                         "of its absolute value (the SmoothGrad authors' visualisation)"]),
        "vargrad": Pair(
            "vargrad", {"n_samples": n, "noise_level": noise},
            lambda m, b: VarGrad(m, batch_size=b, reducer=None, nb_samples=n, noise=noise),
            "sum", "mean", stochastic=True, setting=f"{n} samples, sigma {noise}",
            differences=["xplique's variance is unbiased (n / (n - 1)), ours the population variance: "
                         "a constant factor", "sigma: as smoothgrad", channel_rule]),
        "occlusion": Pair(
            "occlusion", {"patch_size": patch, "stride": patch, "baseline": 0.0},
            lambda m, b: Occlusion(m, batch_size=b, patch_size=patch, patch_stride=patch, occlusion_value=0.0),
            "squeeze", "squeeze", forward_rows=n_tiles(height, width, patch) + 1,
            setting=f"{patch}x{patch} patches, stride {patch}, value 0",
            differences=["xplique sums the drops of the patches covering a pixel, ours averages them: equal "
                         "for non-overlapping patches tiling the image (as here)",
                         "xplique places patches only where they fit (an image side not divisible by the "
                         "stride leaves its last pixels unscored); ours clips a last patch at the border"]),
        "gradcam": Pair(
            "gradcam", {"layer": hp["cam_layer"]},
            lambda m, b: GradCAM(m, batch_size=b, conv_layer=hp["cam_layer"]), "squeeze", "squeeze",
            setting=f"layer {hp['cam_layer']}",
            differences=["upsampling: xplique bicubic (per image, tf.map_fn), ours bilinear"]),
        "guided_backprop": Pair(
            "guided_backprop", {}, lambda m, b: GuidedBackprop(m, batch_size=b, reducer=None),
            "sum_abs", "mean", setting="",
            differences=["xplique returns the signed guided gradient (channel mean); ours the sum over "
                         "channels of its absolute value (as Grad)"]),
    }
    out["rise"] = Pair(
        "rise", {"n_masks": masks, "grid": 7, "p": 0.5, "baseline": 0.0},
        lambda m, b: Rise(m, batch_size=b, nb_samples=masks, grid_size=7, preservation_probability=0.5,
                          mask_value=0.0), "squeeze", "squeeze", stochastic=True, forward_rows=masks,
        setting=f"{masks} masks, 7x7 grid, p 0.5, value 0",
        differences=["xplique divides by each pixel's summed mask values, ours by n_masks x p (RISE eq. 6): "
                     "equal in expectation", "xplique upsamples the grid to side x (1 + 1/grid) and crops "
                     "with one random shift per batch of masks, ours to (grid + 1) x ceil(side / grid) with "
                     "a shift per mask (RISE's generator)"])
    # LIME and Kernel SHAP: xplique segments every image (felzenszwalb / quickshift); it is given our
    # tile grid instead (map_to_interpret_space), so both fit coefficients of the same features.
    segment = lambda inp: grid  # noqa: E731
    out["lime"] = Pair(
        "lime", {"n_samples": hp["lime_samples"], "patch": tiles, "distance": "cosine", "kernel_width": 0.25,
                 "ridge": 1.0},
        lambda m, b: Lime(m, batch_size=b, nb_samples=hp["lime_samples"], map_to_interpret_space=segment,
                          ref_value=zeros, similarity_kernel=lime_cosine_kernel(n_features, 0.25),
                          interpretable_model=linear_model.Ridge(alpha=1.0)),
        "squeeze", "squeeze", stochastic=True, forward_rows=hp["lime_samples"],
        setting=f"{hp['lime_samples']} samples, {n_features} tiles of {tiles}x{tiles}, cosine kernel 0.25, ridge 1",
        differences=["xplique's defaults differ (felzenszwalb segments, a euclidean kernel in pixel space "
                     "with width 45, ridge alpha 2, reference 0.5 for RGB): mapped to ours (tile grid, "
                     "lime's cosine kernel sqrt(exp(-d^2 / 0.25^2)) on coalitions, ridge 1, reference 0)",
                     "our first coalition keeps every feature (lime_image), xplique's are all random"])
    out["kernel_shap"] = Pair(
        "kernel_shap", {"n_samples": hp["shap_samples"], "patch": tiles},
        lambda m, b: KernelShap(m, batch_size=b, nb_samples=hp["shap_samples"], map_to_interpret_space=segment,
                                ref_value=zeros),
        "squeeze", "squeeze", stochastic=True, forward_rows=hp["shap_samples"] + 2,
        setting=f"{hp['shap_samples']} coalitions, {n_features} tiles of {tiles}x{tiles}, reference 0",
        differences=["both estimate the Shapley values of the same tiles; xplique fits an unconstrained "
                     "linear regression on coalitions drawn from the Shapley kernel; ours draws them in "
                     "complementary pairs and enforces phi_0 = f(reference) and efficiency exactly (shap's "
                     "KernelExplainer)"])
    return out


def lime_cosine_kernel(n_features: int, width: float):
    """Our LIME weights sqrt(exp(-d^2 / width^2)), d the cosine distance of a coalition to all-ones, in the
    signature of xplique's ``similarity_kernel`` (input, coalitions, perturbed inputs) -> weights."""

    @tf.function
    def kernel(original_input, interpret_samples, perturbed_samples):
        kept = tf.reduce_sum(tf.cast(interpret_samples, tf.float32), axis=1)
        d = tf.where(kept > 0, 1.0 - tf.sqrt(kept / n_features), 1.0)
        return tf.sqrt(tf.exp(-tf.square(d) / width ** 2))

    return kernel


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def forward_floor(model, x, rows: int, batch_size: int) -> float:
    """Time of the model's forward passes alone over ``rows`` rows in batches of ``batch_size`` (one
    tf.function, a tf.while_loop over the batches; one timed call after tracing): what any
    implementation of a forward-only method evaluating that many rows must spend."""
    batch = tf.constant(np.resize(x, (batch_size,) + x.shape[1:]))
    rest = tf.constant(np.resize(x, (rows % batch_size,) + x.shape[1:]))

    @tf.function
    def run(n_batches):
        def body(i, acc):
            return i + 1, acc + tf.reduce_sum(model(batch, training=False))
        total = tf.while_loop(lambda i, _: i < n_batches, body, (tf.constant(0), tf.constant(0.0)))[1]
        return total + tf.reduce_sum(model(rest, training=False)) if rows % batch_size else total

    run(tf.constant(0))  # tracing
    return timed(lambda: run(tf.constant(rows // batch_size)).numpy(), 1)[0]


def build_resnet(input_shape=(64, 64, 3), n_classes: int = 10, seed: int = 0) -> keras.Model:
    """A small ResNet-like (He et al. 2016 basic blocks, BatchNorm, ReLU layers), seeded, untrained."""
    from keras import layers

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input(shape=input_shape, name="x")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
        shortcut = x
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"b{i}_conv1")(x)
        y = layers.BatchNormalization(name=f"b{i}_bn1")(y)
        y = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"b{i}_conv2")(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"b{i}_conv3")(y)
        y = layers.BatchNormalization(name=f"b{i}_bn2")(y)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"b{i}_proj")(shortcut)
        x = layers.ReLU(name=f"b{i}_out")(layers.Add(name=f"b{i}_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, layers.Softmax(name="probs")(x), name="resnet_like_64")


def setups(names, n: int, n_large: int, seed: int):
    """(name, model, inputs, method hyperparameters) for each requested model."""
    for name in names:
        if name == "fashion_mnist":
            model = data.blackbox("fashion_mnist", classes=MEED_CLASSES["fashion_mnist"], verbose=0)
            x = data.load("fashion_mnist", classes=MEED_CLASSES["fashion_mnist"]).x_test[:n]
            hp = {"patch": 7, "tile": 4, "cam_layer": "conv2"}
        elif name == "resnet64":
            model = build_resnet(seed=seed)
            x = np.random.default_rng(seed).uniform(0.0, 1.0, (n_large, 64, 64, 3))
            hp = {"patch": 8, "tile": 8, "cam_layer": "b2_out"}
        else:
            raise ValueError(f"--models: unknown model {name!r}; known: fashion_mnist, resnet64")
        yield name, model, np.asarray(x, np.float32), hp


def run_model(name, model, x, hp, args, our_names) -> list[dict]:
    from xplique.attributions import Saliency  # noqa: F401  (fails early outside the bench env)

    targets = model.predict(x, batch_size=256, verbose=0).argmax(axis=1)
    onehot = tf.one_hot(targets, model.outputs[0].shape[-1])
    hp = {"steps": args.steps, "n_samples": args.n_samples, "noise": args.noise, "n_masks": args.rise_masks,
          "lime_samples": args.lime_samples, "shap_samples": args.shap_samples, **hp}
    mapped = pairs(x.shape[1:], hp)
    rows = []
    for method in args.methods:
        row = {"model": name, "method": method, "n_inputs": len(x), "batch_size": args.batch_size}
        pair = mapped.get(method)
        if method not in our_names or pair is None:
            row["status"] = "not yet" if method not in our_names else "not mapped"
            rows.append(row)
            print(f"[{name}] {method}: {row['status']}", flush=True)
            continue
        try:
            rows.append(compare(name, method, pair, model, x, targets, onehot, args, row))
        except Exception as error:  # a method failing must not lose the others' measurements
            row.update(status="error", error=f"{type(error).__name__}: {error}"[:500])
            rows.append(row)
            print(f"[{name}] {method}: {row['error']}", flush=True)
    return rows


def compare(name, method, pair, model, x, targets, onehot, args, row) -> dict:
    """Time and compare one method on one model (fills and returns ``row``)."""
    x_tf = tf.constant(x)
    ours_hyper = dict(pair.ours, verbose=0)
    if registry.spec(method).accepts("internal_batch_size"):
        ours_hyper["internal_batch_size"] = args.batch_size
    ours = registry.get(method, model, **ours_hyper)
    chunk = min(len(x), args.batch_size)
    xpl = pair.xplique(model, args.batch_size)

    def run_ours():
        return ours.explain(x, targets, batch_size=chunk)

    def run_xplique():
        return np.asarray(xpl.explain(x_tf, onehot))

    tf.random.set_seed(args.seed)
    ours_out = run_ours()           # warm-up (tracing) and the compared output
    xpl_out = run_xplique()
    t_ours, t_xpl = [], []
    for _ in range(args.repeats):   # alternate, so background load hits both sides
        t_ours += timed(run_ours, 1)
        t_xpl += timed(run_xplique, 1)
    r_same, n_same = mean_pearson(ours_out, reduce_channels(xpl_out, pair.reduce_like_ours))
    r_default, _ = mean_pearson(ours_out, reduce_channels(xpl_out, pair.reduce_like_xplique))
    row.update(
        status="ok", setting=pair.setting, ours_hyper={k: v for k, v in ours.get_config().items()},
        ours_chunk=chunk, ours_s=statistics.median(t_ours), xplique_s=statistics.median(t_xpl),
        ours_times=t_ours, xplique_times=t_xpl, r_same_reduction=r_same, r_images=n_same,
        r_xplique_reduction=r_default, stochastic=pair.stochastic, differences=pair.differences,
        per_input_loop=method in PER_INPUT_LOOPS)
    row["ratio"] = row["xplique_s"] / row["ours_s"]
    row["ratio_best"] = min(t_xpl) / min(t_ours)
    if pair.forward_rows:
        row["forward_rows"] = pair.forward_rows * len(x)
        row["forward_floor_s"] = forward_floor(model, x, row["forward_rows"], args.batch_size)
    row["target"] = 2.0 if method in PER_INPUT_LOOPS else 1.0
    if pair.stochastic:
        other = registry.get(method, model, **dict(ours_hyper, seed=args.seed + 1))
        row["r_ours_two_seeds"], _ = mean_pearson(ours_out, other.explain(x, targets, batch_size=chunk))
    print(f"[{name}] {method}: ours {row['ours_s']:.3f} s, xplique {row['xplique_s']:.3f} s, "
          f"ratio {row['ratio']:.2f}x (best of {args.repeats}: {row['ratio_best']:.2f}x)"
          + (f", forward floor {row['forward_floor_s']:.3f} s" if pair.forward_rows else "")
          + f", r {r_same:.4f} (xplique's reduction {r_default:.4f})"
          + (f", ours two seeds {row['r_ours_two_seeds']:.4f}" if pair.stochastic else ""), flush=True)
    return row


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        START,
        f"## Baselines vs xplique (`benchmarks/baselines_vs_xplique.py`, {result['date']})",
        "",
        f"Measured {result['date']} on 2 shared CPU cores (other jobs running; both sides of each ratio "
        f"measured alternately in one process), TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"xplique {result['xplique']} (the `[bench]` environment, see README.md). At most "
        f"{result['batch_size']} rows per forward/backward pass on both sides, median of "
        f"{result['repeats']} timed calls after a warm-up call (best-of ratio: fastest call against fastest "
        "call, less sensitive to the background load). Ratio = xplique time / our time (higher: "
        "ours faster); target >= 2x where xplique loops in Python per input, >= 1x elsewhere. r = mean "
        "per-image Pearson correlation of the two maps (same channel reduction; in brackets with "
        "xplique's own default reduction); for sampled methods, the r of ours with two seeds is the "
        "agreement sampling alone allows. Forward floor: the model's forward passes alone over the rows a "
        "forward-only method evaluates (same batch size), the least any implementation can spend.",
        "",
    ]
    for model in result["models"]:
        n = result["n"][model]
        lines += [f"### {model} ({n} inputs)", "",
                  "| method | ours s | xplique s | ratio | best-of ratio | target | forward floor s "
                  "| r, same reduction (xplique's reduction) | r ours, two seeds | setting |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            if row["model"] != model:
                continue
            if row["status"] != "ok":
                lines.append(f"| {row['method']} | {row['status']} | | | | | | | | |")
                continue
            ok = "met" if row["ratio"] >= row["target"] else "**missed**"
            two = f"{row['r_ours_two_seeds']:.3f}" if row["stochastic"] else ""
            floor = f"{row['forward_floor_s']:.3f}" if "forward_floor_s" in row else ""
            lines.append(
                f"| {row['method']} | {row['ours_s']:.3f} | {row['xplique_s']:.3f} | {row['ratio']:.2f}x | "
                f"{row['ratio_best']:.2f}x | >= {row['target']:.0f}x {ok} | {floor} | "
                f"{row['r_same_reduction']:.4f} ({row['r_xplique_reduction']:.4f}) | {two} | {row['setting']} |")
        lines.append("")
    lines += ["Definition differences (what the r compares):", ""]
    seen = set()
    for row in result["rows"]:
        if row["status"] == "ok" and row["method"] not in seen:
            seen.add(row["method"])
            lines.append(f"- **{row['method']}**: " + "; ".join(row["differences"]) + ".")
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["fashion_mnist", "resnet64"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--n", type=int, default=32, help="Fashion-MNIST inputs explained")
    parser.add_argument("--n-large", type=int, default=16, help="64x64 inputs explained on the ResNet-like")
    parser.add_argument("--batch-size", type=int, default=256, help="max rows per forward/backward pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="integrated gradients steps")
    parser.add_argument("--n-samples", type=int, default=50, help="smoothgrad / vargrad samples")
    parser.add_argument("--noise", type=float, default=0.2, help="smoothgrad / vargrad sigma")
    parser.add_argument("--rise-masks", type=int, default=500, help="RISE masks (the paper: 4000)")
    parser.add_argument("--lime-samples", type=int, default=500, help="LIME coalitions")
    parser.add_argument("--shap-samples", type=int, default=500, help="Kernel SHAP coalitions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--results-md", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    parser.add_argument("--no-markdown", action="store_true", help="write the JSON only")
    parser.add_argument("--markdown-from", metavar="JSON", help="only rewrite the RESULTS.md section from a saved run")
    args = parser.parse_args(argv)
    if args.markdown_from:
        result = json.loads(Path(args.markdown_from).read_text(encoding="utf-8"))
        write_section(Path(args.results_md), SECTION, markdown(result))
        return result

    import xplique

    our_names = set(registry.names("baselines"))
    rows = []
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "xplique": xplique.__version__, "n": {"fashion_mnist": args.n, "resnet64": args.n_large},
        "batch_size": args.batch_size, "repeats": args.repeats, "models": list(args.models), "rows": rows,
        "environment": environment(),
    }
    for name, model, x, hp in setups(args.models, args.n, args.n_large, args.seed):
        rows += run_model(name, model, x, hp, args, our_names)
        # after each model, so an interrupted run keeps what it measured
        atomic_write(Path(args.out) / "baselines_vs_xplique.json", json.dumps(result, indent=2, default=str))
    section = markdown(result)
    print(section)
    if not args.no_markdown:
        write_section(Path(args.results_md), SECTION, section)
    return result


if __name__ == "__main__":
    main()
