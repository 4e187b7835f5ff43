"""Train and evaluate MEED for one preset: ``python -m meed.train --preset fashion_mnist``.

Gets the data and the cached black box, trains the explainer with ``fit`` (progress bar, TensorBoard,
a checkpoint per epoch, ``--resume``), evaluates it on the test split (FS-M, FU-M, FS-A, FU-A, SEN, TPS)
and writes the run directory:

    runs/meed/<preset>/<run-id>/  config.json  report.json  report.md  figures/  tensorboard/
                                  checkpoints/  explainer/ (SavedModel, serving_default takes raw x)
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import tensorflow as tf
import keras

import data
from data.io import atomic_write
from data.models import mobilenet_weights
from eval.figures import masked_grid
from eval.report import write_report
from meed import presets
from meed.builder import build
from meed.evaluate import evaluate
from meed.training import Checkpointer, FidelityMonitor, epoch_batches, evaluation_steps, restore, training_subset

log = logging.getLogger("meed")

PAPER_TABLES = {  # MEED "Ours" rows (Tables 1, 3, 4, 5): fidelities in %, SEN in % (IMDB: no SEN).
    "fashion_mnist": {"FS-M": 97.80, "FU-M": 66.65, "FS-A": 99.80, "FU-A": 99.65, "SEN": 0.70},
    "fashion_mnist_swd": {"FS-M": 97.80, "FU-M": 66.65, "FS-A": 99.80, "FU-A": 99.65, "SEN": 0.70},
    "mnist": {"FS-M": 99.04, "FU-M": 74.70, "FS-A": 99.80, "FU-A": 99.70, "SEN": 6.11},
    "imdb": {"FS-M": 98.48, "FU-M": 59.05, "FS-A": 98.70, "FU-A": 81.83},
    "imagenet": {"FS-M": 83.0, "FU-M": 98.0, "FS-A": 90.0, "FU-A": 93.0, "SEN": 39.91},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meed.train", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", required=True, help=f"one of {sorted(presets.PRESETS)}")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--legacy", action="store_true", help="reproduce the released code's quirks")
    parser.add_argument("--ablation", choices=sorted(presets.ABLATIONS), default=None)
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--out", default=None, help="run directory (default runs/meed/<preset>/<run-id>)")
    parser.add_argument("--train-samples", type=int, default=None, help="a seeded subset of the training data")
    parser.add_argument("--eval-epochs", type=int, default=None,
                        help="epochs of the post-hoc FS-A/FU-A approximators (default: the preset's; 0 skips)")
    parser.add_argument("--sen-samples", type=int, default=None, help="test samples for SEN (default: all)")
    parser.add_argument("--data-dir", default=None,
                        help="dataset folder (imagenet: a folder with train/<class>/ and val/<class>/ images)")
    parser.add_argument("--models-dir", default=None, help="black-box cache folder")
    parser.add_argument("--verbose", type=int, default=1 if sys.stdout.isatty() else 2,
                        help="Keras verbosity: 1 progress bar (default on a terminal), 2 one line per epoch")
    args = parser.parse_args(argv)
    presets.get(args.preset)  # a clear error for an unknown name, before anything loads
    return args


def run_id(args) -> str:
    parts = [f"seed{args.seed}"] + (["legacy"] if args.legacy else []) + ([args.ablation] if args.ablation else [])
    return "-".join(parts)


def _strategy(name: str):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return None


def train(args) -> Path:
    """Run one training + evaluation; return the run directory."""
    preset = presets.get(args.preset)
    epochs = preset.epochs if args.epochs is None else args.epochs
    run_dir = Path(args.out) if args.out else Path("runs") / "meed" / preset.name / run_id(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**vars(args), "epochs": epochs, "preset_settings": preset.__dict__}
    atomic_write(run_dir / "config.json", json.dumps(config, indent=2, default=str))

    dataset = data.load(preset.dataset, classes=preset.classes, data_dir=args.data_dir)
    blackbox = data.blackbox(preset.dataset, classes=preset.classes, data_dir=args.data_dir,
                             models_dir=args.models_dir, verbose=args.verbose)
    x_train = training_subset(dataset.x_train, args.train_samples, args.seed)

    strategy = _strategy(args.strategy)
    with strategy.scope() if strategy else nullcontext():
        model = build(preset, blackbox, legacy=args.legacy, ablation=args.ablation, seed=args.seed,
                      backbone_weights=mobilenet_weights() if preset.modality == "patches" else None)
    first_epoch = restore(model, run_dir / "checkpoints") if args.resume else 0
    if first_epoch:
        log.info("resuming %s after epoch %d", run_dir, first_epoch)

    steps = len(x_train) // preset.batch_size
    monitor = FidelityMonitor(dataset.x_val, evaluation_steps(steps * epochs), run_dir / "tensorboard")
    callbacks = [Checkpointer(run_dir / "checkpoints"), monitor,
                 keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), update_freq="batch")]
    start = time.perf_counter()
    if first_epoch < epochs:
        model.fit(epoch_batches(x_train, preset.batch_size, args.seed, first_epoch, epochs), epochs=epochs,
                  initial_epoch=first_epoch, steps_per_epoch=steps, validation_data=dataset.x_val,
                  callbacks=callbacks, verbose=args.verbose)
    train_seconds = time.perf_counter() - start

    metrics, timings, masks = evaluate(model, dataset, preset, eval_epochs=args.eval_epochs, seed=args.seed,
                                       sen_samples=args.sen_samples, x_train=x_train)
    timings["train_seconds"] = train_seconds
    model.export(run_dir / "explainer")
    if dataset.x_test.ndim == 4:
        masked_grid(dataset.x_test[:10], {"MEED": masks["test"][:10]}, run_dir / "figures" / "masked_examples.png",
                    col_titles=[dataset.class_names[i] for i in blackbox.predict(dataset.x_test[:10], verbose=0)
                                .argmax(axis=1)])
    row = {"method": f"MEED ({run_id(args)})", **metrics}
    table = [row] + ([{"method": "paper (Ours)", **{k: v / 100 for k, v in PAPER_TABLES[preset.name].items()}}]
                     if preset.name in PAPER_TABLES else [])
    write_report(run_dir, config=config, metrics=metrics, seed=args.seed, timings=timings, table=table,
                 extra={"validation_steps": monitor.history, "blackbox": blackbox.blackbox_info,
                        "legacy_flags": model.legacy.enabled(), "k": model.k})
    log.info("wrote %s", run_dir)
    return run_dir


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    run_dir = train(args)
    print((run_dir / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
