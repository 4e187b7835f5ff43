"""The black-box models the papers explain: trained once with the paper's recipe, then cached.

``blackbox(name)`` returns the trained Keras model for a dataset, training it on first use and caching
it as ``<models_dir>/<key>.keras`` with a JSON beside it that records its test accuracy, the paper's
accuracy, the data source and the versions used. ``python -m data.blackbox --dataset fashion_mnist``
(console script ``meed-blackbox``) does the same from the shell and prints the accuracy next to the
paper's (MEED Section 4.3: 92.20% on Fashion-MNIST Pullover vs Shirt).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.dataset import Dataset, load
from data.io import atomic_save, atomic_write
from data.models import recipe
from kernels.validation import check_choice, check_positive

log = logging.getLogger("data")

#: The class pairs of the MEED settings (reference/meed_original_code.md, "Datasets and settings").
DEFAULT_CLASSES: dict[str, tuple[int, ...] | None] = {
    "fashion_mnist": (2, 6),
    "mnist": (3, 8),
}


def default_models_dir() -> Path:
    """Where trained black boxes are cached: $XAI_MODELS_DIR, else ~/.keras/explain-models."""
    env = os.environ.get("XAI_MODELS_DIR")
    return Path(env) if env else Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "explain-models"


def cache_paths(name: str, classes, seed: int, epochs: int | None, models_dir=None) -> tuple[Path, Path]:
    """The cached model and its JSON record, e.g. ``fashion_mnist-2-6-seed0.keras`` / ``.json``."""
    parts = [name] + ([str(c) for c in classes] if classes else []) + [f"seed{seed}"]
    if epochs is not None:
        parts.append(f"e{epochs}")
    directory = Path(models_dir) if models_dir is not None else default_models_dir()
    stem = "-".join(parts)
    return directory / f"{stem}.keras", directory / f"{stem}.json"


def train_blackbox(dataset: Dataset, *, recipe_name: str | None = None, epochs: int | None = None,
                   seed: int = 0, verbose: int = 1) -> tuple[keras.Model, dict]:
    """Train the paper's black box for ``dataset`` and return it with a record of its accuracy.

    The recipe (architecture, optimiser, batch size, epochs) is the paper's for ``recipe_name``
    (default: the dataset's name); ``epochs`` overrides it for quick runs. Accuracy is measured on the
    held-out test half and on the whole original test split (validation + test), which is what the
    paper reports.
    """
    spec = recipe(recipe_name or dataset.name)
    epochs = spec.epochs if epochs is None else int(epochs)
    check_positive("epochs", epochs)
    keras.utils.set_random_seed(seed)
    model = spec.builder(input_shape=dataset.feature_shape, n_classes=dataset.n_classes,
                         name=f"blackbox_{dataset.name}")
    model.compile(optimizer=spec.optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(dataset.x_train, dataset.y_train, batch_size=spec.batch_size, epochs=epochs,
              validation_data=(dataset.x_val, dataset.y_val), verbose=verbose)
    seconds = time.perf_counter() - start

    def accuracy(x, y):
        return float(np.mean(model.predict(x, batch_size=512, verbose=0).argmax(axis=1) == y))

    info = {
        "dataset": dataset.name,
        "seed": int(seed),
        "epochs": epochs,
        "batch_size": spec.batch_size,
        "optimizer": type(model.optimizer).__name__,
        "test_accuracy": accuracy(dataset.x_test, dataset.y_test),
        "full_test_accuracy": accuracy(np.concatenate([dataset.x_val, dataset.x_test]),
                                       np.concatenate([dataset.y_val, dataset.y_test])),
        "paper_accuracy": spec.paper_accuracy,
        "n_train": int(len(dataset.x_train)),
        "train_seconds": round(seconds, 2),
        "data_source": dataset.source,
        "class_names": list(dataset.class_names),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    return model, info


def blackbox(name: str, *, models_dir=None, train_if_missing: bool = True, seed: int = 0,
             classes=None, data_dir=None, epochs: int | None = None, verbose: int = 1) -> keras.Model:
    """The trained black box for dataset ``name`` (cached; trained on first use with the paper's recipe).

    ``classes`` defaults to the MEED setting of the dataset (Fashion-MNIST 2 vs 6, MNIST 3 vs 8). The
    model's accuracy record is attached as ``model.blackbox_info`` (also stored as JSON beside it).
    """
    recipe(name)  # validates the name against the known recipes
    classes = DEFAULT_CLASSES.get(name) if classes is None else tuple(classes)
    model_path, info_path = cache_paths(name, classes, seed, epochs, models_dir)
    if model_path.exists() and info_path.exists():
        log.info("black box %s: loading %s", name, model_path)
        model = keras.models.load_model(model_path)
        model.blackbox_info = json.loads(info_path.read_text())
        return model
    if not train_if_missing:
        raise FileNotFoundError(
            f"name: no trained black box for {name!r} at {model_path}; train it with "
            f"`python -m data.blackbox --dataset {name}` or call blackbox(..., train_if_missing=True)"
        )
    dataset = load(name, classes=classes, data_dir=data_dir, seed=seed)
    model, info = train_blackbox(dataset, epochs=epochs, seed=seed, verbose=verbose)
    info["classes"] = list(classes) if classes else None
    atomic_save(model_path, model.save)
    atomic_write(info_path, json.dumps(info, indent=2))
    log.info("black box %s: trained and cached at %s", name, model_path)
    model.blackbox_info = info
    return model


def describe(model: keras.Model) -> str:
    """One line: the black box's test accuracy next to the paper's."""
    info = model.blackbox_info
    classes = f" (classes {', '.join(map(str, info['classes']))})" if info.get("classes") else ""
    line = (f"{info['dataset']}{classes} black box: test accuracy {100 * info['full_test_accuracy']:.2f}% "
            f"on the whole test split ({100 * info['test_accuracy']:.2f}% on the held-out half)")
    if info.get("paper_accuracy"):
        line += f"; paper: {100 * info['paper_accuracy']:.2f}%"
    return line


def main(argv=None):
    """CLI: train (or load) a dataset's black box and print its accuracy beside the paper's."""
    from data.models import RECIPES

    parser = argparse.ArgumentParser(prog="python -m data.blackbox", description=main.__doc__)
    parser.add_argument("--dataset", required=True, help=f"one of {sorted(RECIPES)}")
    parser.add_argument("--classes", type=int, nargs="+", default=None,
                        help="original class ids (default: the MEED pair for MNIST/Fashion-MNIST)")
    parser.add_argument("--models-dir", default=None, help=f"cache folder (default {default_models_dir()})")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the paper's epochs (quick runs)")
    parser.add_argument("--retrain", action="store_true", help="train again even if a cached model exists")
    parser.add_argument("--verbose", type=int, default=1 if sys.stdout.isatty() else 2,
                        help="Keras verbosity: 1 progress bar (default on a terminal), 2 one line per epoch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    check_choice("--dataset", args.dataset, RECIPES)
    if args.retrain:
        classes = tuple(args.classes) if args.classes else DEFAULT_CLASSES.get(args.dataset)
        for path in cache_paths(args.dataset, classes, args.seed, args.epochs, args.models_dir):
            path.unlink(missing_ok=True)
    model = blackbox(args.dataset, models_dir=args.models_dir, seed=args.seed, classes=args.classes,
                     data_dir=args.data_dir, epochs=args.epochs, verbose=args.verbose)
    print(describe(model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
