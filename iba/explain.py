"""``python -m iba.explain``: Per-Sample IBA and baselines on a dataset's black box, with the paper's metrics.

Loads the data (data.load) and the cached black box (data.blackbox), and compares, through the shared
harness (eval.harness) and the IBA suite (eval.suites.IBASuite): the Per-Sample Bottleneck at each beta
(``--betas``, written as b/k: the paper's beta with the capacity summed over the k = h w c elements,
which is ``beta=b`` with our mean capacity; its statistics are fitted on ``--estimate-samples``
training images), a trained Readout Bottleneck (``--readout``, a SavedModel written by
``iba.train_readout``) and the named baselines of the registry. For each method, on the first
``--test-samples`` test images (Schulz et al., ICLR 2020, Section 4 and Table 1):

- degradation: the area between the LeRF and MoRF curves for two tile sizes that are the same share of
  the image side as the paper's 8 and 14 px at 224 px (1 and 2 px at 28 px; 2 and 4 px at 64 px);
- Sensitivity-n (logit drop, masked tiles set to 0) with the smaller tile: the mean correlation over
  the 16 log-spaced n, pooled over images x tile sets (the paper code) and per image (the paper's
  text; pooling lets differences between images enter), and both curves in report.json;
- the bounding-box ratio, when the dataset has boxes (the localisation set);
- the cascading randomisation sanity check (Section 4.3, App. G.1) on the first ``--sanity-n`` images:
  SSIM between the heatmaps of the trained model and those after re-initialising the top layer, and
  all layers (low = the method depends on the weights); IBA re-fits its statistics on each randomised
  model; the Readout, trained for the original model, is not re-trained and has no score;
- the time per heatmap.

Writes ``report.json``, ``report.md``, ``heatmaps.npz`` and ``figures/`` (image + heatmap with a colour
bar in bits per pixel, the paper's Figure 1; one PNG per method) to ``runs/iba/<dataset>/<run-id>/``.
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import io  # noqa: E402 (TensorFlow's start-up messages are hidden first)
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import data  # noqa: E402
from data.blackbox import describe  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval import harness, registry  # noqa: E402
from eval.figures import heatmap_overlay  # noqa: E402
from eval.papers import MEED_CLASSES  # noqa: E402
from eval.report import Column  # noqa: E402
from eval.run import (DeprecatedAlias, Run, UsageError, cli_parser, comma_list, count, invoke,  # noqa: E402
                      print_report, run_main, user_input)
from eval.saved import load_explainer  # noqa: E402
from eval.suites import IBASuite  # noqa: E402

from iba.estimation import RECOMMENDED_SAMPLES  # noqa: E402
from iba.split import split_model  # noqa: E402

log = logging.getLogger("iba")

DATASETS = ("fashion_mnist", "mnist", "localization")
DEFAULT_METHODS = "gradient,saliency,smoothgrad,integrated_gradients,gradcam,occlusion,random"
#: The paper's tile sizes (Table 1) and the image side they refer to.
PAPER_TILES, PAPER_SIDE = (8, 14), 224
BITS = Column("number", None, "mean over the images of a heatmap's total bits (IBA's information bound)")


def tile_sizes(side: int) -> tuple[int, int]:
    """The paper's 8 and 14 px at 224 px as the same share of ``side`` (rounded, at least 1 px)."""
    return tuple(max(1, round(t * side / PAPER_SIDE)) for t in PAPER_TILES)


def parse_betas(text: str, flag: str = "--betas") -> list[tuple[str, float]]:
    """'1/k,10/k,100/k' -> [('1/k', 1.0), ...]: b/k is the paper's notation for beta=b on the mean capacity."""
    betas = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        number = item[:-2] if item.endswith("/k") else None
        try:
            value = float(number if number is not None else item)
        except ValueError:
            raise ValueError(f"{flag}: expected values like 10/k, got {item!r}") from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{flag}: expected beta >= 0, got {item!r}")
        if number is None:
            raise ValueError(f"{flag}: write beta as b/k (the paper's notation, k = h*w*c), got {item!r}")
        betas.append((f"{number}/k", value))
    if not betas:
        raise ValueError(f"{flag}: expected at least one value, got {text!r}")
    return betas


