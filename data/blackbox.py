"""The black-box models the papers explain: built and trained once by a named recipe, then cached.

``blackbox(name, recipe=..., classes=...)`` returns the trained Keras model for a dataset, training it on
first use with the recipe (data.models.RECIPES; default: the dataset's, DEFAULT_RECIPES) and caching it
as ``<models_dir>/<key>.keras`` with a JSON record beside it: its test accuracy, the paper's accuracy,
the recipe, the data source and the versions used. ``python -m data.blackbox --dataset fashion_mnist
--classes 2 6`` (console script ``xai-blackbox``) does the same from the shell, writes a run report and
prints the accuracy next to the paper's (MEED Section 4.3: 92.20% on Fashion-MNIST Pullover vs Shirt).
"""
from __future__ import annotations

import sys
from pathlib import Path

from data.startup import quiet_startup

if __name__ == "__main__" or Path(sys.argv[0]).name == "xai-blackbox":  # the CLI, not a library import
    quiet_startup()

import json  # noqa: E402 (TensorFlow's start-up messages are hidden first when run as a program)
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data.dataset import DATASETS, Dataset, check_classes, check_dataset, check_path, load  # noqa: E402
from data.io import atomic_save, atomic_write  # noqa: E402
from data.models import RECIPES, default_recipe, paper_accuracy, recipe  # noqa: E402
from kernels.seeds import seeded  # noqa: E402
from kernels.validation import check_choice, check_int  # noqa: E402

log = logging.getLogger("data")


def default_models_dir() -> Path:
    """Where trained black boxes are cached: $XAI_MODELS_DIR, else ~/.keras/explain-models."""
    env = os.environ.get("XAI_MODELS_DIR")
    return Path(env) if env else Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "explain-models"


def _check_epochs(epochs) -> int | None:
    return None if epochs is None else check_int("epochs", epochs, minimum=1)


def cache_paths(name: str, classes, recipe_name: str, seed: int, epochs: int | None,
                models_dir=None) -> tuple[Path, Path]:
    """The cached model and its JSON record: ``<dataset>[-<classes>]-<recipe>-seed<S>[-e<epochs>]``
    + ``.keras`` / ``.json`` in ``models_dir`` (default ``default_models_dir()``), e.g.
    ``fashion_mnist-2-6-mnist_cnn-seed0.keras``. ``epochs`` None means the recipe's."""
    check_dataset(name)
    recipe(recipe_name)
    classes = check_classes(classes)
    seed = check_int("seed", seed, minimum=0)
    epochs = _check_epochs(epochs)
    check_path("models_dir", models_dir)
    stem = "-".join([name, *map(str, classes or ()), recipe_name, f"seed{seed}"]
                    + ([f"e{epochs}"] if epochs is not None else []))
    directory = Path(models_dir) if models_dir is not None else default_models_dir()
    return directory / f"{stem}.keras", directory / f"{stem}.json"


