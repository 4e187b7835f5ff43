"""MEED selects the truly relevant features of synthetic data far above chance (issue evidence)."""
import numpy as np
import pytest

import data
from data.dataset import Dataset
from data.synthetic import l2x_tabular, planted_text
from eval.groundtruth import chance_true_positive_rate, true_positive_rate
from meed import build
from meed.presets import get
from meed.training import epoch_batches


def _dataset(name, x, y, relevant, n_train, shape):
    n_val = (len(x) - n_train) // 2
    cut = n_train + n_val
    return Dataset(name=name, x_train=x[:n_train], y_train=y[:n_train], x_val=x[n_train:cut], y_val=y[n_train:cut],
                   x_test=x[cut:], y_test=y[cut:], feature_shape=shape, class_names=["0", "1"], source="synthetic",
                   ground_truth={"train": relevant[:n_train], "val": relevant[n_train:cut], "test": relevant[cut:]})


def _train_meed(dataset, preset, epochs, blackbox_epochs):
    blackbox, _ = data.train_blackbox(dataset, epochs=blackbox_epochs, seed=0, verbose=0)
    model = build(preset, blackbox, seed=0)
    steps = len(dataset.x_train) // preset.batch_size
    model.fit(epoch_batches(dataset.x_train, preset.batch_size, 0, 0, epochs), epochs=epochs,
              steps_per_epoch=steps, verbose=0)
    return model


@pytest.mark.parametrize("task", ["xor"])
def test_meed_finds_the_relevant_features_of_l2x_tasks(task):
    x, y, relevant = l2x_tabular(task, 5000, seed=0)
    dataset = _dataset(task, x, y, relevant, 4000, (10,))
    preset = get(task)
    model = _train_meed(dataset, preset, epochs=4, blackbox_epochs=10)
    tpr, _ = true_positive_rate(model.select(dataset.x_test), dataset.ground_truth["test"])
    chance = chance_true_positive_rate(model.k, 10)
    assert tpr > 0.85 > chance + 0.4, (tpr, chance)


def test_meed_finds_the_planted_keywords():
    ids, labels, relevant, _ = planted_text(1400, length=100, seed=0)
    dataset = _dataset("planted_text", ids, labels, relevant, 1000, (100,))
    preset = get("planted_text", k=5)
    model = _train_meed(dataset, preset, epochs=2, blackbox_epochs=2)
    tpr, _ = true_positive_rate(model.select(dataset.x_test), dataset.ground_truth["test"])
    chance = chance_true_positive_rate(5, 100)
    assert tpr > 0.8 > chance + 0.5, (tpr, chance)