def parser():
    p = cli_parser("python -m iba.explain", __doc__, shared=("dataset", "seed", "out", "data_dir", "models_dir",
                                                             "test_samples", "verbose"), required=("dataset",))
    p.set_defaults(test_samples=100)
    p.add_argument("--n", dest="test_samples", type=count(1), action=DeprecatedAlias, new="--test-samples",
                   help="deprecated: --test-samples")
    p.add_argument("--layer", required=True, help="the black box's layer after which the bottleneck sits")
    p.add_argument("--beta", default=None, help="one beta, b/k (shortcut for --betas)")
    p.add_argument("--betas", default="1/k,10/k,100/k", help="Per-Sample betas as b/k (default: the paper's)")
    p.add_argument("--methods", type=comma_list, default=comma_list(DEFAULT_METHODS),
                   help="registered baselines, comma-separated ('' for none)")
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="original class ids (default: MEED's pair for (fashion_)mnist, whose black box this explains)")
    p.add_argument("--estimate-samples", type=count(2), default=RECOMMENDED_SAMPLES[0],
                   help="training images for the feature statistics")
    p.add_argument("--steps", type=count(0), default=10, help="Per-Sample Adam steps (paper: 10)")
    p.add_argument("--tiles", default=None,
                   help="two tile sizes in px, e.g. 2,4 (default: the paper's 8 and 14 px at 224 px, scaled)")
    p.add_argument("--n-masks", type=count(1), default=100, help="Sensitivity-n masks per n (paper: 100)")
    p.add_argument("--sanity-n", type=count(0), default=20,
                   help="images for the cascading randomisation test (0 skips it)")
    p.add_argument("--readout", default=None, help="a Readout SavedModel (iba.train_readout's explainer/)")
    p.add_argument("--batch-size", type=count(1), default=64, help="images per model call of the metrics and baselines")
    return p


def validate(args):
    if args.dataset not in DATASETS:
        raise UsageError(f"--dataset: unknown value {args.dataset!r}; expected one of {list(DATASETS)}")
    if args.tiles is not None:
        try:
            args.tiles = tuple(int(t) for t in args.tiles.split(","))
        except ValueError:
            raise UsageError(f"--tiles: expected two ints like 2,4, got {args.tiles!r}") from None
        if len(args.tiles) != 2 or min(args.tiles) < 1:
            raise UsageError(f"--tiles: expected two tile sizes >= 1, got {args.tiles}")
    args.beta_list = parse_betas(args.beta, "--beta") if args.beta is not None else parse_betas(args.betas)
    with user_input("--methods"):
        for name in args.methods:
            registry.spec(name)
    if args.readout is not None and not (Path(args.readout) / "saved_model.pb").is_file():
        raise UsageError(f"--readout: {args.readout} is not a SavedModel directory (iba.train_readout writes one "
                         f"into <run>/explainer)")


def run_id(args) -> str:
    return f"seed{args.seed}-{args.layer}"


def file_name(method: str) -> str:
    """A method's row name as a file / npz key: 'IBA Per-Sample beta=10/k' -> 'IBA_Per-Sample_beta=10_k'."""
    return "".join(c if c.isalnum() or c in "-=." else "_" for c in method)


