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
IMDB: low means the explanations depend on the model. Writes report.json / report.md to
``runs/meed/<preset>/sanity-seed<S>/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np

import data
from eval.protocol import predict_probabilities
from eval.report import write_report
from eval.sanity import data_randomization, expected_random_cosine, mask_cosine_similarity, model_randomization
from kernels.validation import check_int
from meed import presets
from meed.builder import build
from meed.training import epoch_batches, training_subset

log = logging.getLogger("meed")

#: Section 4.1.3's sanity scores (IMDB, %).
PAPER_SCORES = {"model randomisation": 9.39, "data randomisation": 10.25}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meed.sanity", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="fashion_mnist", help=f"one of {sorted(presets.PRESETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-seed", type=int, default=1, help="seed of the reference explainer (4.)")
    parser.add_argument("--epochs", type=int, default=None, help="MEED training epochs (default: the preset's)")
    parser.add_argument("--train-samples", type=int, default=None, help="a seeded subset of the training data")
    parser.add_argument("--blackbox-epochs", type=int, default=None,
                        help="epochs of the permuted-label black box (default: the paper's recipe)")
    parser.add_argument("--out", default=None, help="run directory (default runs/meed/<preset>/sanity-seed<S>)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models-dir", default=None, help="black-box cache folder")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    presets.get(args.preset)  # a clear error for an unknown name, before anything loads
    for name in ("epochs", "train_samples", "blackbox_epochs"):
        if getattr(args, name) is not None:
            check_int("--" + name.replace("_", "-"), getattr(args, name), minimum=1)
    if args.reference_seed == args.seed:
        raise ValueError(f"--reference-seed: expected a seed other than --seed {args.seed}")
    return args


def train_masks(preset, blackbox, x_train, x_test, *, epochs, seed, verbose=0) -> np.ndarray:
    """Train MEED against ``blackbox`` (the preset's settings) and return its top-k masks of ``x_test``."""
    model = build(preset, blackbox, seed=seed)
    steps = len(x_train) // preset.batch_size
    model.fit(epoch_batches(x_train, preset.batch_size, seed, 0, epochs), epochs=epochs, steps_per_epoch=steps,
              verbose=verbose)
    return model.select(x_test)


def accuracy(model, dataset) -> float:
    return float(np.mean(predict_probabilities(model, dataset.x_test, 512).argmax(axis=1) == dataset.y_test))


def run(args) -> Path:
    preset = presets.get(args.preset)
    epochs = preset.epochs if args.epochs is None else args.epochs
    run_dir = Path(args.out) if args.out else Path("runs") / "meed" / preset.name / f"sanity-seed{args.seed}"
    dataset = data.load(preset.dataset, classes=preset.classes, data_dir=args.data_dir)
    blackbox = data.blackbox(preset.dataset, classes=preset.classes, data_dir=args.data_dir,
                             models_dir=args.models_dir, verbose=0)
    x_train = training_subset(dataset.x_train, args.train_samples, args.seed)

    log.info("data randomisation: training the black box on permuted labels")
    permuted = dataclasses.replace(dataset, y_train=data_randomization(dataset.y_train, args.seed))
    permuted_box, _ = data.train_blackbox(permuted, epochs=args.blackbox_epochs, seed=args.seed, verbose=0)
    boxes = {
        "original": (blackbox, args.seed),
        "model randomisation": (model_randomization(blackbox, args.seed), args.seed),
        "data randomisation": (permuted_box, args.seed),
        f"original, seed {args.reference_seed} (reference)": (blackbox, args.reference_seed),
    }
    masks, timings, rows = {}, {}, []
    for name, (box, seed) in boxes.items():
        log.info("training MEED against the %s black box (seed %d)", name, seed)
        start = time.perf_counter()
        masks[name] = train_masks(preset, box, x_train, dataset.x_test, epochs=epochs, seed=seed,
                                  verbose=args.verbose)
        timings[f"MEED vs {name}"] = time.perf_counter() - start
        row = {"explainer trained against": name, "black-box test accuracy": accuracy(box, dataset)}
        if name != "original":
            cosine = mask_cosine_similarity(masks["original"], masks[name])
            row.update({"mask cosine with the original": float(cosine.mean()), "std": float(cosine.std())})
        if name in PAPER_SCORES:
            row["paper (IMDB)"] = PAPER_SCORES[name] / 100
        rows.append(row)
    k = int(masks["original"][0].sum())
    chance = expected_random_cosine(k, int(masks["original"][0].size))
    rows.append({"explainer trained against": "chance (k / d)", "mask cosine with the original": chance})
    config = {**vars(args), "epochs": epochs, "k": k, "n_train": len(x_train), "n_test": len(dataset.x_test)}
    write_report(run_dir, config=config, metrics={row["explainer trained against"]: row for row in rows},
                 seed=args.seed, timings=timings, table=rows)
    return run_dir


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    run_dir = run(parse_args(argv))
    print((run_dir / "report.md").read_text())
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
