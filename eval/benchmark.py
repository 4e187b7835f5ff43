"""Compare explanation methods on one dataset and black box: the MEED paper's result tables.

    python -m eval.benchmark --dataset fashion_mnist --k 64 \\
        --methods grad,gi,lime,kernel_shap,cxplain,infd,l2x,vibi,meed --seeds 3 \\
        [--train-samples N] [--test-samples N] [--epochs N] [--eval-epochs N] [--out DIR]

For every method and seed (seeds --seed, --seed + 1, ...), through the shared harness (eval.harness):
build the method from the one registry (eval.registry) for the cached black box (data.blackbox), fit it
on the training split when it requires fitting (L2X, VIBI, CXPlain, MEED, IBA: every one with the same
epochs and batch size), and score it on the test split with the MEED suite (eval.suites.MEEDSuite, the
suite that scores MEED in meed.train): FS-M, FU-M, FS-A, FU-A, SEN, TPS (and TPR on synthetic data with
known relevant features). Writes into ``runs/benchmark/<dataset>/<run-id>/`` (eval.run):

- ``report.json``: one row per method and seed (fractions; TPS in seconds), the methods' settings and
  timings in ``details``, the paper's numbers for the dataset (MEED Tables 1, 3, 4) as reference rows;
- ``report.md``: the Table 4 analogue, "mean ± std" over seeds per method (eval.summary) with the
  paper's numbers as "paper: <method>" rows;
- ``figures/masked_examples.png`` (image data): test images and the pixels each method keeps (first seed).
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import logging  # noqa: E402 (TensorFlow's start-up messages are hidden first)
from pathlib import Path  # noqa: E402

import data  # noqa: E402
from data.blackbox import describe  # noqa: E402
from data.models import approximator_factory, default_recipe, recipe  # noqa: E402
from eval import harness  # noqa: E402
from eval.figures import masked_grid  # noqa: E402
from eval.papers import MEED_CLASSES, meed_reference  # noqa: E402
from eval.run import Run, cli_parser, comma_list, count, invoke, print_report, run_main  # noqa: E402
from eval.suites import MEEDSuite  # noqa: E402
from eval.summary import DEFAULT_METRICS, summarize, summary_table  # noqa: E402
from eval.training import subset  # noqa: E402

log = logging.getLogger("eval.benchmark")

DEFAULT_METHODS = "grad,gi,lime,kernel_shap,cxplain,infd,l2x,vibi,meed"


def parser():
    p = cli_parser("python -m eval.benchmark", __doc__, shared=("dataset", "seed", "out", "data_dir", "models_dir",
                                                                "train_samples", "test_samples", "verbose"),
                   required=("dataset",))
    p.add_argument("--k", type=count(1), required=True, help="features each explanation selects")
    p.add_argument("--methods", type=comma_list, default=comma_list(DEFAULT_METHODS),
                   help="comma-separated registered method names (python -m eval.registry lists them)")
    p.add_argument("--seeds", type=count(1), default=3, help="number of seeds (--seed, --seed + 1, ...)")
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="original class ids (default: MEED's pair for (fashion_)mnist, all classes otherwise)")
    p.add_argument("--epochs", type=count(1), default=12, help="training epochs of every method that is fitted")
    p.add_argument("--batch-size", type=count(1), default=128, help="training batch of every method that is fitted")
    p.add_argument("--eval-epochs", type=count(0), default=12, help="epochs of the post-hoc approximators (0 skips)")
    p.add_argument("--eval-batch-size", type=count(1), default=32, help="batch of the post-hoc approximators")
    p.add_argument("--sen-samples", type=count(1), default=None, help="test samples for SEN (default: all)")
    p.add_argument("--options", default="{}",
                   help='JSON {"method": {hyperparameter: value}}, e.g. \'{"cxplain": {"patch": 2}}\'')
    p.add_argument("--blackbox-epochs", type=count(1), default=None,
                   help="train the black box for this many epochs instead of its recipe's (quick runs)")
    return p


def validate(args):
    args.resolved, args.options = harness.methods_and_options(args.methods, args.options)


def work(args) -> Path:
    """Run the benchmark described by the parsed flags; return the run directory."""
    classes = tuple(args.classes) if args.classes else MEED_CLASSES.get(args.dataset)
    seeds = list(range(args.seed, args.seed + args.seeds))
    run_id = f"k{args.k}-seeds{args.seeds}"
    run_ = Run("eval.benchmark", args, default_dir=Path("runs") / "benchmark" / args.dataset / run_id, label=run_id)
    with run_.phase("data", f"{args.dataset} and its black box"):
        dataset = data.load(args.dataset, classes=classes, data_dir=args.data_dir)
        blackbox = data.blackbox(args.dataset, classes=classes, data_dir=args.data_dir, models_dir=args.models_dir,
                                 epochs=args.blackbox_epochs, verbose=run_.keras_verbose)
    log.info("%s", describe(blackbox))
    x_train, y_train = subset((dataset.x_train, dataset.y_train), args.train_samples, args.seed)
    x_test = dataset.x_test[: args.test_samples]
    ground_truth = None if dataset.ground_truth is None else dataset.ground_truth["test"][: args.test_samples]
    recipe_name = blackbox.blackbox_info.get("recipe") or default_recipe(args.dataset)

    def suite(seed):
        return MEEDSuite(blackbox, x_train, x_test, k=args.k, approximator_factory=approximator_factory(recipe_name),
                         optimizer_factory=recipe(recipe_name).optimizer, eval_epochs=args.eval_epochs,
                         eval_batch_size=args.eval_batch_size, seed=seed, sen_samples=args.sen_samples,
                         ground_truth=ground_truth, verbose=run_.keras_verbose)

    shared = {"k": args.k, "dataset": args.dataset, "verbose": min(args.verbose, 1)}
    fit = {"epochs": args.epochs, "batch_size": args.batch_size, "verbose": run_.keras_verbose}
    candidates = [harness.registry_candidate(name, hyper=args.options.get(name, {}), shared=shared,
                                             fit_args=(x_train, y_train), fit_kwargs=fit) for name in args.resolved]
    details, figure_masks = {}, {}

    def record(evaluation):
        details.setdefault(evaluation.label, {"config": evaluation.config, "timings": {}})
        details[evaluation.label]["timings"][str(evaluation.seed)] = evaluation.timings
        if evaluation.seed == seeds[0]:
            figure_masks[evaluation.label] = evaluation.outputs["masks"].test[:8]
        log.info("%s seed %d: %s", evaluation.label, evaluation.seed, evaluation.metrics)

    with run_.phase("methods", f"{len(args.resolved)} methods x {len(seeds)} seeds; {len(x_train)} training / "
                               f"{len(x_test)} test samples"):
        evaluations = harness.evaluate(suite, candidates, seeds, on_result=record)
    rows = [evaluation.row() for evaluation in evaluations]
    reference = meed_reference(args.dataset, args.resolved)
    columns = suite(seeds[0]).columns()
    shown = list(DEFAULT_METRICS) + (["TPR", "TPR chance"] if ground_truth is not None else [])
    table = summary_table(summarize([{"rows": rows}]), metrics=shown, paper=reference or None, label="method",
                          columns=columns)
    sections = []
    if x_test.ndim == 4 and x_test.shape[-1] in (1, 3):
        figure = masked_grid(x_test[:8], figure_masks, run_.path("figures/masked_examples.png"),
                             col_titles=[dataset.class_names[i] for i in
                                         blackbox.predict(x_test[:8], verbose=0).argmax(axis=1)])
        sections.append(f"## Figure\n\n![masked examples]({figure.relative_to(run_.dir).as_posix()})\n")
    return run_.finish(rows, title=f"Benchmark: {args.dataset}, k = {args.k}, {args.seeds} seed(s)", columns=columns,
                       reference=reference, details=details, table=table, sections=sections,
                       config={"classes": classes, "seeds": seeds, "n_train": len(x_train), "n_test": len(x_test),
                               "data_source": dataset.source, "blackbox": blackbox.blackbox_info,
                               "methods": args.resolved})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(dataset="xor", k=2, methods=["grad", "l2x"],
    seeds=2, options={"l2x": {"tau": 0.5}})``; returns the run directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
