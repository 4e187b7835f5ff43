"""SEN of finished MEED runs in both forms: ``python -m meed.rescore runs/meed/fashion_mnist/*``.

A run reports SEN in the form its mode uses: the default runs Yeh et al.'s max-sensitivity (the maximum
over the 50 perturbations, each explained for its own prediction y = M(x')), ``--legacy`` runs the
released code's loop (its running maximum is reset inside the loop, so only the last perturbation
counts, and y is not recomputed). The paper's numbers come from the second. This command reloads each
run's last checkpoint and computes both on the same test samples and draws, so the effect of the metric
and the effect of training can be told apart. It writes ``sen.json`` into each run directory and a
report (eval.run; default ``runs/meed/rescore``) with one row per run, labelled by the run's setting, so
that ``python -m eval.summary`` gives their mean ± std.
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import json  # noqa: E402 (TensorFlow's start-up messages are hidden first)
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import data  # noqa: E402
from data.io import atomic_write  # noqa: E402
from eval.report import COLUMNS, Column  # noqa: E402
from eval.run import Run, UsageError, cli_parser, count, invoke, print_report, run_main  # noqa: E402
from eval.sensitivity import max_sensitivity  # noqa: E402
from eval.training import restore  # noqa: E402
from meed import presets  # noqa: E402
from meed.builder import build  # noqa: E402

log = logging.getLogger("meed")

SEN_COLUMNS = {"SEN": COLUMNS["SEN"],
               "SEN legacy": Column("percent", False, "the released code's SEN: the last of the 50 draws, clean y")}


def check_run(run_dir) -> Path:
    """``run_dir`` after checking it is a finished meed.train run (config.json and a checkpoint)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"runs: {run_dir} is not a meed.train run directory (no config.json)")
    if not (run_dir / "checkpoints" / "state.json").is_file():
        raise UsageError(f"runs: no checkpoint in {run_dir / 'checkpoints'}")
    return run_dir


def rescore(run_dir, *, sen_samples: int | None = None) -> dict:
    """{"SEN": max-sensitivity, "SEN legacy": the released code's form} of the run in ``run_dir``."""
    run_dir = check_run(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    preset = presets.get(config["preset"])
    dataset = data.load(preset.dataset, classes=preset.classes, data_dir=config.get("data_dir"))
    blackbox = data.blackbox(preset.dataset, classes=preset.classes, data_dir=config.get("data_dir"),
                             models_dir=config.get("models_dir"), train_if_missing=False, verbose=0)
    model = build(preset, blackbox, legacy=config["legacy"], ablation=config["ablation"], seed=config["seed"])
    if restore(model, run_dir / "checkpoints") == 0:
        raise UsageError(f"runs: no checkpoint in {run_dir / 'checkpoints'}")
    x = dataset.x_test if sen_samples is None else dataset.x_test[:sen_samples]
    seed = config["seed"]
    result = {
        "SEN": max_sensitivity(model, x, seed=seed).mean,
        "SEN legacy": max_sensitivity(model, x, seed=seed, legacy=True,
                                      explain_kwargs={"conditioning": blackbox.predict(x, verbose=0)}).mean,
        "n_samples": int(len(x)),
    }
    atomic_write(run_dir / "sen.json", json.dumps(result, indent=2))
    return {**result, "config": config}


def parser():
    p = cli_parser("python -m meed.rescore", __doc__, shared=("out", "verbose"))
    p.add_argument("runs", nargs="+", help="meed.train run directories (with config.json and checkpoints/)")
    p.add_argument("--sen-samples", type=count(1), default=None, help="test samples (default: all)")
    return p


def validate(args):
    for run_dir in args.runs:
        check_run(run_dir)


def work(args) -> Path:
    """Rescore the runs of the parsed flags; return the report's run directory."""
    run = Run("meed.rescore", args, default_dir=Path("runs") / "meed" / "rescore")
    rows = []
    for run_dir in args.runs:
        with run.phase(f"rescore {run_dir}"):
            result = rescore(run_dir, sen_samples=args.sen_samples)
        config = result["config"]
        label = " ".join(["MEED", config["preset"]] + (["--legacy"] if config["legacy"] else []) +
                         ([f"--ablation {config['ablation']}"] if config["ablation"] else []))
        rows.append({"label": label, "seed": config["seed"], "SEN": result["SEN"], "SEN legacy": result["SEN legacy"]})
    return run.finish(rows, title="SEN of MEED runs in both forms", columns=SEN_COLUMNS,
                      details={"runs": list(args.runs)})


def run(**options) -> Path:
    """From Python: ``run(runs=[run_dir, ...], sen_samples=20)``; returns the report's run directory."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
