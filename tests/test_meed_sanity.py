"""meed.sanity end to end on a small ground-truth preset: every explainer trains and is compared."""
import json

import pytest

from eval.report import validate_report
from meed import sanity


def test_sanity_check_trains_four_explainers_and_compares_their_masks(cli_run):
    out = cli_run("meed.sanity")  # --preset xor --epochs 1 --train-samples 512 --blackbox-epochs 1 (conftest)
    report = validate_report(json.loads((out / "report.json").read_text()))
    rows = {row["label"]: row for row in report["rows"]}
    assert list(rows) == ["original", "model randomisation", "data randomisation",
                          "original, seed 1 (reference)", "chance (k / d)"]
    k, n_test = report["config"]["k"], report["config"]["n_test"]
    for name in ("model randomisation", "data randomisation", "original, seed 1 (reference)"):
        # Every mask holds exactly k of the 10 features: a cosine is (overlap / k), so the mean over the
        # test set is a whole number of shared features divided by k * n_test.
        shared = rows[name][sanity.COSINE] * k * n_test
        assert shared == pytest.approx(round(shared), abs=1e-6) and 0 <= round(shared) <= k * n_test, name
    assert rows["chance (k / d)"][sanity.COSINE] == pytest.approx(k / 10)
    assert rows["original, seed 1 (reference)"]["seed"] == 1
    # The reference row explains the very black box of the original with another seed.
    accuracy = "black-box test accuracy"
    assert rows["original, seed 1 (reference)"][accuracy] == rows["original"][accuracy]
    reference = {row["label"]: row for row in report["reference"]}
    assert reference["model randomisation (IMDB)"][sanity.COSINE] == pytest.approx(0.0939)
    assert "| model randomisation |" in (out / "report.md").read_text()
