"""Datasets (real sources and synthetic ground truth) and the black-box models to explain.

- ``load(name, classes=..., data_dir=..., seed=...)`` -> ``Dataset`` with train / validation / test splits
  (validation = a seeded half of the test split, as in the MEED paper).
- ``blackbox(name)`` -> the paper's trained model for that dataset (cached after the first training).
- ``synthetic``: generators whose truly relevant features are known (L2X tabular tasks, planted-keyword
  text, objects on a cluttered canvas).
"""
from data import synthetic
from data.blackbox import blackbox, train_blackbox
from data.dataset import Dataset, load
from data.models import approximator_factory, recipe

__all__ = ["Dataset", "load", "blackbox", "train_blackbox", "synthetic", "approximator_factory", "recipe"]
