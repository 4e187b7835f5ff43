"""Datasets (real sources and synthetic ground truth) and the black-box models to explain.

- ``load(name, classes=..., data_dir=..., seed=...)`` -> ``Dataset`` with train / validation / test splits
  (validation = a seeded half of the test split, as in the MEED paper).
- ``blackbox(name, recipe=..., classes=...)`` -> a trained model for that dataset (classes None = all),
  built and trained by a named recipe (data.models.RECIPES; default: the dataset's, ``default_recipe``)
  and cached after the first training.
- ``synthetic``: generators whose truly relevant features are known (L2X tabular tasks, planted-keyword
  text, objects on a cluttered canvas).

Names are imported on first use (data.lazy).
"""
from data.lazy import lazy_exports

__all__ = ["Dataset", "load", "blackbox", "train_blackbox", "synthetic", "approximator_factory", "recipe",
           "default_recipe"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "Dataset": "data.dataset", "load": "data.dataset", "blackbox": "data.blackbox",
    "train_blackbox": "data.blackbox", "synthetic": "data.synthetic", "approximator_factory": "data.models",
    "recipe": "data.models", "default_recipe": "data.models",
})
