"""python -m eval.benchmark end to end on tiny settings: artifacts, report rows, method lookup, the paper's rows."""
import json

import numpy as np
import pytest

from eval import benchmark
from eval.papers import MEED_TABLES, meed_paper_row, meed_reference
from eval.report import validate_report
from tests.helpers import needs_fashion

METRICS = {"FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS"}


def run_benchmark(tmp_path, *extra, dataset="xor", k="2", methods="grad,l2x,random", seeds="2", eval_epochs="1",
                  models_dir=None):
    """``eval.benchmark.main`` in this process on a tiny setting (asserting exit code 0); returns its --out."""
    out = tmp_path / "run"
    argv = ["--dataset", dataset, "--k", k, "--methods", methods, "--seeds", seeds, "--train-samples", "100",
            "--test-samples", "20", "--epochs", "1", "--batch-size", "50", "--eval-epochs", eval_epochs,
            "--sen-samples", "3", "--out", str(out), "--verbose", "0", *extra]
    if models_dir is not None:
        argv += ["--models-dir", str(models_dir)]
    assert benchmark.main(argv) == 0
    return out


def test_cli_end_to_end_on_a_synthetic_task(tmp_path, capsys):
    out = run_benchmark(tmp_path, "--blackbox-epochs", "2", models_dir=tmp_path / "models")
    for name in ("config.json", "report.json", "report.md"):
        assert (out / name).is_file(), name
    assert not (out / "figures").exists()  # tabular data: no image figure
    report = validate_report(json.loads((out / "report.json").read_text()))
    assert report["kind"] == "eval.benchmark" and report["config"]["seeds"] == [0, 1]
    assert report["config"]["n_test"] == 20 and report["config"]["n_train"] == 100
    assert [(row["label"], row["seed"]) for row in report["rows"]] == [
        ("gradient", 0), ("gradient", 1), ("l2x", 0), ("l2x", 1), ("random", 0), ("random", 1)]
    for row in report["rows"]:
        assert METRICS | {"TPR", "TPR chance"} <= set(row)
        assert all(0.0 <= row[m] <= 1.0 for m in ("FS-M", "FU-M", "FS-A", "FU-A", "TPR"))
    timings = report["details"]["l2x"]["timings"]
    assert set(timings) == {"0", "1"} and "train_seconds" in timings["0"]
    assert "train_seconds" not in report["details"]["gradient"]["timings"]["0"]
    # Gradients do not depend on the seed; the random control does.
    gradient = [row for row in report["rows"] if row["label"] == "gradient"]
    assert gradient[0]["FS-M"] == gradient[1]["FS-M"]
    assert report["details"]["l2x"]["config"] == {"method": "l2x", "k": 2, "learning_rate": 1e-3, "seed": 0, "tau": 0.5}
    assert report["reference"] == []  # the paper has no XOR table
    markdown = (out / "report.md").read_text()
    assert "| l2x | 2 |" in markdown and "± " in markdown and "python -m eval.benchmark --dataset xor" in markdown
    assert "| l2x | 2 |" in capsys.readouterr().out


@pytest.mark.realdata
@needs_fashion
def test_cli_on_fashion_mnist_writes_the_figure_and_the_papers_rows(tmp_path):
    # A one-epoch black box in a private cache: the real data path without the 2-minute recipe.
    out = run_benchmark(tmp_path, "--blackbox-epochs", "1", dataset="fashion_mnist", k="64", methods="gi,vibi",
                        seeds="1", eval_epochs="0", models_dir=tmp_path / "models")
    assert (out / "figures" / "masked_examples.png").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["classes"] == [2, 6]  # MEED's Pullover vs Shirt
    reference = {row["label"]: row for row in report["reference"]}
    assert reference["vibi (VIBI)"]["FS-M"] == pytest.approx(0.8410)
    markdown = (out / "report.md").read_text()
    assert "paper: gradient_input (GI)" in markdown and "![masked examples](figures/masked_examples.png)" in markdown


def test_paper_rows_are_the_tables_numbers():
    assert meed_paper_row("fashion_mnist", "gradient") == {"FS-M": 58.60, "FU-M": 76.20, "FS-A": 93.70,
                                                           "FU-A": 95.45, "SEN": 2528, "TPS": 5e-5}
    assert "SEN" not in meed_paper_row("imdb", "l2x") and meed_paper_row("xor", "l2x") is None
    rows = meed_reference("fashion_mnist", ["gradient", "meed", "random"])
    assert [row["label"] for row in rows] == ["gradient (Grad)", "meed (Ours)"]
    assert rows[1]["FS-M"] == pytest.approx(0.978) and rows[1]["TPS"] == 1e-4  # fractions, TPS in seconds
    assert np.isclose(meed_reference("mnist", ["vibi"])[0]["SEN"], 0.0635)
    assert set(MEED_TABLES["imagenet"]) == {"meed"}
