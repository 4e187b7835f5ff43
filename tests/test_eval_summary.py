"""Summaries of repeated runs (eval.summary): loading report.json files, mean ± std per group, table, CLI."""
import json
import math
import runpy
import sys

import pytest

from eval import load_reports, summarize, summary_table, write_report
from eval.report import build_report
from eval.summary import main

# Three seeds of the normal mode and two of the legacy mode; values chosen so that means and sample
# stds are exact in binary floating point.
RUNS = [
    ("normal-s0", {"legacy": False, "ablation": None}, {"FS-M": 0.5, "FU-M": 0.25, "SEN": None, "TPS": 1e-4}),
    ("normal-s1", {"legacy": False, "ablation": None}, {"FS-M": 0.75, "FU-M": 0.25, "SEN": 0.5, "TPS": 2e-4}),
    ("normal-s2", {"legacy": False, "ablation": None}, {"FS-M": 1.0, "FU-M": 0.25, "SEN": 0.25, "TPS": 3e-4}),
    ("legacy-s0", {"legacy": True, "ablation": "no_ail"}, {"FS-M": 0.5, "FU-M": 0.5, "FS-A": 0.875}),
    ("legacy-s1", {"legacy": True, "ablation": "no_ail"}, {"FS-M": 0.625, "FU-M": 0.5, "FS-A": 0.875}),
]


def write_run(folder, config, metrics, seed, label="MEED"):
    report = build_report("meed.train", label=folder.name, seed=seed, config=config,
                          rows=[{"label": label, "seed": seed, **metrics}])
    write_report(folder, report, title=folder.name)


@pytest.fixture
def runs_dir(tmp_path):
    for seed, (name, config, metrics) in enumerate(RUNS):
        write_run(tmp_path / "runs" / name, {**config, "seed": seed}, metrics, seed)
    (tmp_path / "runs" / "in-progress").mkdir()  # a run without report.json yet: skipped
    return tmp_path / "runs"


def test_load_reports_from_a_glob_of_run_directories(runs_dir):
    reports = load_reports(str(runs_dir / "*"))
    assert [r["path"] for r in reports] == [str(runs_dir / name / "report.json") for name in sorted(
        name for name, _, _ in RUNS)]
    assert {"schema", "kind", "created_utc", "seed", "config", "rows", "columns", "timings", "environment",
            "details"} <= set(reports[0])
    # files, several patterns and overlapping matches: each report once
    again = load_reports([runs_dir / "legacy-s0" / "report.json", str(runs_dir / "legacy-*"),
                          str(runs_dir / "**" / "report.json")])
    assert [r["path"] for r in again][:2] == [str(runs_dir / "legacy-s0" / "report.json"),
                                              str(runs_dir / "legacy-s1" / "report.json")]
    assert len(again) == len(RUNS)


def test_summarize_means_and_sample_stds_are_exact(runs_dir):
    (row,) = summarize(load_reports(str(runs_dir / "*")))
    assert row["group"] == "MEED" and row["n"] == 5 and len(row["paths"]) == 5
    # FS-M: 0.5, 0.625, 0.5, 0.75, 1.0 -> mean 0.675, squared deviations sum 0.175, / (5 - 1)
    assert row["metrics"]["FS-M"]["mean"] == pytest.approx(0.675, abs=1e-15)
    assert row["metrics"]["FS-M"]["std"] == pytest.approx(math.sqrt(0.175 / 4), abs=1e-15)
    assert row["metrics"]["SEN"] == {"mean": 0.375, "std": math.sqrt(0.03125), "n": 2}  # the None is ignored
    assert list(row["metrics"]) == ["FS-M", "FU-M", "FS-A", "SEN", "TPS"]  # first appearance (legacy-s0 first)


def test_summarize_groups_by_key_paths_and_callables(runs_dir):
    reports = load_reports(str(runs_dir / "*"))
    legacy, normal = summarize(reports, group_by="config.legacy")  # sorted paths: legacy-* first
    assert (legacy["group"], legacy["n"], normal["group"], normal["n"]) == ("config.legacy=true, MEED", 2,
                                                                            "config.legacy=false, MEED", 3)
    assert normal["metrics"]["FS-M"] == {"mean": 0.75, "std": 0.25, "n": 3}
    assert normal["metrics"]["FU-M"] == {"mean": 0.25, "std": 0.0, "n": 3}
    assert normal["metrics"]["TPS"]["mean"] == pytest.approx(2e-4) and "FS-A" not in normal["metrics"]
    assert legacy["metrics"]["FS-M"] == {"mean": 0.5625, "std": math.sqrt(0.0078125), "n": 2}
    assert legacy["metrics"]["FS-A"] == {"mean": 0.875, "std": 0.0, "n": 2}

    two_keys = summarize(reports, group_by=["config.legacy", "config.ablation"])
    assert [r["group"] for r in two_keys] == ["config.legacy=true, config.ablation=no_ail, MEED",
                                              "config.legacy=false, config.ablation=null, MEED"]
    assert [r["group"] for r in summarize(reports, group_by="config.legacy,config.ablation")] == \
        [r["group"] for r in two_keys]
    by_seed = summarize(reports, group_by=lambda r: r["seed"] % 2)
    assert [(r["group"], r["n"]) for r in by_seed] == [("1, MEED", 2), ("0, MEED", 3)]


def test_rows_of_one_report_are_grouped_by_label_across_reports(tmp_path):
    for seed in (0, 1):
        report = build_report("eval.benchmark", label=f"run{seed}", seed=seed, config={}, rows=[
            {"label": "l2x", "seed": seed, "FS-M": 0.5 + seed / 4}, {"label": "vibi", "seed": seed, "FS-M": 0.25}])
        write_report(tmp_path / f"run{seed}", report, title="bench")
    l2x, vibi = summarize(load_reports(str(tmp_path / "run*")))
    assert (l2x["group"], l2x["n"], l2x["metrics"]["FS-M"]["mean"]) == ("l2x", 2, 0.625)
    assert (vibi["group"], vibi["n"], vibi["metrics"]["FS-M"]["std"]) == ("vibi", 2, 0.0)


