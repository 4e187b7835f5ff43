"""VP's Tables 1-3 rebuilt: ``python -m vp.compare --preset mnist --methods vp,nvp,saliency,rise,l2x``.

Every method (registered names; VP and nVP among them) explains the same test images of the preset's
classifier, scored by the VP suite (eval.suites.VPSuite: consistency over the upsample sizes {1, 2, 4},
the local Lipschitz stability, the top-k / low-k perturbation areas for the probability, the logit and
the KL divergence, the time per image) on samples the classifier gets right with probability > 0.5, for
``--seeds`` seeds, through the shared harness (eval.harness). Methods that learn (VP, nVP, L2X,
RealTime) are trained on the training split with ``--epochs`` / ``--batch-size``; consistency retrains
them at every upsample size. The paper's MNIST rows stand beside ours (eval.papers.VP_MNIST).
Budgets (samples, draws, epochs) are flags and are printed in the report.

    runs/vp/compare/<preset>/<run-id>/  config.json  report.json  report.md
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import logging  # noqa: E402 (TensorFlow's start-up messages are hidden first)
from pathlib import Path  # noqa: E402

import data  # noqa: E402
from data.blackbox import describe  # noqa: E402
from eval import harness  # noqa: E402
from eval.papers import vp_reference  # noqa: E402
from eval.run import (Run, UsageError, cli_parser, comma_list, count, invoke, positive_float, print_report,  # noqa: E402
                      run_main)
from eval.suites import VPSuite  # noqa: E402
from eval.summary import summarize, summary_table  # noqa: E402
from eval.training import subset  # noqa: E402
from vp import presets  # noqa: E402

log = logging.getLogger("vp")

DEFAULT_METHODS = "vp,nvp,saliency,meaningful_perturbation,rise,l2x,extremal_perturbation,perceptual_ball"
SHOWN = ("consistency SSIM", "consistency PC", "consistency PSNR", "Lipschitz", "perturbation (probability)",
         "perturbation (logit)", "perturbation (KL)", "seconds per image")


def parser():
    p = cli_parser("python -m vp.compare", __doc__, shared=("preset", "seed", "out", "data_dir", "models_dir",
                                                            "train_samples", "test_samples", "verbose"),
                   required=("preset",))
    p.add_argument("--methods", type=comma_list, default=comma_list(DEFAULT_METHODS),
                   help="comma-separated registered method names")
    p.add_argument("--seeds", type=count(1), default=1, help="number of seeds (--seed, --seed + 1, ...)")
    p.add_argument("--epochs", type=count(1), default=None, help="training epochs of the learnt methods "
                                                                 "(default: the preset's)")
    p.add_argument("--batch-size", type=count(1), default=None, help="their training batch (default: the preset's)")
    p.add_argument("--k", type=positive_float, default=0.2, help="L2X's k as a share of the pixels (paper: 20%%)")
    p.add_argument("--consistency-samples", type=count(1), default=50, help="paper: 50")
    p.add_argument("--consistency-repeats", type=count(1), default=4, help="paper: 4")
    p.add_argument("--stability-samples", type=count(1), default=30, help="paper: 30")
    p.add_argument("--stability-draws", type=count(1), default=200, help="Gaussian draws per image (Quantus: 200)")
    p.add_argument("--options", default="{}", help='JSON {"method": {hyperparameter: value}}')
    return p


def validate(args):
    presets.get(args.preset)
    args.resolved, args.options = harness.methods_and_options(args.methods, args.options)
    if not 0 < args.k < 1:
        raise UsageError(f"--k: expected a share of the pixels in (0, 1), got {args.k}")


def work(args) -> Path:
    """Score every method under the VP suite; return the run directory."""
    preset = presets.get(args.preset)
    seeds = list(range(args.seed, args.seed + args.seeds))
    epochs, batch_size = args.epochs or preset.epochs, args.batch_size or preset.batch_size
    run_id = f"seeds{args.seeds}"
    run = Run("vp.compare", args, default_dir=Path("runs") / "vp" / "compare" / preset.name / run_id, label=run_id,
              config={"epochs": epochs, "batch_size": batch_size})
    with run.phase("data", f"{preset.dataset} and its classifier ({preset.recipe})"):
        ds = data.load(preset.dataset, data_dir=args.data_dir)
        classifier = data.blackbox(preset.dataset, recipe=preset.recipe, data_dir=args.data_dir,
                                   models_dir=args.models_dir, verbose=run.keras_verbose)
    log.info("%s; data: %s", describe(classifier), ds.source)
    x_train, y_train = subset((ds.x_train, ds.y_train), args.train_samples, args.seed)
    fit_kwargs = {"epochs": epochs, "batch_size": batch_size, "verbose": run.keras_verbose}
    n_samples = args.test_samples or 200

    def suite(seed):
        return VPSuite(classifier, ds.x_test, ds.y_test, n_samples=n_samples, selection_seed=args.seed,
                       consistency_samples=min(args.consistency_samples, n_samples),
                       consistency_repeats=args.consistency_repeats, stability_samples=args.stability_samples,
                       n_draws=args.stability_draws, fit_args=(x_train, y_train), fit_kwargs=fit_kwargs, seed=seed,
                       verbose=min(args.verbose, 1))

    k = max(1, int(args.k * preset.image_shape[0] * preset.image_shape[1]))
    shared = {"k": k, "verbose": min(args.verbose, 1), "upsample": preset.upsample}
    candidates = [harness.registry_candidate(name, hyper=args.options.get(name, {}), shared=shared,
                                             fit_args=(x_train, y_train), fit_kwargs=fit_kwargs)
                  for name in args.resolved]
    details = {}

    def record(evaluation):
        details.setdefault(evaluation.label, {"config": evaluation.config, "cells": {}})
        details[evaluation.label]["cells"][str(evaluation.seed)] = {"timings": evaluation.timings,
                                                                    "details": evaluation.details}
        log.info("%s seed %d: %s", evaluation.label, evaluation.seed, evaluation.metrics)

    with run.phase("methods", f"{len(args.resolved)} methods x {len(seeds)} seeds; {len(x_train)} training images, "
                              f"{n_samples} evaluated test images"):
        evaluations = harness.evaluate(suite, candidates, seeds, on_result=record)
    rows = [evaluation.row() for evaluation in evaluations]
    reference = vp_reference(args.resolved)
    columns = suite(seeds[0]).columns()
    table = summary_table(summarize([{"rows": rows}]), metrics=list(SHOWN), paper=reference or None, label="method",
                          columns=columns)
    return run.finish(rows, title=f"VP's tables on {preset.name}, {args.seeds} seed(s)", columns=columns,
                      reference=reference, details=details, table=table,
                      config={"seeds": seeds, "n_train": len(x_train), "n_evaluated": n_samples, "l2x_k": k,
                              "data_source": ds.source, "blackbox": classifier.blackbox_info,
                              "methods": args.resolved})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(preset="mnist", methods=["vp", "saliency"])``;
    returns the run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