def train_blackbox(dataset: Dataset, *, recipe_name: str | None = None, epochs: int | None = None,
                   seed: int = 0, verbose: int = 1) -> tuple[keras.Model, dict]:
    """Train a black box for ``dataset`` by recipe ``recipe_name`` and return it with a record of it.

    The recipe (architecture, optimiser, batch size, epochs) defaults to the dataset's
    (DEFAULT_RECIPES); ``epochs`` overrides its epochs for quick runs. The model is built and trained
    inside ``kernels.seeds.seeded(seed)``: the weights are those of ``keras.utils.set_random_seed(seed)``,
    but the caller's global random state is left as it was. Accuracy is measured on the held-out test
    half and on the whole original test split (validation + test), which is what the papers report.
    ``verbose`` is Keras' fit verbosity (0 silent, 1 progress bar, 2 one line per epoch).
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset: expected a data.Dataset (data.load), got {type(dataset).__name__}")
    recipe_name = default_recipe(dataset.name) if recipe_name is None else recipe_name
    spec = recipe(recipe_name)
    epochs = spec.epochs if epochs is None else _check_epochs(epochs)
    seed = check_int("seed", seed, minimum=0)
    verbose = check_int("verbose", verbose, minimum=0, maximum=2)
    with seeded(seed):
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
        "recipe": recipe_name,
        "seed": seed,
        "epochs": epochs,
        "batch_size": spec.batch_size,
        "optimizer": type(model.optimizer).__name__,
        "test_accuracy": accuracy(dataset.x_test, dataset.y_test),
        "full_test_accuracy": accuracy(np.concatenate([dataset.x_val, dataset.x_test]),
                                       np.concatenate([dataset.y_val, dataset.y_test])),
        "n_train": int(len(dataset.x_train)),
        "train_seconds": round(seconds, 2),
        "data_source": dataset.source,
        "class_names": list(dataset.class_names),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    return model, info


def blackbox(name: str, *, recipe: str | None = None, classes=None, seed: int = 0, epochs: int | None = None,
             models_dir=None, data_dir=None, train_if_missing: bool = True, verbose: int = 1) -> keras.Model:
    """The black box for dataset ``name`` trained by ``recipe`` (cached; trained on first use).

    recipe: a key of data.models.RECIPES; None = the dataset's default (DEFAULT_RECIPES).
    classes: original label ids to keep, None = all classes (as in ``data.load``; MEED's pairs are
    ``eval.papers.MEED_CLASSES``). seed: the weights, the training order and the validation / test
    split. epochs: None = the recipe's. The model's record is attached as ``model.blackbox_info`` (also
    stored as JSON beside it); it adds "classes" and the paper's accuracy ("paper_accuracy", None when
    no paper reports one for this dataset, recipe and classes) to ``train_blackbox``'s record.
    """
    recipe_name = default_recipe(check_dataset(name)) if recipe is None else recipe
    model_path, info_path = cache_paths(name, classes, recipe_name, seed, epochs, models_dir)
    check_path("data_dir", data_dir)
    if not isinstance(train_if_missing, (bool, np.bool_)):
        raise TypeError(f"train_if_missing: expected True or False, got {train_if_missing!r}")
    verbose = check_int("verbose", verbose, minimum=0, maximum=2)
    classes = check_classes(classes)
    if model_path.exists() and info_path.exists():
        log.info("black box %s (%s): loading %s", name, recipe_name, model_path)
        model = keras.models.load_model(model_path)
        model.blackbox_info = json.loads(info_path.read_text())
        return model
    if not train_if_missing:
        flags = f"--dataset {name} --recipe {recipe_name}" + (f" --classes {' '.join(map(str, classes))}"
                                                              if classes else "")
        raise FileNotFoundError(
            f"name: no trained black box for {name!r} (recipe {recipe_name!r}) at {model_path}; train it with "
            f"`python -m data.blackbox {flags}` or call blackbox(..., train_if_missing=True)")
    dataset = load(name, classes=classes, data_dir=data_dir, seed=seed)
    model, info = train_blackbox(dataset, recipe_name=recipe_name, epochs=epochs, seed=seed, verbose=verbose)
    info["classes"] = list(classes) if classes else None
    info["paper_accuracy"] = paper_accuracy(name, recipe_name, classes)
    atomic_save(model_path, model.save)
    atomic_write(info_path, json.dumps(info, indent=2))
    log.info("black box %s (%s): trained and cached at %s", name, recipe_name, model_path)
    model.blackbox_info = info
    return model


def describe(model: keras.Model) -> str:
    """One line: the black box's recipe and test accuracy next to the paper's."""
    info = getattr(model, "blackbox_info", None)
    if not isinstance(info, dict):
        raise TypeError(f"model: expected a black box from data.blackbox (with .blackbox_info), got {model!r:.80}")
    classes = f" (classes {', '.join(map(str, info['classes']))})" if info.get("classes") else ""
    line = (f"{info['dataset']}{classes} black box, recipe {info['recipe']}: test accuracy "
            f"{100 * info['full_test_accuracy']:.2f}% on the whole test split "
            f"({100 * info['test_accuracy']:.2f}% on the held-out half)")
    if info.get("paper_accuracy"):
        line += f"; paper: {100 * info['paper_accuracy']:.2f}%"
    return line


def main(argv=None) -> int:
    """CLI: train (or load) a dataset's black box by a recipe and report its accuracy beside the paper's."""
    # data is below eval in the dependency order: only this CLI uses the run layer, so it is imported here
    # and the library part of data never imports eval. TensorFlow's start-up messages were hidden at the
    # module's import (data.startup) when it runs as a program.
    from eval.report import Column
    from eval.run import Run, cli_parser, count, run_main

    parser = cli_parser("python -m data.blackbox", main.__doc__,
                        shared=("dataset", "seed", "out", "data_dir", "models_dir", "verbose"), required=("dataset",))
    parser.add_argument("--recipe", default=None,
                        help=f"the recipe (default: the dataset's, data.models.DEFAULT_RECIPES); one of "
                             f"{sorted(RECIPES)}")
    parser.add_argument("--classes", type=int, nargs="+", default=None,
                        help="original class ids to keep, in this order (default: all classes)")
    parser.add_argument("--epochs", type=count(1), default=None, help="override the recipe's epochs (quick runs)")
    parser.add_argument("--retrain", action="store_true", help="train again even if a cached model exists")
    columns = {
        "test accuracy": Column("percent", True, "accuracy on the held-out half of the test split"),
        "whole test split accuracy": Column("percent", True, "accuracy on the whole test split (validation + test), "
                                                             "what the papers report"),
        "paper accuracy": Column("percent", True, "the paper's test accuracy of its black box"),
    }

    def validate(args):
        check_choice("--dataset", args.dataset, DATASETS)
        args.recipe = default_recipe(args.dataset) if args.recipe is None else check_choice(
            "--recipe", args.recipe, RECIPES)
        args.classes = check_classes(args.classes)

    def body(args):
        paths = cache_paths(args.dataset, args.classes, args.recipe, args.seed, args.epochs, args.models_dir)
        run = Run("data.blackbox", args, default_dir=Path("runs") / "blackbox" / args.dataset / paths[0].stem)
        if args.retrain:
            for path in paths:
                path.unlink(missing_ok=True)
        with run.phase("black box", f"recipe {args.recipe} on {args.dataset}"):
            model = blackbox(args.dataset, recipe=args.recipe, classes=args.classes, seed=args.seed,
                             epochs=args.epochs, models_dir=args.models_dir, data_dir=args.data_dir,
                             verbose=run.keras_verbose)
        info = model.blackbox_info
        row = {"label": info["recipe"], "seed": info["seed"], "test accuracy": info["test_accuracy"],
               "whole test split accuracy": info["full_test_accuracy"]}
        if info.get("paper_accuracy") is not None:
            row["paper accuracy"] = info["paper_accuracy"]
        run.finish([row], title=f"Black box: {args.dataset}, recipe {args.recipe}", columns=columns,
                   details={"blackbox": info})
        print(describe(model))

    return run_main(parser, body, argv, validate=validate)


if __name__ == "__main__":
    raise SystemExit(main())
