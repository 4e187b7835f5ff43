"""python -m masking.explain end to end on learnable IDX data: one report with every masking-suite column for
the optimiser at two TV weights and a baseline; bad flags are one-line errors."""
import json

from eval.report import validate_report
from masking.explain import main
from tests.formats import write_learnable_idx_folder


def test_the_cli_scores_the_optimiser_per_tv_weight_and_the_baselines(tmp_path, models_dir):
    write_learnable_idx_folder(tmp_path / "data", n_train=200, n_test=20)
    out = tmp_path / "run"
    assert main(["--dataset", "fashion_mnist", "--data-dir", str(tmp_path / "data"), "--methods", "masking,random",
                 "--tv", "0,0.1", "--steps", "5", "--test-samples", "4", "--pool", "50", "--out", str(out),
                 "--verbose", "0"]) == 0
    report = validate_report(json.loads((out / "report.json").read_text()))
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == {"masking (TV 0)", "masking (TV 0.1)", "random"}
    for row in rows.values():
        assert 0.0 <= row["completeness (gray)"] <= 1.0 and 0.0 <= row["soundness (random image)"] <= 1.0
        assert "insertion (rise, blur)" in row and "saliency metric" in row
    configs = report["details"]
    assert configs["masking (TV 0.1)"]["config"]["tv"] == 0.1 and configs["masking (TV 0)"]["config"]["steps"] == 5


def test_bad_flags_are_one_line_errors(capsys):
    assert main(["--dataset", "fashion_mnist", "--tv", "0.1,x"]) == 2
    assert "--tv: expected comma-separated numbers" in capsys.readouterr().err
    assert main(["--dataset", "fashion_mnist", "--tv", "-1"]) == 2
    assert "--tv: expected numbers >= 0" in capsys.readouterr().err
