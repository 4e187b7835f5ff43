"""Compare explanation methods on one dataset and black box: the MEED paper's result tables.

    python -m eval.benchmark --dataset fashion_mnist --k 64 \\
        --methods grad,gi,lime,kernel_shap,cxplain,infd,l2x,vibi,meed --seeds 3 \\
        [--train-samples N] [--test-samples N] [--epochs N] [--eval-epochs N] [--out DIR]

For every seed and method: build the method for the cached black box (data.blackbox), train it on the
training split when it is an amortised explainer (L2X, VIBI, CXPlain, MEED: every one with the same
epochs and batch size, ``fit_explainer``), and score it on the test split with the code that scores
MEED (eval.explainer_metrics): FS-M, FU-M, FS-A, FU-A, SEN, TPS (and TPR on synthetic data with known
relevant features). Writes into ``runs/benchmark/<dataset>/<run-id>/``:

- ``report.json``: per method its hyperparameters, per seed the metrics (fractions; TPS in seconds)
  and timings, and the mean / sample std over seeds; the paper's numbers; config and environment;
- ``report.md``: the Table 4 analogue, "mean ± std" over seeds per method with the paper's numbers
  for the dataset (MEED Tables 1, 3, 4) as "paper: <method>" rows;
- ``figures/masked_examples.png`` (image data): test images and the pixels each method keeps (seed 0).

Methods are found by name in the registries of the method packages (PROVIDERS): each is imported
lazily by module name (eval never imports them at module level) and offers ``names()`` and
``get(name, model, **hyper)``; a package that does not exist yet is skipped. An unknown name is an
error listing every known one.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from data.io import atomic_write
from eval.explainer_metrics import evaluate_explainer
from eval.figures import masked_grid
from eval.report import environment, to_jsonable
from eval.summary import DEFAULT_METRICS, summarize, summary_table
from kernels.validation import check_choice

log = logging.getLogger("eval.benchmark")

#: Packages whose registries (``names()``, ``get(name, model, **hyper)``) provide methods, in lookup order.
PROVIDERS = ("baselines", "meed", "iba", "vp", "masking")

#: The MEED paper's rows (Liang et al., KDD 2020): fidelities and SEN in %, TPS in seconds. Keys are
#: registry names. IMDB: Table 1 (no SEN), MNIST 3 vs 8: Table 3, Fashion-MNIST Pullover vs Shirt: Table 4.
_PAPER_COLUMNS = ("FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS")
_PAPER_ROWS = {
    "fashion_mnist": {
        "gradient": (58.60, 76.20, 93.70, 95.45, 2528, 5e-5),
        "gradient_input": (62.15, 66.25, 93.35, 94.45, 2662, 5e-5),
        "lime": (75.63, 94.30, 73.60, 97.35, 61.03, 3e-2),
        "kernel_shap": (63.29, 55.78, 93.97, 95.58, 84.59, 4e-2),
        "cxplain": (59.65, 16.50, 94.85, 95.10, 107, 1e-4),
        "infd": (100.0, 45.80, 100.0, 100.0, 87.37, 5e-1),
        "l2x": (77.30, 87.30, 89.85, 96.00, 1.76, 1e-4),
        "vibi": (84.10, 70.85, 91.90, 94.40, 17.36, 1e-4),
        "meed": (97.80, 66.65, 99.80, 99.65, 0.70, 1e-4),
    },
    "mnist": {
        "gradient": (98.19, 68.75, 99.55, 99.55, 139, 5e-5),
        "gradient_input": (99.45, 67.64, 99.55, 99.24, 120, 5e-5),
        "lime": (80.37, 99.75, 82.46, 99.80, 62.6, 3e-2),
        "kernel_shap": (92.74, 90.83, 98.87, 99.75, 87.2, 4e-2),
        "cxplain": (99.40, 64.77, 99.70, 99.24, 91.8, 1e-4),
        "infd": (89.62, 96.62, 99.95, 99.95, 101, 1e-0),
        "l2x": (91.38, 91.18, 98.54, 99.65, 6.90, 1e-4),
        "vibi": (98.29, 86.29, 99.29, 99.65, 6.35, 1e-4),
        "meed": (99.04, 74.70, 99.80, 99.70, 6.11, 1e-4),
    },
    "imdb": {
        "gradient": (85.58, 87.58, 86.18, 85.79, None, 5e-5),
        "gradient_input": (87.31, 86.25, 87.88, 83.86, None, 5e-5),
        "lime": (89.75, 82.13, 88.53, 82.96, None, 3e-2),
        "kernel_shap": (50.17, 99.16, 50.24, 99.50, None, 4e-2),
        "cxplain": (90.60, 80.01, 90.70, 83.04, None, 1e-4),
        "infd": (40.50, 99.80, 64.50, 96.70, None, 3e-0),
        "l2x": (89.23, 82.90, 89.05, 83.81, None, 1e-4),
        "vibi": (90.79, 80.36, 90.12, 82.57, None, 1e-4),
        "meed": (98.48, 59.05, 98.70, 81.83, None, 1e-4),
    },
}
#: The paper's label of each method in its tables.
PAPER_LABELS = {"gradient": "Grad", "gradient_input": "GI", "lime": "LIME", "kernel_shap": "SHAP",
                "cxplain": "CXP", "infd": "INFD", "l2x": "L2X", "vibi": "VIBI", "meed": "Ours"}


def paper_results(dataset: str, methods) -> dict:
    """The paper's numbers for ``methods`` on ``dataset`` as {"<method> (<paper label>)": {metric: value}}."""
    rows = _PAPER_ROWS.get(dataset, {})
    return {f"{m} ({PAPER_LABELS[m]})": {c: v for c, v in zip(_PAPER_COLUMNS, rows[m]) if v is not None}
            for m in methods if m in rows}


