"""``python -m iba.explain``: Per-Sample IBA and baselines on a dataset's black box, with the paper's metrics.

Loads the data (data.load) and the cached black box (data.blackbox), estimates the bottleneck's
statistics on training images, explains ``--n`` test images with the Per-Sample Bottleneck at each beta
(``--betas``, written as b/k: the paper's beta with the capacity summed over the k = h w c elements,
which is ``beta=b`` with our mean capacity), with a trained Readout Bottleneck (``--readout``, a
SavedModel written by ``iba.train_readout``) and with the named baselines, then measures for each
method (Schulz et al., ICLR 2020, Section 4 and Table 1):

- degradation: the area between the LeRF and MoRF curves for two tile sizes that are the same share of
  the image side as the paper's 8 and 14 px at 224 px (1 and 2 px at 28 px; 2 and 4 px at 64 px);
- Sensitivity-n (logit drop, masked tiles set to 0) with the smaller tile: the mean correlation over
  the 16 log-spaced n, pooled over images x tile sets (the paper code) and per image (the paper's
  text; pooling lets differences between images enter), and both curves in report.json;
- the bounding-box ratio, when the dataset has boxes (the localisation set);
- the cascading randomisation sanity check (Section 4.3, App. G.1) on the first ``--sanity-n`` images:
  SSIM between the heatmaps of the trained model and those after re-initialising the top layer, and
  all layers (low = the method depends on the weights); IBA re-estimates its statistics on each
  randomised model; the Readout, trained for the original model, is not re-trained and has no score;
- the time per heatmap.

Writes ``report.json``, ``report.md``, ``heatmaps.npz`` and ``figures/`` (image + heatmap with a colour
bar in bits per pixel, the paper's Figure 1; one PNG per method) to ``runs/iba/<dataset>/<run-id>/``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import baselines
import data
from data.blackbox import DEFAULT_CLASSES, describe
from data.io import atomic_write
from eval.cascading import cascading_randomization
from eval.degradation import degradation
from eval.figures import heatmap_overlay
from eval.localization import bbox_ratio_summary
from eval.report import write_report
from eval.sensitivity_n import sensitivity_n
from kernels.validation import check_choice, check_int

from iba.inputs import RECOMMENDED_SAMPLES
from iba.per_sample import InformationBottleneck

log = logging.getLogger("iba")

DATASETS = ("fashion_mnist", "localization")
DEFAULT_METHODS = "gradient,saliency,smoothgrad,integrated_gradients,gradcam,occlusion,random"
#: The paper's tile sizes (Table 1) and the image side they refer to.
PAPER_TILES, PAPER_SIDE = (8, 14), 224
#: Baselines whose hyper-parameters take the run's seed.
SEEDED = ("smoothgrad", "random", "vargrad", "centered_gaussian")


def tile_sizes(side: int) -> tuple[int, int]:
    """The paper's 8 and 14 px at 224 px as the same share of ``side`` (rounded, at least 1 px)."""
    return tuple(max(1, round(t * side / PAPER_SIDE)) for t in PAPER_TILES)