def candidates(args, x_fit, tile: int) -> list[harness.Candidate]:
    """The compared methods: Per-Sample IBA per beta, the Readout, the baselines (module docstring)."""
    found = [harness.registry_candidate("iba", label=f"IBA Per-Sample beta={label}",
                                        hyper={"layer": args.layer, "beta": beta, "steps": args.steps},
                                        fit_args=(x_fit,), fit_kwargs={"verbose": 0})
             for label, beta in args.beta_list]
    if args.readout:
        found.append(harness.Candidate("IBA Readout", lambda model, seed: load_explainer(args.readout,
                                       batch_size=args.batch_size), sanity=False, config={"readout": args.readout}))
    for name in args.methods:
        method = registry.spec(name).name
        hyper = {"batch_size": args.batch_size, "verbose": 0}
        if method == "occlusion":
            hyper["patch_size"] = tile
        found.append(harness.registry_candidate(method, label=f"occlusion-{tile}x{tile}" if method == "occlusion"
                                                else method, hyper=hyper))
    return found


def _npz(arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def work(args) -> Path:
    """Explain, evaluate, and write the run directory for the parsed flags; returns it."""
    classes = tuple(args.classes) if args.classes else MEED_CLASSES.get(args.dataset)
    run_ = Run("iba.explain", args, default_dir=Path("runs") / "iba" / args.dataset / run_id(args), label=run_id(args))
    with run_.phase("data", f"{args.dataset} and its black box"):
        ds = data.load(args.dataset, classes=classes, data_dir=args.data_dir)
        model = data.blackbox(args.dataset, classes=classes, models_dir=args.models_dir, data_dir=args.data_dir,
                              verbose=0)
    log.info(describe(model))
    with user_input("--layer"):
        feature_shape = split_model(model, args.layer).feature_shape
    x = ds.x_test[: args.test_samples].astype(np.float32)
    targets = model.predict(x, batch_size=args.batch_size, verbose=0).argmax(axis=1)
    tiles = args.tiles or tile_sizes(x.shape[1])
    suite = IBASuite(model, x, targets, tiles=tiles, boxes=ds.boxes["test"][: args.test_samples] if ds.boxes else None,
                     n_masks=args.n_masks, seed=args.seed, sanity_n=args.sanity_n, batch_size=args.batch_size)
    rows, details, heatmaps = [], {}, {}
    units = {}

    def record(evaluation):
        scores = evaluation.outputs["scores"]
        row = evaluation.row()
        if evaluation.label.startswith("IBA"):
            row["mean bits"] = float(np.mean(scores.sum(axis=(1, 2))))
            units[evaluation.label] = "bits per pixel"
        rows.append(row)
        details[evaluation.label] = {"config": evaluation.config, **evaluation.details}
        heatmaps[evaluation.label] = scores
        heatmap_overlay(x[:8], scores[:8], run_.path(f"figures/{file_name(evaluation.label)}.png"),
                        colorbar_label=units.get(evaluation.label, "score"),
                        titles=[ds.class_names[t] for t in targets[:8]])
        for key, seconds in evaluation.timings.items():
            run_.timings[f"{evaluation.label}: {key}"] = seconds

    with run_.phase("methods", f"{len(x)} test images, tiles {tiles}, sanity check on {min(args.sanity_n, len(x))}"):
        harness.evaluate(suite, candidates(args, ds.x_train[: args.estimate_samples], tiles[0]), seeds=(args.seed,),
                         on_result=record)
    atomic_write(run_.path("heatmaps.npz"), _npz({"images": x, "targets": targets,
                                                  **{file_name(name): h for name, h in heatmaps.items()}}))
    return run_.finish(rows, title=f"IBA on {args.dataset} ({run_id(args)})",
                       columns={**suite.columns(), "mean bits": BITS},
                       details=details, config={
                           "betas": [label for label, _ in args.beta_list], "tiles": list(tiles),
                           "feature_shape": list(feature_shape), "k": int(np.prod(feature_shape)),
                           "classes": classes, "n_test": len(x), "data_source": ds.source,
                           "blackbox": getattr(model, "blackbox_info", None), "class_names": list(ds.class_names)})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(dataset="localization", layer="conv3",
    test_samples=10)``; returns the run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
