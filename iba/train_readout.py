"""``python -m iba.train_readout``: train a Readout Bottleneck on a dataset's black box and export it.

Estimates the statistics of the bottleneck layer and of the readout layers on training images, trains
the readout network with ``fit`` (Adam, the paper's lr 1e-5 and beta 10/k by default; Table 3), logs to
TensorBoard, checkpoints after every epoch (``--resume`` continues an interrupted run from its last
epoch), evaluates the losses on the validation split and exports the SavedModel that
``python -m iba.explain --readout`` reads. Output: ``runs/iba/<dataset>/readout-<run-id>/`` with
``config.json``, ``report.json`` / ``report.md``, ``tensorboard/``, ``checkpoints/``, ``explainer/`` and
``figures/readout.png`` (test images with their Readout heatmaps in bits per pixel).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import data
from data.blackbox import DEFAULT_CLASSES, describe
from data.io import atomic_write
from eval.figures import heatmap_overlay
from eval.report import write_report
from kernels.validation import check_choice, check_int, check_positive

from iba.explain import DATASETS
from iba.inputs import RECOMMENDED_SAMPLES
from iba.readout import PAPER_LEARNING_RATE, TARGETS, ReadoutBottleneck

log = logging.getLogger("iba")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m iba.train_readout", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help=f"one of {list(DATASETS)}")
    parser.add_argument("--layers", required=True, help="readout layers, comma-separated (e.g. conv1,conv2,pool)")
    parser.add_argument("--bottleneck-layer", required=True, help="the layer after which the bottleneck sits")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (paper: 10)")
    parser.add_argument("--batch-size", type=int, default=16, help="paper: 16")
    parser.add_argument("--lr", type=float, default=PAPER_LEARNING_RATE, help="Adam learning rate (paper: 1e-5)")
    parser.add_argument("--beta", type=float, default=10.0, help="b of beta = b/k (paper: 10)")
    parser.add_argument("--targets", default="prediction", help=f"one of {list(TARGETS)}")
    parser.add_argument("--normalization", default="element", help="readout statistics: element or channel")
    parser.add_argument("--no-logits", action="store_true", help="do not read the model's logits")
    parser.add_argument("--train-samples", type=int, default=None, help="use the first N training images")
    parser.add_argument("--estimate-samples", type=int, default=RECOMMENDED_SAMPLES[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--out", default=None, help="run directory (default runs/iba/<dataset>/readout-<run-id>)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--verbose", type=int, default=1 if sys.stdout.isatty() else 2)
    args = parser.parse_args(argv)
    check_choice("--dataset", args.dataset, DATASETS)
    check_choice("--targets", args.targets, TARGETS)
    check_int("--epochs", args.epochs, minimum=1)
    check_int("--batch-size", args.batch_size, minimum=1)
    check_positive("--lr", args.lr)
    args.layer_list = [name.strip() for name in args.layers.split(",") if name.strip()]
    return args


def run_id(args) -> str:
    return f"readout-seed{args.seed}-{args.bottleneck_layer}"


def train(args) -> Path:
    run_dir = Path(args.out) if args.out else Path("runs") / "iba" / args.dataset / run_id(args)
    checkpoints = run_dir / "checkpoints"
    if not args.resume and checkpoints.exists():
        shutil.rmtree(checkpoints)  # a fresh run must not pick up an older run's state
    classes = DEFAULT_CLASSES.get(args.dataset)
    ds = data.load(args.dataset, classes=classes, data_dir=args.data_dir)
    model = data.blackbox(args.dataset, classes=classes, models_dir=args.models_dir, data_dir=args.data_dir,
                          verbose=0)
    log.info(describe(model))
    x_train, y_train = ds.x_train[: args.train_samples], ds.y_train[: args.train_samples]
    keras.utils.set_random_seed(args.seed)
    readout = ReadoutBottleneck(model, args.bottleneck_layer, args.layer_list, beta=args.beta,
                                targets=args.targets, normalization=args.normalization,
                                read_logits=not args.no_logits, seed=args.seed)
    timings = {}
    start = time.perf_counter()
    readout.estimate(ds.x_train[: args.estimate_samples], verbose=0)
    timings["estimate"] = time.perf_counter() - start
    readout.compile(keras.optimizers.Adam(args.lr))

    def batches(x, y, shuffle):
        dataset = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.int32)))
        if shuffle:
            dataset = dataset.shuffle(len(x), seed=args.seed, reshuffle_each_iteration=True)
        return dataset.batch(args.batch_size).prefetch(2)

    callbacks = [
        keras.callbacks.BackupAndRestore(str(checkpoints / "latest"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "epoch{epoch:03d}.weights.h5"), save_weights_only=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
    ]
    start = time.perf_counter()
    history = readout.fit(batches(x_train, y_train, True), validation_data=batches(ds.x_val, ds.y_val, False),
                          epochs=args.epochs, callbacks=callbacks, verbose=args.verbose, shuffle=False)
    timings["train"] = time.perf_counter() - start
    test = readout.evaluate(batches(ds.x_test, ds.y_test, False), verbose=0, return_dict=True)
    readout.export(run_dir / "explainer")
    x_show = ds.x_test[:8].astype(np.float32)
    heat = readout.explain(x_show, verbose=0)
    heatmap_overlay(x_show, heat, run_dir / "figures" / "readout.png", colorbar_label="bits per pixel")

    config = {k: v for k, v in vars(args).items() if k != "layer_list"}
    config.update(layers=args.layer_list, feature_shape=list(readout.feature_shape),
                  k=int(np.prod(readout.feature_shape)), estimate_samples_used=readout.n_samples,
                  n_train=len(x_train), blackbox=getattr(model, "blackbox_info", None))
    atomic_write(run_dir / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    metrics = {f"test {k}": float(v) for k, v in test.items()}
    metrics["mean bits (8 test images)"] = float(heat.sum(axis=(1, 2)).mean())
    write_report(run_dir, config=config, metrics=metrics, seed=args.seed, timings=timings,
                 extra={"history": {k: [float(v) for v in vs] for k, vs in history.history.items()}})
    return run_dir


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    run_dir = train(parse_args(argv))
    print((run_dir / "report.md").read_text())
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
