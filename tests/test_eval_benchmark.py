"""python -m eval.benchmark end to end on tiny settings: artifacts, report keys, method lookup, errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from data.sources import SYSTEM_FASHION_MNIST_DIR
from eval import benchmark

METRICS = {"FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS"}


def run_cli(tmp_path, *extra, dataset="xor", k="2", methods="grad,l2x,random", seeds="2", eval_epochs="1",
            models_dir=None):
    out = tmp_path / "run"
    argv = ["--dataset", dataset, "--k", k, "--methods", methods, "--seeds", seeds, "--train-samples", "100",
            "--test-samples", "20", "--epochs", "1", "--batch-size", "50", "--eval-epochs", eval_epochs,
            "--sen-samples", "3", "--out", str(out), "--verbose", "0", *extra]
    if models_dir is not None:
        argv += ["--models-dir", str(models_dir)]
    assert benchmark.main(argv) == 0
    return out


def test_cli_end_to_end_on_a_synthetic_task(tmp_path, capsys):
    out = run_cli(tmp_path, "--blackbox-epochs", "2", models_dir=tmp_path / "models")
    for name in ("config.json", "report.json", "report.md"):
        assert (out / name).is_file(), name
    assert not (out / "figures").exists()  # tabular data: no image figure
    report = json.loads((out / "report.json").read_text())
    assert {"created_utc", "dataset", "k", "seeds", "config", "methods", "paper", "blackbox",
            "environment"} <= set(report)
    assert report["seeds"] == [0, 1] and report["k"] == 2 and report["config"]["n_test"] == 20
    assert list(report["methods"]) == ["gradient", "l2x", "random"]
    for name, result in report["methods"].items():
        assert set(result["seeds"]) == {"0", "1"}
        for run in result["seeds"].values():
            assert METRICS | {"TPR", "TPR chance"} <= set(run["metrics"])
            assert all(0.0 <= run["metrics"][m] <= 1.0 for m in ("FS-M", "FU-M", "FS-A", "FU-A", "TPR"))
            assert ("train_seconds" in run["timings"]) == (name == "l2x")
        assert set(result["summary"]["FS-M"]) == {"mean", "std", "n"} and result["summary"]["FS-M"]["n"] == 2
    # Gradients do not depend on the seed; the random control does.
    gradient = report["methods"]["gradient"]["seeds"]
    assert gradient["0"]["metrics"]["FS-M"] == gradient["1"]["metrics"]["FS-M"]
    assert report["methods"]["gradient"]["summary"]["FS-M"]["std"] == 0.0
    assert report["methods"]["l2x"]["hyper"]["k"] == 2
    assert report["paper"]["rows"] == {}
    markdown = (out / "report.md").read_text()
    assert "| l2x | 2 |" in markdown and "± " in markdown and "python -m eval.benchmark --dataset xor" in markdown
    assert "| l2x | 2 |" in capsys.readouterr().out


@pytest.mark.realdata
@pytest.mark.skipif(not Path(SYSTEM_FASHION_MNIST_DIR).exists(), reason="needs the Debian package dataset-fashion-mnist")
def test_cli_on_fashion_mnist_writes_the_figure_and_the_papers_rows(tmp_path):
    # A one-epoch black box in a private cache: the real data path without the 2-minute recipe.
    out = run_cli(tmp_path, "--blackbox-epochs", "1", dataset="fashion_mnist", k="64", methods="gi,vibi", seeds="1",
                  eval_epochs="0", models_dir=tmp_path / "models")
    assert (out / "figures" / "masked_examples.png").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["paper"]["rows"]["vibi (VIBI)"]["FS-M"] == 84.10
    markdown = (out / "report.md").read_text()
    assert "paper: gradient_input (GI)" in markdown and "![masked examples](figures/masked_examples.png)" in markdown


def test_methods_resolve_through_every_registry():
    resolved = benchmark.resolve(["grad", "gradient", "GI", "l2x", "meed"])
    assert [name for name, _ in resolved] == ["gradient", "gradient_input", "l2x", "meed"]
    assert [module.__name__ for _, module in resolved] == ["baselines", "baselines", "baselines", "meed"]
    known = benchmark.known_methods()
    assert {"vibi", "cxplain", "random"} <= set(known)
    import meed

    assert "dataset" in meed.hyperparameters("meed") and "k" in meed.hyperparameters("meed")


def test_unknown_method_and_bad_options_are_errors_listing_what_is_known(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--dataset", "xor", "--k", "2", "--methods", "grad,l2y"])
    err = capsys.readouterr().err
    assert "methods: unknown value 'l2y'" in err and "'l2x'" in err and "'meed'" in err and "'gradient'" in err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--dataset", "xor", "--k", "2", "--methods", "l2x", "--options", "{not json"])
    assert "--options: expected JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--dataset", "xor", "--k", "2", "--methods", "l2x", "--options", '{"vibi": {}}'])
    assert "--options: ['vibi'] not among the benchmarked methods" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--dataset", "xor", "--k", "0", "--methods", "l2x"])
    assert "--k: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_paper_rows_are_the_tables_numbers():
    rows = benchmark.paper_results("fashion_mnist", ["gradient", "meed", "random"])
    assert rows == {"gradient (Grad)": {"FS-M": 58.60, "FU-M": 76.20, "FS-A": 93.70, "FU-A": 95.45, "SEN": 2528,
                                        "TPS": 5e-5},
                    "meed (Ours)": {"FS-M": 97.80, "FU-M": 66.65, "FS-A": 99.80, "FU-A": 99.65, "SEN": 0.70,
                                    "TPS": 1e-4}}
    assert "SEN" not in benchmark.paper_results("imdb", ["l2x"])["l2x (L2X)"]
    assert np.isclose(benchmark.paper_results("mnist", ["vibi"])["vibi (VIBI)"]["SEN"], 6.35)