# ------------------------------------------------------------------------------------------ registry

def providers() -> list:
    """The importable provider packages (a package that does not exist yet is skipped)."""
    found = []
    for module_name in PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue
            raise
        if callable(getattr(module, "names", None)) and callable(getattr(module, "get", None)):
            found.append(module)
    return found


def known_methods() -> dict[str, tuple]:
    """{name or alias: (provider module, canonical name)} over every provider."""
    known = {}
    for module in providers():
        for name in module.names():
            known.setdefault(name, (module, name))
        for alias, name in getattr(module, "ALIASES", {}).items():
            known.setdefault(alias, (module, name))
    return known


def resolve(names) -> list[tuple[str, object]]:
    """[(canonical name, provider)] for method names; ValueError listing every known name otherwise."""
    known = known_methods()
    resolved = []
    for name in names:
        key = check_choice("methods", name.strip().lower(), sorted(known))
        module, canonical = known[key]
        if canonical not in [c for c, _ in resolved]:
            resolved.append((canonical, module))
    return resolved


def _accepted(module, name: str) -> list[str]:
    """The keyword arguments the provider says ``name`` accepts (none known: no shared settings are passed)."""
    hyperparameters = getattr(module, "hyperparameters", None)
    return list(hyperparameters(name)) if callable(hyperparameters) else []


def build_method(module, name: str, blackbox, *, k: int, seed: int, dataset: str, verbose: int, options: dict):
    """``module.get(name, blackbox, **hyper)`` with the shared settings each method accepts (k, seed,
    dataset, verbose) and the user's ``options`` for it on top."""
    accepted = _accepted(module, name)
    shared = {"k": k, "seed": seed, "dataset": dataset, "verbose": verbose}
    hyper = {key: value for key, value in shared.items() if key in accepted}
    hyper.update(options)
    return module.get(name, blackbox, **hyper)


