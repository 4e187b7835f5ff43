"""``python -m iba.train_readout``: train a Readout Bottleneck on a dataset's black box and export it.

Estimates the statistics of the bottleneck layer and of the readout layers on training images, trains
the readout network with ``fit`` (Adam, the paper's lr 1e-5 and beta 10/k by default; Table 3) on seeded
epoch batches, logs to TensorBoard, checkpoints after every epoch (``--resume`` continues an interrupted
run from its last epoch and gives the weights of an uninterrupted run: eval.training), evaluates the
losses on the test split and exports the SavedModel that ``python -m iba.explain --readout`` reads.
Output (eval.run): ``runs/iba/<dataset>/readout-<run-id>/`` with ``config.json``, ``report.json`` /
``report.md``, ``tensorboard/``, ``checkpoints/``, ``explainer/`` and ``figures/readout.png`` (test
images with their Readout heatmaps in bits per pixel).
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import logging  # noqa: E402 (TensorFlow's start-up messages are hidden first)
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import data  # noqa: E402
from data.blackbox import describe  # noqa: E402
from eval.figures import heatmap_overlay  # noqa: E402
from eval.papers import MEED_CLASSES  # noqa: E402
from eval.report import Column  # noqa: E402
from eval.run import (DeprecatedAlias, Run, cli_parser, comma_list, count, invoke, positive_float,  # noqa: E402
                      print_report, run_main, user_input)
from eval.training import Checkpointer, restore, subset  # noqa: E402
from kernels.validation import check_choice  # noqa: E402

from iba.estimation import RECOMMENDED_SAMPLES  # noqa: E402
from iba.explain import DATASETS, parse_betas  # noqa: E402
from iba.readout import NORMALIZATIONS, PAPER_LEARNING_RATE, TARGETS, ReadoutBottleneck  # noqa: E402

log = logging.getLogger("iba")


def parser():
    p = cli_parser("python -m iba.train_readout", __doc__, shared=("dataset", "seed", "out", "resume", "data_dir",
                                                                   "models_dir", "train_samples", "verbose"),
                   required=("dataset",))
    p.add_argument("--layer", default=None, help="the layer after which the bottleneck sits")
    p.add_argument("--bottleneck-layer", dest="layer", action=DeprecatedAlias, new="--layer",
                   help="deprecated: --layer")
    p.add_argument("--readout-layers", type=comma_list, default=None,
                   help="readout layers, comma-separated (e.g. conv1,conv2,pool)")
    p.add_argument("--layers", dest="readout_layers", type=comma_list, action=DeprecatedAlias, new="--readout-layers",
                   help="deprecated: --readout-layers")
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="original class ids (default: MEED's pair for (fashion_)mnist, whose black box this explains)")
    p.add_argument("--epochs", type=count(1), default=10, help="training epochs (paper: 10)")
    p.add_argument("--batch-size", type=count(1), default=16, help="paper: 16")
    p.add_argument("--lr", type=positive_float, default=PAPER_LEARNING_RATE, help="Adam learning rate (paper: 1e-5)")
    p.add_argument("--beta", default="10/k", help="beta as b/k (paper: 10/k)")
    p.add_argument("--train-targets", default="prediction", choices=TARGETS,
                   help="the class trained on: the model's prediction or the dataset's label")
    p.add_argument("--normalization", default="element", choices=NORMALIZATIONS, help="readout statistics")
    p.add_argument("--no-logits", action="store_true", help="do not read the model's logits")
    p.add_argument("--estimate-samples", type=count(2), default=RECOMMENDED_SAMPLES[0])
    p.add_argument("--k", type=count(1), default=None,
                   help="pixels of the exported top-k mask (default: 10%% of the image's pixels)")
    return p


def validate(args):
    check_choice("--dataset", args.dataset, DATASETS)
    for flag, value in (("--layer", args.layer), ("--readout-layers", args.readout_layers)):
        if not value:
            raise ValueError(f"{flag}: required (e.g. --layer conv2 --readout-layers conv1,conv2,pool)")
    (args.beta_value,) = [value for _, value in parse_betas(args.beta, "--beta")]


def run_id(args) -> str:
    return f"readout-seed{args.seed}-{args.layer}"


def work(args) -> Path:
    """Train, evaluate and export a Readout for the parsed flags; return the run directory."""
    classes = tuple(args.classes) if args.classes else MEED_CLASSES.get(args.dataset)
    run = Run("iba.train_readout", args, default_dir=Path("runs") / "iba" / args.dataset / run_id(args),
              label=run_id(args))
    checkpoints = run.path("checkpoints")
    if not args.resume and checkpoints.exists():
        shutil.rmtree(checkpoints)  # a fresh run must not pick up an older run's state
    with run.phase("data", f"{args.dataset} and its black box"):
        ds = data.load(args.dataset, classes=classes, data_dir=args.data_dir)
        model = data.blackbox(args.dataset, classes=classes, models_dir=args.models_dir, data_dir=args.data_dir,
                              verbose=0)
    log.info(describe(model))
    x_train, y_train = subset((ds.x_train, ds.y_train), args.train_samples, args.seed)
    with user_input("--readout-layers"):
        readout = ReadoutBottleneck(model, args.layer, args.readout_layers, beta=args.beta_value,
                                    train_targets=args.train_targets, normalization=args.normalization,
                                    read_logits=not args.no_logits, seed=args.seed)
    with run.phase("estimate", f"feature statistics on {min(args.estimate_samples, len(ds.x_train))} training images"):
        readout.estimate(ds.x_train[: args.estimate_samples], verbose=0)
    readout.compile(keras.optimizers.Adam(args.lr))
    first_epoch = restore(readout, checkpoints) if args.resume else 0
    if args.resume and not first_epoch:
        log.warning("--resume: no checkpoint in %s yet; training from epoch 0", checkpoints)
    callbacks = [Checkpointer(checkpoints), keras.callbacks.TensorBoard(str(run.path("tensorboard")))]
    history = {}
    what = f"epochs {first_epoch + 1}-{args.epochs} on {len(x_train)} images, batch {args.batch_size}"
    with run.phase("train", what):
        if first_epoch < args.epochs:
            history = readout.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                                  initial_epoch=first_epoch, validation_data=(ds.x_val, ds.y_val), callbacks=callbacks,
                                  verbose=run.keras_verbose).history
    with run.phase("test", "losses on the test split"):
        test = readout.evaluate(ds.x_test.astype(np.float32), ds.y_test.astype(np.int32), batch_size=args.batch_size,
                                verbose=0, return_dict=True)
    k = args.k or max(1, int(0.1 * np.prod(readout.input_shape_[:2])))
    with run.phase("export", f"the explainer as a SavedModel (mask: the top {k} pixels)"):
        readout.export(run.path("explainer"), k=k)
    x_show = ds.x_test[:8].astype(np.float32)
    heat = readout.explain(x_show, verbose=0)
    heatmap_overlay(x_show, heat, run.path("figures/readout.png"), colorbar_label="bits per pixel")
    row = {"label": "IBA Readout", "seed": args.seed, **{f"test {name}": float(v) for name, v in test.items()},
           "mean bits (8 test images)": float(heat.sum(axis=(1, 2)).mean())}
    columns = {name: Column("number", None, f"{name} of the Readout's training objective") for name in row
               if name.startswith("test ")}
    return run.finish([row], title=f"Readout Bottleneck on {args.dataset} ({run_id(args)})", columns=columns, config={
        "feature_shape": list(readout.feature_shape), "k_elements": int(np.prod(readout.feature_shape)),
        "export_k": k, "estimate_samples_used": readout.n_samples, "n_train": len(x_train), "classes": classes,
        "blackbox": getattr(model, "blackbox_info", None)},
        details={"history": {name: [float(v) for v in values] for name, values in history.items()},
                 "epochs_before_resume": first_epoch})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(dataset="fashion_mnist", layer="conv2",
    readout_layers=["conv1", "conv2"], epochs=1)``; returns the run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
