"""Train VP (or nVP) for one preset: ``python -m vp.train --preset mnist [--no-variational]``.

Gets the data and the cached classifier (data.blackbox with the preset's recipe), trains the explainer with
``fit`` (progress bar; TensorBoard: the loss, both terms of eq. 5 and the mean k per epoch, example mu /
sigma / top-20% masks; a checkpoint per epoch, ``--resume`` continues exactly; ``--strategy mirrored``),
evaluates the objective on the test split, exports the SavedModel (serving_default(x) -> scores, mask,
sigma; no classifier needed) and writes the run directory (eval.run):

    runs/vp/<preset>/<run-id>/  config.json  report.json  report.md  figures/maps.png  tensorboard/
                                checkpoints/  explainer/
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
from eval.figures import map_rows  # noqa: E402
from eval.report import Column  # noqa: E402
from eval.run import Run, cli_parser, count, invoke, positive_float, print_report, run_main, user_input  # noqa: E402
from eval.training import Checkpointer, restore, strategy_scope, subset  # noqa: E402
from kernels.topk import topk_mask  # noqa: E402
from vp import presets  # noqa: E402
from vp.model import BASELINES, TOPK_ON, VP  # noqa: E402
from vp.monitor import MapImages  # noqa: E402
from vp.networks import check_upsample  # noqa: E402

log = logging.getLogger("vp")


def parser():
    p = cli_parser("python -m vp.train", __doc__, shared=("preset", "seed", "out", "resume", "data_dir", "models_dir",
                                                          "train_samples", "test_samples", "verbose"),
                   required=("preset",))
    p.add_argument("--variational", action="store_true", default=True, help="VP (default)")
    p.add_argument("--no-variational", dest="variational", action="store_false", help="nVP: no variance, no KL")
    p.add_argument("--baseline", choices=BASELINES, default="blur", help="what replaces the unselected pixels")
    p.add_argument("--upsample", type=count(1), default=None, help="m: the map is at H/m x W/m (preset's default)")
    p.add_argument("--topk-on", choices=TOPK_ON, default="input", help="SOFT top-k on the upsampled map or on the map")
    p.add_argument("--epochs", type=count(1), default=None, help="training epochs (default: the preset's)")
    p.add_argument("--batch-size", type=count(1), default=None, help="default: the preset's")
    p.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (default: the preset's)")
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                   help="tf.distribute strategy of the training")
    return p


def validate(args):
    """The checks argparse cannot make, before any data is read: the preset, and --upsample for its images."""
    preset = presets.get(args.preset)
    if args.upsample is not None:
        with user_input("--upsample"):
            check_upsample(args.upsample, preset.image_shape)


def run_id(args) -> str:
    return "-".join([("vp" if args.variational else "nvp"), f"seed{args.seed}", args.baseline]
                    + ([f"m{args.upsample}"] if args.upsample else []))


def work(args) -> Path:
    """Train, evaluate and export VP for the parsed flags; return the run directory."""
    preset = presets.get(args.preset)
    epochs = args.epochs or preset.epochs
    batch_size = args.batch_size or preset.batch_size
    run = Run("vp.train", args, default_dir=Path("runs") / "vp" / preset.name / run_id(args), label=run_id(args),
              config={"epochs": epochs, "batch_size": batch_size, "preset_settings": preset.__dict__})
    checkpoints = run.path("checkpoints")
    if not args.resume and checkpoints.exists():
        shutil.rmtree(checkpoints)  # a fresh run must not pick up an older run's state
    with run.phase("data", f"{preset.dataset} (all classes) and its classifier ({preset.recipe})"):
        ds = data.load(preset.dataset, data_dir=args.data_dir)
        classifier = data.blackbox(preset.dataset, recipe=preset.recipe, data_dir=args.data_dir,
                                   models_dir=args.models_dir, verbose=run.keras_verbose)
    log.info("%s; data: %s", describe(classifier), ds.source)
    x_train = subset(ds.x_train, args.train_samples, args.seed)
    x_test = ds.x_test if args.test_samples is None else ds.x_test[:args.test_samples]
    with strategy_scope(args.strategy):
        vp = VP(classifier, upsample=args.upsample or preset.upsample, variational=args.variational,
                baseline=args.baseline, topk_on=args.topk_on, learning_rate=args.lr or preset.learning_rate,
                batch_size=batch_size, seed=args.seed, verbose=run.keras_verbose)
    first_epoch = restore(vp, checkpoints) if args.resume else 0
    if args.resume and not first_epoch:
        log.warning("--resume: no checkpoint in %s yet; training from epoch 0", checkpoints)
    callbacks = [Checkpointer(checkpoints), keras.callbacks.TensorBoard(str(run.path("tensorboard"))),
                 MapImages(ds.x_val[:4], run.path("tensorboard/maps"))]
    history = {}
    with run.phase("train", f"epochs {first_epoch + 1}-{epochs} on {len(x_train)} images, batch {batch_size}"):
        if first_epoch < epochs:
            with user_input("--batch-size"):
                history = vp.fit(x_train, epochs=epochs, initial_epoch=first_epoch, batch_size=batch_size,
                                 validation_data=ds.x_val, callbacks=callbacks, verbose=run.keras_verbose).history
    with run.phase("test", f"the objective on {len(x_test)} test images"):
        test = vp.evaluate(x_test.astype(np.float32), batch_size=batch_size, verbose=0, return_dict=True)
    k = max(1, int(0.2 * vp.n_pixels))
    with run.phase("export", f"the explainer as a SavedModel (mask: the top {k} pixels)"):
        vp.export(run.path("explainer"), k=k)
    shown = x_test[:8].astype(np.float32)
    mu = vp.explain(shown)
    maps = {"mu": mu}
    if vp.variational:
        maps["sigma"] = vp.explain_distribution(shown)[1]
    maps["top 20% of mu"] = topk_mask(mu, k).numpy()
    map_rows(shown, maps, run.path("figures/maps.png"))
    row = {"label": "VP" if args.variational else "nVP", "seed": args.seed,
           **{f"test {name}": float(value) for name, value in test.items()}}
    columns = {name: Column("number", None, f"{name} of eq. 5 on the test split") for name in row
               if name.startswith("test ")}
    return run.finish([row], title=f"{row['label']} on {preset.name} ({run_id(args)})", columns=columns, config={
        "n_train": len(x_train), "n_test": len(x_test), "data_source": ds.source, "export_k": k,
        "vp": vp.get_config(), "blackbox": getattr(classifier, "blackbox_info", None)},
        details={"history": {name: [float(v) for v in values] for name, values in history.items()},
                 "epochs_before_resume": first_epoch})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(preset="mnist", epochs=1, train_samples=512)``;
    returns the run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