# --------------------------------------------------------------------------------------------- CLI

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m eval.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="a data.load name with a black-box recipe")
    parser.add_argument("--k", type=int, required=True, help="features each explanation selects")
    parser.add_argument("--methods", default="grad,gi,lime,kernel_shap,cxplain,infd,l2x,vibi,meed",
                        help="comma-separated method names (registries of %s)" % ", ".join(PROVIDERS))
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. N-1)")
    parser.add_argument("--train-samples", type=int, default=None,
                        help="a seeded subset of the training split (amortised training and FS-A / FU-A)")
    parser.add_argument("--test-samples", type=int, default=None, help="a seeded subset of the test split")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of every amortised method")
    parser.add_argument("--batch-size", type=int, default=128, help="training batch of every amortised method")
    parser.add_argument("--eval-epochs", type=int, default=12, help="epochs of the post-hoc approximators (0 skips)")
    parser.add_argument("--eval-batch-size", type=int, default=32, help="batch of the post-hoc approximators")
    parser.add_argument("--sen-samples", type=int, default=None, help="test samples for SEN (default: all)")
    parser.add_argument("--options", default="{}",
                        help='JSON {"method": {hyperparameter: value}}, e.g. \'{"cxplain": {"patch": 2}}\'')
    parser.add_argument("--blackbox-epochs", type=int, default=None,
                        help="train the black box for this many epochs instead of its recipe's (quick runs)")
    parser.add_argument("--out", default=None, help="run directory (default runs/benchmark/<dataset>/<run-id>)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models-dir", default=None, help="black-box cache folder")
    parser.add_argument("--verbose", type=int, default=1 if sys.stdout.isatty() else 0,
                        help="Keras verbosity of training (0 silent, 1 progress bar, 2 one line per epoch)")
    args = parser.parse_args(argv)
    for flag in ("k", "seeds", "epochs", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')}: expected an integer >= 1, got {getattr(args, flag)}")
    for flag in ("train_samples", "test_samples", "sen_samples"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')}: expected an integer >= 1, got {getattr(args, flag)}")
    try:
        args.options = json.loads(args.options)
    except json.JSONDecodeError as error:
        parser.error(f"--options: expected JSON, got {args.options!r} ({error})")
    if not isinstance(args.options, dict) or not all(isinstance(v, dict) for v in args.options.values()):
        parser.error(f"--options: expected a JSON object {{method: {{hyperparameter: value}}}}, got {args.options!r}")
    try:
        args.resolved = resolve([m for m in args.methods.split(",") if m.strip()])
    except ValueError as error:
        parser.error(str(error))
    if not args.resolved:
        parser.error("--methods: expected at least one method name")
    unknown = sorted(set(args.options) - {name for name, _ in args.resolved})
    if unknown:
        parser.error(f"--options: {unknown} not among the benchmarked methods {[n for n, _ in args.resolved]}")
    return args


def _subset(n: int, size: int | None) -> np.ndarray:
    """A fixed seeded subset (the same for every seed, so that seeds vary the methods only)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).permutation(n)[:size])


def run(args) -> Path:
    """Run the benchmark described by ``args`` (parse_args); return the run directory."""
    import data
    from data.blackbox import DEFAULT_CLASSES, describe
    from data.models import approximator_factory, recipe

    classes = DEFAULT_CLASSES.get(args.dataset)
    dataset = data.load(args.dataset, classes=classes, data_dir=args.data_dir)
    blackbox = data.blackbox(args.dataset, classes=classes, data_dir=args.data_dir, models_dir=args.models_dir,
                             epochs=args.blackbox_epochs, verbose=args.verbose)
    log.info("%s", describe(blackbox))
    rows_train = _subset(len(dataset.x_train), args.train_samples)
    rows_test = _subset(len(dataset.x_test), args.test_samples)
    x_train, y_train = dataset.x_train[rows_train], dataset.y_train[rows_train]
    x_test = dataset.x_test[rows_test]
    ground_truth = None if dataset.ground_truth is None else dataset.ground_truth["test"][rows_test]

    created = datetime.datetime.now(datetime.timezone.utc)
    run_id = f"k{args.k}-seeds{args.seeds}-{created:%Y%m%dT%H%M%SZ}"
    run_dir = Path(args.out) if args.out else Path("runs") / "benchmark" / args.dataset / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = getattr(args, "argv", None)
    config = {key: value for key, value in vars(args).items() if key not in ("resolved", "argv")}
    config.update(methods=[name for name, _ in args.resolved], classes=classes, n_train=len(x_train),
                  n_test=len(x_test), command="python -m eval.benchmark " + " ".join(
                      shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
    atomic_write(run_dir / "config.json", json.dumps(to_jsonable(config), indent=2) + "\n")

    results: dict[str, dict] = {}
    figure_masks = {}
    for name, module in args.resolved:
        results[name] = {"provider": module.__name__, "seeds": {}}
        for seed in range(args.seeds):
            log.info("%s, seed %d", name, seed)
            method = build_method(module, name, blackbox, k=args.k, seed=seed, dataset=args.dataset,
                                  verbose=args.verbose, options=args.options.get(name, {}))
            timings = {}
            if getattr(method, "trainable_explainer", False):
                start = time.perf_counter()
                method.fit_explainer(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                                     verbose=args.verbose)
                timings["train_seconds"] = time.perf_counter() - start
            metrics, eval_timings, masks = evaluate_explainer(
                method, blackbox, x_train, x_test, k=args.k, approximator_factory=approximator_factory(args.dataset),
                optimizer_factory=recipe(args.dataset).optimizer, eval_epochs=args.eval_epochs,
                eval_batch_size=args.eval_batch_size, seed=seed, sen_samples=args.sen_samples,
                ground_truth=ground_truth)
            timings.update(eval_timings)
            results[name]["hyper"] = getattr(method, "hyper", {})
            results[name]["seeds"][str(seed)] = {"metrics": metrics, "timings": timings}
            if seed == 0:
                figure_masks[name] = masks["test"][:8]
            log.info("%s seed %d: %s", name, seed, {key: value for key, value in metrics.items()})

    reports = [{"method": name, "metrics": run_["metrics"]} for name, result in results.items()
               for run_ in result["seeds"].values()]
    summary = summarize(reports, group_by=lambda report: report["method"])
    for row in summary:
        results[row["group"]]["summary"] = row["metrics"]  # {metric: {"mean", "std", "n"}}
    paper = paper_results(args.dataset, results)
    columns = list(DEFAULT_METRICS) + (["TPR", "TPR chance"] if ground_truth is not None else [])
    table = summary_table(summary, metrics=columns, paper=paper or None, label="method")

    figure = None
    if x_test.ndim == 4 and x_test.shape[-1] in (1, 3):
        figure = masked_grid(x_test[:8], figure_masks, run_dir / "figures" / "masked_examples.png",
                             col_titles=[dataset.class_names[i] for i in
                                         blackbox.predict(x_test[:8], verbose=0).argmax(axis=1)])
    payload = {"created_utc": created.isoformat(timespec="seconds"), "dataset": args.dataset, "k": args.k,
               "seeds": list(range(args.seeds)), "config": config, "methods": results,
               "paper": {"source": "MEED (Liang et al., KDD 2020), Tables 1/3/4", "rows": paper},
               "blackbox": getattr(blackbox, "blackbox_info", {}), "environment": environment()}
    atomic_write(run_dir / "report.json", json.dumps(to_jsonable(payload, where="report"), indent=2,
                                                     allow_nan=False) + "\n")
    lines = [f"# Benchmark: {args.dataset}, k = {args.k}, {args.seeds} seed(s)", "",
             f"Created {payload['created_utc']} (UTC); {len(x_train)} training / {len(x_test)} test samples; "
             f"black box: {describe(blackbox)}.", "", table,
             "Rows \"paper: ...\" are the MEED paper's numbers for this dataset (Tables 1, 3, 4) where known.", "",
             "## Command", "", "```", config["command"], "```", ""]
    if figure is not None:
        lines += ["## Figure", "", f"![masked examples]({figure.relative_to(run_dir).as_posix()})", ""]
    lines += ["## Configuration", ""] + [f"- {key}: {json.dumps(to_jsonable(value))}" for key, value in config.items()]
    lines += ["", "## Environment", ""] + [f"- {key}: {value}" for key, value in payload["environment"].items()]
    atomic_write(run_dir / "report.md", "\n".join(lines) + "\n")
    log.info("wrote %s", run_dir)
    return run_dir


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    args.argv = argv
    run_dir = run(args)
    print((run_dir / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