def parse_betas(text: str) -> list[tuple[str, float]]:
    """'1/k,10/k,100/k' -> [('1/k', 1.0), ...]: b/k is the paper's notation for beta=b on the mean capacity."""
    betas = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        number = item[:-2] if item.endswith("/k") else None
        try:
            value = float(number if number is not None else item)
        except ValueError:
            raise ValueError(f"--betas: expected values like 10/k, got {item!r}") from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"--betas: expected beta >= 0, got {item!r}")
        if number is None:
            raise ValueError(f"--betas: write beta as b/k (the paper's notation, k = h*w*c), got {item!r}")
        betas.append((f"{number}/k", value))
    if not betas:
        raise ValueError(f"--betas: expected at least one value, got {text!r}")
    return betas


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m iba.explain", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help=f"one of {list(DATASETS)}")
    parser.add_argument("--layer", required=True, help="the black box's layer after which the bottleneck sits")
    parser.add_argument("--beta", default=None, help="one beta, b/k (shortcut for --betas)")
    parser.add_argument("--betas", default="1/k,10/k,100/k", help="Per-Sample betas as b/k (default: the paper's)")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="baselines, comma-separated ('' for none)")
    parser.add_argument("--n", type=int, default=100, help="test images to explain")
    parser.add_argument("--estimate-samples", type=int, default=RECOMMENDED_SAMPLES[0],
                        help="training images for the feature statistics")
    parser.add_argument("--steps", type=int, default=10, help="Per-Sample Adam steps (paper: 10)")
    parser.add_argument("--tiles", default=None,
                        help="two tile sizes in px, e.g. 2,4 (default: the paper's 8 and 14 px at 224 px, scaled)")
    parser.add_argument("--n-masks", type=int, default=100, help="Sensitivity-n masks per n (paper: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the bottleneck noise, the noisy baselines and "
                        "the Sensitivity-n masks")
    parser.add_argument("--sanity-n", type=int, default=20,
                        help="images for the cascading randomisation test (0 skips it)")
    parser.add_argument("--readout", default=None, help="a Readout SavedModel (iba.train_readout's explainer/)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=None, help="run directory (default runs/iba/<dataset>/<run-id>)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models-dir", default=None)
    args = parser.parse_args(argv)
    check_choice("--dataset", args.dataset, DATASETS)
    check_int("--n", args.n, minimum=1)
    check_int("--estimate-samples", args.estimate_samples, minimum=2)
    check_int("--sanity-n", args.sanity_n, minimum=0)
    if args.tiles is not None:
        try:
            args.tiles = tuple(int(t) for t in args.tiles.split(","))
        except ValueError:
            raise ValueError(f"--tiles: expected two ints like 2,4, got {args.tiles!r}") from None
        if len(args.tiles) != 2 or min(args.tiles) < 1:
            raise ValueError(f"--tiles: expected two tile sizes >= 1, got {args.tiles}")
    args.beta_list = parse_betas(args.beta if args.beta is not None else args.betas)
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name in args.method_list:
        check_choice("--methods", baselines.ALIASES.get(name, name), baselines.names())
    return args


def run_id(args) -> str:
    return f"seed{args.seed}-{args.layer}"


def _baseline(name, model, args, tile):
    key = baselines.ALIASES.get(name, name)
    hyper = {"batch_size": args.batch_size, "verbose": 0}
    if key in SEEDED:
        hyper["seed"] = args.seed
    if key == "occlusion":
        hyper["patch_size"] = tile
    return f"occlusion-{tile}x{tile}" if key == "occlusion" else key, baselines.get(key, model, **hyper)


def _readout_explainer(path):
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda x: served(x=tf.constant(x, tf.float32))["heatmap"].numpy()


def _timed(fn):
    out, seconds = _timed_result(fn)
    return np.asarray(out, np.float32), seconds


def _timed_result(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def evaluate_scores(model, x, scores, targets, tiles, boxes, args) -> dict:
    """The paper's metrics of one method's heatmaps (N, H, W)."""
    row = {}
    for tile in tiles:
        result = degradation(model, x, scores, targets, tile=tile, batch_size=args.batch_size)
        row[f"degradation {tile}x{tile}"] = result.area
        row[f"_degradation_{tile}"] = result.to_dict()
    sens = sensitivity_n(model, x, scores, targets, tile=tiles[0], n_masks=args.n_masks, seed=args.seed,
                         batch_size=args.batch_size)
    summary = sens.to_dict()
    per_image = sens.correlation_as("per_image")
    summary["per_image_correlation"] = per_image.tolist()
    row["sensitivity-n (pooled)"] = summary["mean_correlation"]
    row["sensitivity-n (per image)"] = float(np.nanmean(per_image)) if np.isfinite(per_image).any() else float("nan")
    row["_sensitivity_n"] = summary
    if boxes is not None:
        bbox = bbox_ratio_summary(scores, boxes)
        row["bbox ratio"] = bbox["mean"]
        row["_bbox"] = bbox
    return row


def run(args) -> Path:
    """Explain, evaluate, and write the run directory; returns it."""
    run_dir = Path(args.out) if args.out else Path("runs") / "iba" / args.dataset / run_id(args)
    classes = DEFAULT_CLASSES.get(args.dataset)
    ds = data.load(args.dataset, classes=classes, data_dir=args.data_dir)
    model = data.blackbox(args.dataset, classes=classes, models_dir=args.models_dir, data_dir=args.data_dir,
                          verbose=0)
    log.info(describe(model))
    x = ds.x_test[: args.n].astype(np.float32)
    targets = model.predict(x, batch_size=args.batch_size, verbose=0).argmax(axis=1)
    boxes = ds.boxes["test"][: args.n] if ds.boxes else None
    tiles = args.tiles or tile_sizes(x.shape[1])
    timings, heatmaps, rows = {}, {}, []

    ib = InformationBottleneck(model, args.layer, steps=args.steps, seed=args.seed)
    start = time.perf_counter()
    ib.estimate(ds.x_train[: args.estimate_samples], verbose=0)
    timings["estimate"] = time.perf_counter() - start
    k = int(np.prod(ib.feature_shape))
    methods = []
    last = {"model": None, "bottleneck": None}  # the sanity check's bottleneck for the model it was last given

    def bottleneck_on(other):
        # cascading_randomization passes the original model, then one working copy whose weights change in
        # place: one bottleneck per model object keeps its traced functions across the cascade.
        if last["model"] is not other:
            last["model"] = other
            last["bottleneck"] = InformationBottleneck(other, args.layer, steps=args.steps, seed=args.seed)
        return last["bottleneck"]

    # (row name, heatmaps of x, unit, explain_fn(model, x, targets) for the sanity check or None)
    for label, beta in args.beta_list:
        def explain_beta(beta=beta):
            ib.beta = beta
            return ib.explain(x, targets, image_batch=16, verbose=0)

        def explain_beta_on(other, images, labels, beta=beta):  # re-estimated for the current weights
            bottleneck = bottleneck_on(other)
            bottleneck.beta = beta
            bottleneck.estimate(ds.x_train[: args.estimate_samples], verbose=0)
            return bottleneck.explain(images, labels, image_batch=16, verbose=0)
        methods.append((f"IBA Per-Sample beta={label}", explain_beta, "bits per pixel", explain_beta_on))
    if args.readout:
        readout = _readout_explainer(args.readout)
        methods.append(("IBA Readout", lambda: np.concatenate(
            [readout(x[i:i + args.batch_size]) for i in range(0, len(x), args.batch_size)]), "bits per pixel",
            None))
    for name in args.method_list:
        row_name, explainer = _baseline(name, model, args, tiles[0])
        methods.append((row_name, lambda e=explainer: e.explain(x, targets, batch_size=args.batch_size), "score",
                        lambda other, images, labels, name=name: _baseline(name, other, args, tiles[0])[1].explain(
                            images, labels, batch_size=args.batch_size)))

    details = {}
    for name, fn, unit, explain_on in methods:
        log.info("explaining %d images with %s", len(x), name)
        scores, seconds = _timed(fn)
        heatmaps[name] = scores
        timings[f"explain {name}"] = seconds
        metrics = evaluate_scores(model, x, scores, targets, tiles, boxes, args)
        row = {"method": name, **{key: v for key, v in metrics.items() if not key.startswith("_")},
               "seconds per image": seconds / len(x)}
        if unit == "bits per pixel":
            row["mean bits"] = float(np.mean(heatmaps[name].sum(axis=(1, 2))))
        details[name] = {key.lstrip("_"): v for key, v in metrics.items() if key.startswith("_")}
        if args.sanity_n and explain_on is not None:
            log.info("cascading randomisation of %s on %d images", name, min(args.sanity_n, len(x)))
            cascade, seconds = _timed_result(lambda: cascading_randomization(
                model, explain_on, x[: args.sanity_n], targets[: args.sanity_n], seed=args.seed))
            row["SSIM, top layer random"] = float(cascade.ssim[1])
            row["SSIM, all layers random"] = float(cascade.ssim[-1])
            details[name]["cascading_randomization"] = cascade.to_dict()
            timings[f"sanity {name}"] = seconds
        rows.append(row)
        heatmap_overlay(x[:8], scores[:8], run_dir / "figures" / f"{file_name(name)}.png", colorbar_label=unit,
                        titles=[ds.class_names[t] for t in targets[:8]])

    buffer = _npz({"images": x, "targets": targets, **{file_name(name): h for name, h in heatmaps.items()}})
    atomic_write(run_dir / "heatmaps.npz", buffer)
    config = {k_: v for k_, v in vars(args).items() if k_ not in ("beta_list", "method_list")}
    config.update(betas=[label for label, _ in args.beta_list], methods=args.method_list, tiles=list(tiles),
                  feature_shape=list(ib.feature_shape), k=k, estimate_samples_used=ib.n_samples,
                  blackbox=getattr(model, "blackbox_info", None), class_names=list(ds.class_names))
    write_report(run_dir, config=config, metrics={row["method"]: row for row in rows}, seed=args.seed,
                 timings=timings, extra={"details": details}, table=rows)
    atomic_write(run_dir / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    return run_dir


def file_name(method: str) -> str:
    """A method's row name as a file / npz key: 'IBA Per-Sample beta=10/k' -> 'IBA_Per-Sample_beta=10_k'."""
    return "".join(c if c.isalnum() or c in "-=." else "_" for c in method)


def _npz(arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    run_dir = run(args)
    print((run_dir / "report.md").read_text())
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