def test_summary_table_cells_and_paper_rows(runs_dir):
    rows = summarize(load_reports(str(runs_dir / "*")), group_by="config.legacy")
    text = summary_table(rows, paper={"Ours": {"FS-M": 0.9904, "FU-M": 0.7470, "TPS": 1e-4}})
    lines = text.splitlines()
    assert lines[0] == "| group | n | FS-M | FU-M | FS-A | SEN | TPS |"
    assert lines[2] == "| config.legacy=true, MEED | 2 | 56.25 ± 8.84 | 50.00 ± 0.00 | 87.50 ± 0.00 |  |  |"
    assert lines[3] == ("| config.legacy=false, MEED | 3 | 75.00 ± 25.00 | 25.00 ± 0.00 |  | 37.50 ± 17.68 (n=2) "
                        "| 2.00e-04 ± 1.00e-04 |")
    assert lines[4] == "| paper: Ours |  | 99.04 | 74.70 |  |  | 1.00e-04 |"
    assert lines[-1] == ("FS-M, FU-M, FS-A, SEN in %; TPS in seconds; "
                         "mean ± sample std (ddof=1) over the n rows of each group.")
    assert "FU-A" not in text  # no run and no paper row has it

    only = summary_table(rows, metrics=["FS-A", "FS-M"]).splitlines()
    assert only[0] == "| group | n | FS-A | FS-M |"
    everything = summary_table(rows, metrics=None).splitlines()[0]
    assert everything == "| group | n | FS-M | FU-M | FS-A | SEN | TPS |"


def test_cli_writes_the_table(runs_dir, tmp_path, capsys):
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"Ours": {"FS-M": 0.9904}}))
    out = tmp_path / "out" / "summary.md"
    assert main([str(runs_dir / "*"), "--group-by", "config.legacy,config.ablation", "--metrics", "FS-M,FU-M",
                 "--paper", str(paper), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert capsys.readouterr().out == text
    assert "| config.legacy=false, config.ablation=null, MEED | 3 | 75.00 ± 25.00 | 25.00 ± 0.00 |" in text
    assert "| paper: Ours |  | 99.04 |  |" in text


def test_python_dash_m_entry_point(runs_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["eval.summary", str(runs_dir / "legacy-*")])
    with pytest.warns(RuntimeWarning, match="found in sys.modules"), pytest.raises(SystemExit) as exit_info:
        runpy.run_module("eval.summary", run_name="__main__")
    assert exit_info.value.code == 0
    assert "| MEED | 2 | 56.25 ± 8.84 | 50.00 ± 0.00 | 87.50 ± 0.00 |" in capsys.readouterr().out


def test_cli_reports_errors_clearly(tmp_path, capsys):
    assert main([str(tmp_path / "nothing-*")]) == 2
    assert "found none for" in capsys.readouterr().err


def test_load_reports_errors(tmp_path):
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(FileNotFoundError, match=r"found none for .*\(1 matching directories have no report.json\)"):
        load_reports(str(tmp_path / "*"))
    bad = tmp_path / "bad" / "report.json"
    bad.parent.mkdir()
    bad.write_text('{"metrics": {"FS-M": 0.5}')
    with pytest.raises(ValueError, match=r"bad/report.json: expected a report.json \(JSON\), got malformed"):
        load_reports(str(tmp_path / "bad"))
    bad.write_text('{"metrics": {"FS-M": 0.5}}')
    with pytest.raises(ValueError, match=r"bad/report.json: expected a report of schema 'keras-explain/report/1'"):
        load_reports(bad)
    with pytest.raises(TypeError, match=r"paths_or_glob: expected a path"):
        load_reports(3)


def test_summarize_and_table_errors(runs_dir):
    reports = load_reports(str(runs_dir / "*"))
    with pytest.raises(ValueError, match=r"group_by: .*legacy-s0/report.json has no 'config.seedz' "
                                         r"\(no 'seedz' among \['ablation', 'legacy', 'seed'\]\)"):
        summarize(reports, group_by="config.seedz")
    with pytest.raises(ValueError, match=r"group_by: expected non-empty key paths"):
        summarize(reports, group_by="config.legacy,")
    with pytest.raises(TypeError, match=r"group_by: expected None, a callable"):
        summarize(reports, group_by=3)
    with pytest.raises(ValueError, match=r"reports: expected at least one report"):
        summarize([])
    with pytest.raises(TypeError, match=r"reports: expected a list"):
        summarize(reports[0])
    with pytest.raises(ValueError, match=r"metric 'FS-M': expected a number, null or 'nan'/'inf'/'-inf', got 'x'"):
        summarize([{"rows": [{"label": "a", "FS-M": "x"}]}])
    assert summarize([{"rows": [{"label": "a", "SEN": "inf"}]}])[0]["metrics"]["SEN"]["mean"] == math.inf

    rows = summarize(reports)
    with pytest.raises(ValueError, match=r"metrics: none of \['FS-H'\] is in the reports; found metrics"):
        summary_table(rows, metrics=["FS-H"])
    with pytest.raises(TypeError, match=r"paper\['Ours'\]: expected a mapping \{metric: number\}"):
        summary_table(rows, paper={"Ours": {"FS-M": "99"}})
    with pytest.raises(TypeError, match=r"rows\[0\]: expected a summarize\(\) row"):
        summary_table([{"group": "a"}])
