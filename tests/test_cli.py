"""The run layer under every CLI: --help, one-line errors with exit code 2, console scripts, and the one report
schema -- each report-writing CLI runs once on a tiny setting, its report.json validates, and eval.summary
aggregates reports of different kinds together."""
import ast
import importlib
import json

import pytest

from eval.report import SCHEMA, validate_report
from eval.run import to_argv
from eval.summary import load_reports, summarize, summary_table
from tests.conftest import CLI_RUNS
from tests.helpers import REPO

#: Every command-line program: module -> console script (setup.py).
CLIS = {
    "data.blackbox": "xai-blackbox",
    "eval.benchmark": "xai-benchmark",
    "eval.summary": "xai-summary",
    "eval.registry": "xai-methods",
    "meed.train": "meed-train",
    "meed.sanity": "meed-sanity",
    "meed.rescore": "meed-rescore",
    "iba.explain": "iba-explain",
    "iba.train_readout": "iba-train-readout",
    "vp.train": "vp-train",
    "vp.compare": "vp-compare",
    "masking.explain": "masking-explain",
}

#: (module, argv, text the error line names): user mistakes that must be one line and exit code 2.
BAD = [
    ("meed.train", ["--preset", "fashion"], "preset: unknown value 'fashion' (did you mean 'fashion_mnist'"),
    ("meed.train", ["--preset", "xor", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    ("meed.train", ["--preset", "xor", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),
    ("meed.train", ["--preset", "xor", "--eval-epochs", "-1"], "argument --eval-epochs: expected an integer >= 0"),
    ("meed.train", ["--preset", "xor", "--train-samples", "0"], "argument --train-samples: expected an integer >= 1"),
    ("meed.sanity", ["--preset", "xor", "--reference-seed", "0"], "--reference-seed: expected a seed other than"),
    ("meed.rescore", ["/nonexistent/run"], "runs: /nonexistent/run is not a meed.train run directory"),
    ("iba.explain", ["--dataset", "mnistt", "--layer", "conv2"], "--dataset: unknown value 'mnistt'"),
    ("iba.explain", ["--dataset", "localization", "--layer", "conv3", "--betas", "0.1"], "--betas: write beta as b/k"),
    ("iba.explain", ["--dataset", "localization", "--layer", "conv3", "--methods", "gradcm"],
     "--methods: name: unknown value 'gradcm' (did you mean 'gradcam'"),
    ("iba.explain", ["--dataset", "localization", "--layer", "conv3", "--readout", "/nonexistent"],
     "--readout: /nonexistent is not a SavedModel directory"),
    ("iba.train_readout", ["--dataset", "localization", "--layer", "conv3", "--readout-layers", "conv2",
                           "--beta", "10"], "--beta: write beta as b/k"),
    ("iba.train_readout", ["--dataset", "localization", "--layer", "conv3"], "--readout-layers: required"),
    ("eval.benchmark", ["--dataset", "xor", "--k", "0"], "argument --k: expected an integer >= 1, got 0"),
    ("eval.benchmark", ["--dataset", "xor", "--k", "2", "--methods", "grad,l2y"],
     "--methods: name: unknown value 'l2y' (did you mean 'l2x'"),
    ("eval.benchmark", ["--dataset", "xor", "--k", "2", "--options", "{not json"], "--options: expected JSON"),
    ("eval.benchmark", ["--dataset", "xor", "--k", "2", "--methods", "l2x", "--options", '{"vibi": {}}'],
     "--options: ['vibi'] not among the benchmarked methods"),
    ("eval.benchmark", ["--dataset", "xor", "--k", "2", "--methods", "l2x", "--options", '{"l2x": {"tauu": 1}}'],
     "l2x: unknown hyperparameter(s) ['tauu']"),
    ("eval.summary", ["/nonexistent/*"], "runs: paths_or_glob: expected run directories or report.json files"),
    ("eval.registry", ["gradcm"], "name: unknown value 'gradcm'"),
    ("data.blackbox", ["--dataset", "nope"], "nope"),
    ("vp.train", ["--preset", "mnistt"], "preset: unknown value 'mnistt' (did you mean 'mnist'"),
    ("vp.train", ["--preset", "mnist", "--upsample", "3"], "--upsample: upsample: expected a power of two"),
    ("vp.train", ["--preset", "mnist", "--baseline", "gray"], "argument --baseline: invalid choice"),
    ("vp.compare", ["--preset", "mnist", "--methods", "vp,ep2"], "--methods: name: unknown value 'ep2'"),
    ("vp.compare", ["--preset", "mnist", "--k", "1.5"], "--k: expected a share of the pixels in (0, 1)"),
]


def _main(module):
    return importlib.import_module(module).main


@pytest.mark.parametrize("module", sorted(CLIS))
def test_every_cli_answers_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main(module)(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {module}")


@pytest.mark.parametrize("module, argv, expected", BAD)
def test_a_bad_value_is_one_line_and_exit_code_2(module, argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a failing run might write lands in the repository
    assert _main(module)(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"python -m {module}: error: "), err
    assert expected in err[0], err[0]
    assert "Traceback" not in err[0]


def test_every_cli_has_a_console_script():
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = next(node for node in ast.walk(tree) if isinstance(node, ast.Dict)
                   and any(isinstance(k, ast.Constant) and k.value == "console_scripts" for k in node.keys))
    entries = ast.literal_eval(scripts.values[0])
    installed = dict(entry.split("=") for entry in entries)
    assert {script: f"{module}:main" for module, script in CLIS.items()} == installed
    for module in CLIS:
        assert callable(_main(module))


# ------------------------------------------------------------------------------- one report schema

@pytest.fixture(scope="module")
def runs(cli_run):
    """Every report-writing CLI but iba's (tests/test_iba_cli.py) once, on the synthetic XOR task (conftest)."""
    return {kind: cli_run(kind) for kind in ("data.blackbox", "meed.train", "meed.sanity", "eval.benchmark",
                                             "meed.rescore")}


def test_every_cli_writes_the_one_report_schema(runs):
    for kind, out in runs.items():
        config = json.loads((out / "config.json").read_text())
        assert config["command"].startswith(f"python -m {kind}"), kind
        report = validate_report(json.loads((out / "report.json").read_text()))
        assert report["schema"] == SCHEMA and report["kind"] == kind and report["rows"], kind
        assert (out / "report.md").read_text().startswith("# "), kind
        assert report["timings"] and report["environment"]["tensorflow"], kind


def test_summary_aggregates_runs_of_every_kind(runs):
    reports = load_reports([str(out) for out in runs.values()])
    rows = {row["group"]: row for row in summarize(reports)}
    assert rows["gradient"]["n"] == 2 and rows["l2x"]["metrics"]["FS-M"]["n"] == 2  # benchmark: two seeds
    assert rows["MEED"]["n"] == 1 and "SEN" in rows["MEED"]["metrics"]  # meed.train
    assert "mask cosine with the original" in rows["model randomisation"]["metrics"]  # meed.sanity
    assert "SEN legacy" in rows["MEED xor"]["metrics"]  # meed.rescore
    assert "test accuracy" in rows["tabular_mlp"]["metrics"]  # data.blackbox
    table = summary_table(list(rows.values()), metrics=None)
    assert "| l2x | 2 |" in table and "| model randomisation | 1 |" in table


# ------------------------------------------------------------------------------- from Python: run(**options)

def test_to_argv_maps_keyword_options_to_the_flags():
    from eval.benchmark import parser
    argv = to_argv(parser(), {"dataset": "xor", "k": 2, "methods": ["grad", "l2x"], "seeds": 3,
                              "options": {"l2x": {"tau": 0.5}}, "out": None})
    assert argv == ["--dataset", "xor", "--k", "2", "--methods", "grad,l2x", "--seeds", "3",
                    "--options", '{"l2x": {"tau": 0.5}}']
    from meed.train import parser as train_parser
    assert to_argv(train_parser(), {"preset": "xor", "resume": True}) == ["--preset", "xor", "--resume"]
    assert to_argv(train_parser(), {"resume": False}) == []
    with pytest.raises(TypeError, match=r"tset_samples: unknown option of .*expected one of .*'test_samples'"):
        to_argv(parser(), {"tset_samples": 3})


def test_rescore_takes_its_positional_runs_from_python():
    from meed.rescore import parser
    assert to_argv(parser(), {"runs": ["a", "b"], "sen_samples": 5}) == ["--sen-samples", "5", "a", "b"]


def test_benchmark_run_from_python_equals_the_command_line(runs, tmp_path):
    """``eval.benchmark.run(**options)`` parses, validates and runs exactly what the CLI does: same rows."""
    from eval.benchmark import run
    argv = CLI_RUNS["eval.benchmark"]
    options = {"dataset": "xor", "k": 2, "methods": ["grad", "l2x", "random"], "seeds": 2, "train_samples": 200,
               "test_samples": 20, "epochs": 1, "batch_size": 50, "eval_epochs": 1, "sen_samples": 3,
               "models_dir": str(runs["eval.benchmark"].parent / "models"), "verbose": 0,
               "out": str(tmp_path / "python")}
    assert argv[:4] == ["--dataset", "xor", "--k", "2"]
    out = run(**options)
    assert out == tmp_path / "python"
    ours = validate_report(json.loads((out / "report.json").read_text()))
    theirs = json.loads((runs["eval.benchmark"] / "report.json").read_text())
    measured = [name for name, column in ours["columns"].items() if column["format"] != "seconds"]  # not TPS
    assert [{m: row[m] for m in measured + ["label", "seed"]} for row in ours["rows"]] == \
        [{m: row[m] for m in measured + ["label", "seed"]} for row in theirs["rows"]]
    with pytest.raises(ValueError, match=r"argument --k: expected an integer >= 1, got 0"):
        run(**{**options, "k": 0})
    with pytest.raises(ValueError, match=r"--methods: name: unknown value 'l2y'"):
        run(**{**options, "methods": ["l2y"]})
