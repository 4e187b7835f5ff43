"""MEED selects the truly relevant features of synthetic data far above chance (issue evidence)."""
import pytest

import data
from data.synthetic import l2x_tabular, planted_text
from eval.groundtruth import chance_true_positive_rate, true_positive_rate
from meed import build
from meed.presets import get
from tests import tiny


def _train_meed(dataset, preset, epochs, blackbox_epochs):
    blackbox, _ = data.train_blackbox(dataset, epochs=blackbox_epochs, seed=0, verbose=0)
    model = build(preset, blackbox, seed=0)
    model.fit(dataset.x_train, epochs=epochs, verbose=0)  # the preset's batch size, seeded epoch order
    return model


@pytest.mark.parametrize("task", ["xor"])
def test_meed_finds_the_relevant_features_of_l2x_tasks(task):
    x, y, relevant = l2x_tabular(task, 5000, seed=0)
    dataset = tiny.dataset(task, x, y, 4000, 500, ground_truth=relevant)
    preset = get(task)
    model = _train_meed(dataset, preset, epochs=4, blackbox_epochs=10)
    tpr, _ = true_positive_rate(model.select(dataset.x_test), dataset.ground_truth["test"])
    chance = chance_true_positive_rate(model.k, 10)
    assert tpr > 0.85 > chance + 0.4, (tpr, chance)


def test_meed_finds_the_planted_keywords():
    ids, labels, relevant, _ = planted_text(1400, length=100, seed=0)
    dataset = tiny.dataset("planted_text", ids, labels, 1000, 200, ground_truth=relevant)
    preset = get("planted_text", k=5)
    model = _train_meed(dataset, preset, epochs=2, blackbox_epochs=2)
    tpr, _ = true_positive_rate(model.select(dataset.x_test), dataset.ground_truth["test"])
    chance = chance_true_positive_rate(5, 100)
    assert tpr > 0.8 > chance + 0.5, (tpr, chance)
