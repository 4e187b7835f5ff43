"""The masking paper's tables on one dataset: ``python -m masking.explain --dataset fashion_mnist
--recipe small_resnet --methods masking,gradient_input,smoothgrad,random --tv 0,0.001,0.01,0.1``.

Every method explains the first ``--test-samples`` test images of the dataset's black box (by recipe) for
the labels the suite evaluates (the top-1 and top-2 labels by default), scored by the masking suite
(eval.suites.MaskingSuite: worst-case completeness and soundness on the gray and random-image substrates,
deletion, insertion with the blur and gray starts, the saliency metric, the time per map) through the
shared harness. The mask optimiser ("masking") runs once per ``--tv`` value (the appendix's Table 4
sweep) with its pool of distractors drawn from the training split; ``--steps`` is its iteration count.

    runs/masking/<dataset>/<run-id>/  config.json  report.json  report.md
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import logging  # noqa: E402 (TensorFlow's start-up messages are hidden first)
from pathlib import Path  # noqa: E402

import data  # noqa: E402
from data.blackbox import describe  # noqa: E402
from eval import harness  # noqa: E402
from eval.run import (Run, UsageError, cli_parser, comma_list, count, invoke, print_report, run_main,  # noqa: E402
                      user_input)
from eval.suites import MaskingSuite  # noqa: E402
from eval.summary import summarize, summary_table  # noqa: E402
from eval.training import subset  # noqa: E402

log = logging.getLogger("masking")


def parser():
    p = cli_parser("python -m masking.explain", __doc__, shared=("dataset", "seed", "out", "data_dir", "models_dir",
                                                                 "test_samples", "verbose"), required=("dataset",))
    p.add_argument("--recipe", default=None, help="the black box's recipe (default: the dataset's)")
    p.add_argument("--methods", type=comma_list, default=comma_list("masking,gradient_input,smoothgrad,random"),
                   help="comma-separated registered method names")
    p.add_argument("--tv", type=comma_list, default=comma_list("0.01"), help="lambda_TV values of the optimiser")
    p.add_argument("--steps", type=count(1), default=2000, help="the optimiser's Adam steps (paper: 2,000)")
    p.add_argument("--preset", default="auto", choices=("auto", "cifar", "imagenet"), help="the optimiser's preset")
    p.add_argument("--pool", type=count(2), default=1000, help="training images the distractors come from")
    p.add_argument("--labels", default="top2", choices=("top1", "top2", "all"), help="labels evaluated per image")
    p.add_argument("--options", default="{}", help='JSON {"method": {hyperparameter: value}}')
    return p


def validate(args):
    args.resolved, args.options = harness.methods_and_options(args.methods, args.options)
    with user_input("--tv"):
        try:
            args.tv_values = [float(v) for v in args.tv]
        except ValueError:
            raise ValueError(f"expected comma-separated numbers >= 0, got {','.join(args.tv)!r}") from None
    if any(v < 0 for v in args.tv_values):
        raise UsageError(f"--tv: expected numbers >= 0, got {','.join(args.tv)!r}")


def candidates_for(args, pool):
    """One candidate per method; the optimiser once per lambda_TV value."""
    shared = {"verbose": min(args.verbose, 1), "seed": args.seed}
    out = []
    for name in args.resolved:
        hyper = dict(args.options.get(name, {}))
        if name != "masking":
            out.append(harness.registry_candidate(name, hyper=hyper, shared=shared))
            continue
        for tv in args.tv_values:
            settings = {"preset": args.preset, "steps": args.steps, "tv": tv, "pool_size": args.pool, **hyper}
            out.append(harness.registry_candidate(name, label=f"masking (TV {tv:g})", hyper=settings, shared=shared,
                                                  fit_args=(pool,)))
    return out


def work(args) -> Path:
    """Score every method under the masking suite; return the run directory."""
    run_id = f"seed{args.seed}-steps{args.steps}"
    run = Run("masking.explain", args, default_dir=Path("runs") / "masking" / args.dataset / run_id, label=run_id)
    with run.phase("data", f"{args.dataset} and its black box"):
        ds = data.load(args.dataset, data_dir=args.data_dir)
        model = data.blackbox(args.dataset, recipe=args.recipe, data_dir=args.data_dir, models_dir=args.models_dir,
                              verbose=run.keras_verbose)
    log.info("%s; data: %s", describe(model), ds.source)
    x = ds.x_test[:args.test_samples or 100]
    pool = subset(ds.x_train, args.pool, args.seed)
    suite = MaskingSuite(model, x, pool=pool, labels=args.labels, seed=args.seed)
    candidates = candidates_for(args, pool)
    with run.phase("methods", f"{len(candidates)} candidates on {len(x)} test images, labels {args.labels}"):
        evaluations = harness.evaluate(suite, candidates, [args.seed],
                                       on_result=lambda e: log.info("%s: %s", e.label, e.metrics))
    rows = [evaluation.row() for evaluation in evaluations]
    columns = suite.columns()
    table = summary_table(summarize([{"rows": rows}]), metrics=list(columns), label="method", columns=columns)
    details = {e.label: {"config": e.config, "timings": e.timings} for e in evaluations}
    return run.finish(rows, title=f"The masking paper's metrics on {args.dataset} ({run_id})", columns=columns,
                      details=details, table=table,
                      config={"n_test": len(x), "pool": len(pool), "data_source": ds.source,
                              "blackbox": model.blackbox_info, "methods": args.resolved, "tv": args.tv_values})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(dataset="fashion_mnist", methods=["masking",
    "random"], steps=100)``; returns the run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
