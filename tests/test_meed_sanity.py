"""meed.sanity end to end on a small ground-truth preset: every explainer trains and is compared."""
import json

import pytest

from meed import sanity


def test_sanity_check_trains_four_explainers_and_compares_their_masks(tmp_path):
    out = tmp_path / "sanity"
    assert sanity.main(["--preset", "xor", "--epochs", "1", "--train-samples", "512", "--blackbox-epochs", "1",
                        "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["metrics"]
    assert list(rows) == ["original", "model randomisation", "data randomisation",
                          "original, seed 1 (reference)", "chance (k / d)"]
    for name in ("model randomisation", "data randomisation", "original, seed 1 (reference)"):
        assert 0.0 <= rows[name]["mask cosine with the original"] <= 1.0, name
    assert rows["chance (k / d)"]["mask cosine with the original"] == pytest.approx(report["config"]["k"] / 10)
    assert rows["model randomisation"]["paper (IMDB)"] == pytest.approx(0.0939)
    assert "| model randomisation |" in (out / "report.md").read_text()


def test_sanity_check_rejects_a_reference_seed_equal_to_the_seed():
    with pytest.raises(ValueError, match="--reference-seed"):
        sanity.parse_args(["--seed", "3", "--reference-seed", "3"])
    with pytest.raises(ValueError, match="--train-samples"):
        sanity.parse_args(["--train-samples", "0"])
