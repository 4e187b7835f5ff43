"""Train and evaluate MEED for one preset: ``python -m meed.train --preset fashion_mnist``.

Gets the data and the cached black box, trains the explainer with ``fit`` (progress bar, TensorBoard,
a checkpoint per epoch, ``--resume``), evaluates it on the test split with the MEED suite (FS-M, FU-M,
FS-A, FU-A, SEN, TPS; eval.suites.MEEDSuite) and writes the run directory (eval.run):

    runs/meed/<preset>/<run-id>/  config.json  report.json  report.md  figures/  tensorboard/
                                  checkpoints/  explainer/ (SavedModel, serving_default takes raw x)
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import logging  # noqa: E402 (TensorFlow's start-up messages are hidden first)
from pathlib import Path  # noqa: E402

import keras  # noqa: E402

import data  # noqa: E402
from data.models import mobilenet_weights  # noqa: E402
from eval.figures import masked_grid  # noqa: E402
from eval.papers import meed_reference  # noqa: E402
from eval.run import Run, cli_parser, count, invoke, print_report, run_main  # noqa: E402
from eval.training import Checkpointer, restore, steps_per_epoch, strategy_scope, subset  # noqa: E402
from meed import presets  # noqa: E402
from meed.builder import build  # noqa: E402
from meed.evaluate import suite  # noqa: E402
from meed.training import FidelityMonitor, evaluation_steps  # noqa: E402

log = logging.getLogger("meed")


def parser():
    p = cli_parser("python -m meed.train", __doc__, shared=("preset", "seed", "out", "resume", "data_dir", "models_dir",
                                                            "train_samples", "verbose"), required=("preset",))
    p.add_argument("--epochs", type=count(1), default=None, help="training epochs (default: the preset's)")
    p.add_argument("--legacy", action="store_true", help="reproduce the released code's quirks")
    p.add_argument("--ablation", choices=sorted(presets.ABLATIONS), default=None)
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                   help="tf.distribute strategy of the training")
    p.add_argument("--eval-epochs", type=count(0), default=None,
                   help="epochs of the post-hoc FS-A/FU-A approximators (default: the preset's; 0 skips)")
    p.add_argument("--sen-samples", type=count(1), default=None, help="test samples for SEN (default: all)")
    return p


def run_id(args) -> str:
    parts = [f"seed{args.seed}"] + (["legacy"] if args.legacy else []) + ([args.ablation] if args.ablation else [])
    return "-".join(parts)


def row_label(args) -> str:
    """The setting's row label (seed-free, so that eval.summary aggregates seeds): "MEED", "MEED --legacy", ..."""
    return " ".join(["MEED"] + (["--legacy"] if args.legacy else []) + ([f"--ablation {args.ablation}"]
                                                                        if args.ablation else []))


def work(args) -> Path:
    """Run one training + evaluation for the parsed flags; return the run directory."""
    preset = presets.get(args.preset)
    epochs = preset.epochs if args.epochs is None else args.epochs
    run = Run("meed.train", args, default_dir=Path("runs") / "meed" / preset.name / run_id(args), label=run_id(args),
              config={"epochs": epochs, "preset_settings": preset.__dict__})
    with run.phase("data", f"{preset.dataset} (classes {preset.classes}) and its black box"):
        dataset = data.load(preset.dataset, classes=preset.classes, data_dir=args.data_dir)
        blackbox = data.blackbox(preset.dataset, classes=preset.classes, data_dir=args.data_dir,
                                 models_dir=args.models_dir, verbose=run.keras_verbose)
    x_train = subset(dataset.x_train, args.train_samples, args.seed)

    with strategy_scope(args.strategy):
        model = build(preset, blackbox, legacy=args.legacy, ablation=args.ablation, seed=args.seed,
                      backbone_weights=mobilenet_weights() if preset.modality == "patches" else None)
    first_epoch = restore(model, run.path("checkpoints")) if args.resume else 0
    if args.resume and first_epoch:
        log.info("resuming %s after epoch %d", run.dir, first_epoch)
    elif args.resume:
        log.warning("--resume: no checkpoint in %s yet; training from epoch 0", run.path("checkpoints"))

    steps = steps_per_epoch(len(x_train), preset.batch_size)
    monitor = FidelityMonitor(dataset.x_val, evaluation_steps(steps * epochs), run.path("tensorboard"))
    callbacks = [Checkpointer(run.path("checkpoints")), monitor,
                 keras.callbacks.TensorBoard(str(run.path("tensorboard")), update_freq="batch")]
    with run.phase("train", f"epochs {first_epoch + 1}-{epochs} of {steps} batches of {preset.batch_size} "
                            f"({len(x_train)} training images)"):
        if first_epoch < epochs:
            model.fit(x_train, epochs=epochs, initial_epoch=first_epoch, validation_data=dataset.x_val,
                      callbacks=callbacks, verbose=run.keras_verbose)

    evaluation = suite(model, dataset, preset, eval_epochs=args.eval_epochs, seed=args.seed,
                       sen_samples=args.sen_samples, x_train=x_train, verbose=run.keras_verbose)
    with run.phase("evaluate", f"the MEED suite on {len(dataset.x_test)} test images (FS-M / FU-M; FS-A / FU-A "
                               f"train two post-hoc approximators; SEN; TPS)"):
        result = evaluation.evaluate(model)
    run.timings.update(result.timings)
    with run.phase("export", "the explainer as a SavedModel"):
        model.export(run.path("explainer"))
    masks = result.outputs["masks"].test
    if dataset.x_test.ndim == 4:
        masked_grid(dataset.x_test[:10], {"MEED": masks[:10]}, run.path("figures/masked_examples.png"),
                    col_titles=[dataset.class_names[i] for i in blackbox.predict(dataset.x_test[:10], verbose=0)
                                .argmax(axis=1)])
    info = blackbox.blackbox_info
    return run.finish([{"label": row_label(args), "seed": args.seed, **result.metrics}],
                      title=f"MEED on {preset.name} ({run_id(args)})", columns=evaluation.columns(),
                      reference=meed_reference(preset.dataset, ["meed"]),
                      config={"n_train": len(x_train), "n_test": len(dataset.x_test), "k": model.k,
                              "data_source": dataset.source, "blackbox": info},
                      details={"validation_steps": monitor.history, "legacy_flags": model.legacy.enabled()})


def validate(args):
    presets.get(args.preset)  # a clear error for an unknown name, before anything loads


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(preset="fashion_mnist", epochs=1)``; returns the
    run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
