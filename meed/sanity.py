"""``python -m meed.sanity --preset fashion_mnist``: MEED's sanity check (Liang et al. 2020, Section 4.1.3).

Adebayo et al.'s two randomisation tests, for an amortised explainer: MEED is trained with the same
preset and seed against

1. the black box (the explainer being checked),
2. a copy of it with every weight re-drawn from its initializer (model randomisation,
   ``eval.model_randomization``),
3. the same architecture trained with the same recipe on permuted training labels (data randomisation,
   ``eval.data_randomization`` + ``data.train_blackbox``),
4. the black box again with another seed (the reference: how much two honest explainers agree),

and the top-k test masks of 2-4 are compared with those of 1 by their cosine
(``eval.mask_cosine_similarity``; chance k / d). The paper reports 9.39% (model) and 10.25% (data) on
IMDB: low means the explanations depend on the model. Writes report.json / report.md (eval.run) to
``runs/meed/<preset>/sanity-seed<S>/``.
"""
from __future__ import annotations

from eval.run import quiet_startup

quiet_startup()

import dataclasses  # noqa: E402 (TensorFlow's start-up messages are hidden first)
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import data  # noqa: E402
from eval.protocol import predict_probabilities  # noqa: E402
from eval.report import Column  # noqa: E402
from eval.run import Run, UsageError, cli_parser, count, invoke, print_report, run_main  # noqa: E402
from eval.sanity import (data_randomization, expected_random_cosine, mask_cosine_similarity,  # noqa: E402
                         model_randomization)
from eval.training import subset  # noqa: E402
from meed import presets  # noqa: E402
from meed.builder import build  # noqa: E402

log = logging.getLogger("meed")

#: Section 4.1.3's sanity scores (IMDB, fractions).
PAPER_SCORES = {"model randomisation": 0.0939, "data randomisation": 0.1025}
COSINE = "mask cosine with the original"
COLUMNS = {
    "black-box test accuracy": Column("percent", None,
                                      "test accuracy of the black box the explainer was trained against"),
    COSINE: Column("percent", False, "mean cosine of the binary top-k masks with the original explainer's"),
    "std": Column("percent", None, "standard deviation of the cosines over the test images"),
}


def parser():
    p = cli_parser("python -m meed.sanity", __doc__, shared=("preset", "seed", "out", "data_dir", "models_dir",
                                                             "train_samples", "verbose"))
    p.set_defaults(preset="fashion_mnist")
    p.add_argument("--reference-seed", type=count(0), default=1, help="seed of the reference explainer (4.)")
    p.add_argument("--epochs", type=count(1), default=None, help="MEED training epochs (default: the preset's)")
    p.add_argument("--blackbox-epochs", type=count(1), default=None,
                   help="epochs of the permuted-label black box (default: the paper's recipe)")
    return p


def validate(args):
    presets.get(args.preset)  # a clear error for an unknown name, before anything loads
    if args.reference_seed == args.seed:
        raise UsageError(f"--reference-seed: expected a seed other than --seed {args.seed}")


def train_masks(preset, blackbox, x_train, x_test, *, epochs, seed, verbose=0) -> np.ndarray:
    """Train MEED against ``blackbox`` (the preset's settings) and return its top-k masks of ``x_test``."""
    model = build(preset, blackbox, seed=seed)
    model.fit(x_train, epochs=epochs, verbose=verbose)
    return model.select(x_test)


def accuracy(model, dataset) -> float:
    return float(np.mean(predict_probabilities(model, dataset.x_test, 512).argmax(axis=1) == dataset.y_test))


def work(args) -> Path:
    """Run the sanity check for the parsed flags; return the run directory."""
    preset = presets.get(args.preset)
    epochs = preset.epochs if args.epochs is None else args.epochs
    run_ = Run("meed.sanity", args, default_dir=Path("runs") / "meed" / preset.name / f"sanity-seed{args.seed}",
               config={"epochs": epochs})
    with run_.phase("data", f"{preset.dataset} and its black box"):
        dataset = data.load(preset.dataset, classes=preset.classes, data_dir=args.data_dir)
        blackbox = data.blackbox(preset.dataset, classes=preset.classes, data_dir=args.data_dir,
                                 models_dir=args.models_dir, verbose=0)
    x_train = subset(dataset.x_train, args.train_samples, args.seed)

    with run_.phase("data randomisation", "training the black box on permuted labels"):
        permuted = dataclasses.replace(dataset, y_train=data_randomization(dataset.y_train, args.seed))
        permuted_box, _ = data.train_blackbox(permuted, epochs=args.blackbox_epochs, seed=args.seed, verbose=0)
    boxes = {
        "original": (blackbox, args.seed),
        "model randomisation": (model_randomization(blackbox, args.seed), args.seed),
        "data randomisation": (permuted_box, args.seed),
        f"original, seed {args.reference_seed} (reference)": (blackbox, args.reference_seed),
    }
    masks, rows = {}, []
    for name, (box, seed) in boxes.items():
        with run_.phase(f"MEED vs {name}", f"training MEED against the {name} black box (seed {seed})"):
            masks[name] = train_masks(preset, box, x_train, dataset.x_test, epochs=epochs, seed=seed,
                                      verbose=run_.keras_verbose)
        row = {"label": name, "seed": seed, "black-box test accuracy": accuracy(box, dataset)}
        if name != "original":
            cosine = mask_cosine_similarity(masks["original"], masks[name])
            row.update({COSINE: float(cosine.mean()), "std": float(cosine.std())})
        rows.append(row)
    k = int(masks["original"][0].sum())
    rows.append({"label": "chance (k / d)", COSINE: expected_random_cosine(k, int(masks["original"][0].size))})
    reference = [{"label": f"{name} (IMDB)", "source": "MEED (Liang et al., KDD 2020), Section 4.1.3", COSINE: value}
                 for name, value in PAPER_SCORES.items()]
    return run_.finish(rows, title=f"MEED sanity check on {preset.name} (seed {args.seed})", columns=COLUMNS,
                       reference=reference, config={"k": k, "n_train": len(x_train), "n_test": len(dataset.x_test)})


def run(**options) -> Path:
    """From Python: the flags as keyword arguments, e.g. ``run(preset="xor", epochs=1)``; returns the run
    directory (a bad value raises ValueError)."""
    return invoke(parser(), work, options, validate=validate)


def main(argv=None) -> int:
    return run_main(parser(), lambda args: print_report(work(args), args.verbose), argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
