"""SEN of finished MEED runs in both forms: ``python -m meed.rescore runs/meed/fashion_mnist/*``.

A run reports SEN in the form its mode uses: the default runs Yeh et al.'s max-sensitivity (the maximum
over the 50 perturbations, each explained for its own prediction y = M(x')), ``--legacy`` runs the
released code's loop (its running maximum is reset inside the loop, so only the last perturbation
counts, and y is not recomputed). The paper's numbers come from the second. This command reloads each
run's last checkpoint and computes both on the same test samples and draws, so the effect of the metric
and the effect of training can be told apart. It writes ``sen.json`` into each run directory and prints
one markdown row per run.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import data
from data.io import atomic_write
from eval.sensitivity import max_sensitivity
from meed import presets
from meed.builder import build
from meed.training import restore

log = logging.getLogger("meed")


def rescore(run_dir, *, sen_samples: int | None = None) -> dict:
    """{"SEN": max-sensitivity, "SEN legacy": the released code's form} of the run in ``run_dir``."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    preset = presets.get(config["preset"])
    dataset = data.load(preset.dataset, classes=preset.classes, data_dir=config.get("data_dir"))
    blackbox = data.blackbox(preset.dataset, classes=preset.classes, data_dir=config.get("data_dir"),
                             models_dir=config.get("models_dir"), train_if_missing=False, verbose=0)
    model = build(preset, blackbox, legacy=config["legacy"], ablation=config["ablation"], seed=config["seed"])
    if restore(model, run_dir / "checkpoints") == 0:
        raise FileNotFoundError(f"run_dir: no checkpoint in {run_dir / 'checkpoints'}")
    x = dataset.x_test if sen_samples is None else dataset.x_test[:sen_samples]
    seed = config["seed"]
    result = {
        "SEN": max_sensitivity(model, x, seed=seed).mean,
        "SEN legacy": max_sensitivity(model, x, seed=seed, legacy=True,
                                      targets=blackbox.predict(x, verbose=0)).mean,
        "n_samples": int(len(x)),
    }
    atomic_write(run_dir / "sen.json", json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m meed.rescore", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (with config.json and checkpoints/)")
    parser.add_argument("--sen-samples", type=int, default=None, help="test samples (default: all)")
    args = parser.parse_args(argv)
    print("| run | SEN (max over draws) % | SEN (released code's form) % |\n|---|---|---|")
    for run in args.runs:
        result = rescore(run, sen_samples=args.sen_samples)
        print(f"| {run} | {100 * result['SEN']:.2f} | {100 * result['SEN legacy']:.2f} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
