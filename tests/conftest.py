"""Shared fixtures: tiny black boxes built once per session (tests/tiny.py), a private black-box cache, and
the runs of the report-writing CLIs.

A test that trains or caches a black box uses ``models_dir`` (a temporary folder), so no test reads or
writes the user's cache (~/.keras/explain-models).
"""
import importlib

import pytest

from tests import tiny


@pytest.fixture(scope="session")
def image_model():
    """The tiny image CNN (8, 8, 3) -> 3 classes and three inputs for it."""
    return tiny.image_cnn(), tiny.images(3, (8, 8, 3))


@pytest.fixture(scope="session")
def text_model():
    """The tiny token CNN (10 ids, vocabulary 20) -> 2 classes and three inputs for it."""
    return tiny.text_cnn(), tiny.token_ids(3, seed=1)


@pytest.fixture(scope="session")
def object_task():
    """``tiny.object_task()``: a CNN trained on the localisation set (the object decides the class), trained
    once for the IBA tests that need a model whose relevant region is known."""
    return tiny.object_task()


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A private black-box cache folder ($XAI_MODELS_DIR points at it for the test)."""
    folder = tmp_path / "models"
    monkeypatch.setenv("XAI_MODELS_DIR", str(folder))
    return folder


#: The report-writing CLIs (but iba's, tests/test_iba_cli.py) on tiny settings of the synthetic XOR task.
CLI_RUNS = {
    "data.blackbox": ["--dataset", "xor", "--epochs", "2"],
    "meed.train": ["--preset", "xor", "--epochs", "1", "--train-samples", "512", "--eval-epochs", "1",
                   "--sen-samples", "5"],
    "meed.sanity": ["--preset", "xor", "--epochs", "1", "--train-samples", "512", "--blackbox-epochs", "1"],
    "eval.benchmark": ["--dataset", "xor", "--k", "2", "--methods", "grad,l2x,random", "--seeds", "2",
                       "--train-samples", "200", "--test-samples", "20", "--epochs", "1", "--batch-size", "50",
                       "--eval-epochs", "1", "--sen-samples", "3"],
}


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """``cli_run(kind)``: the output folder of the CLI ``kind`` (a module of CLI_RUNS, or "meed.rescore" of
    the meed.train run), run once per session with --verbose 0 and one private black-box cache."""
    root = tmp_path_factory.mktemp("runs")
    done = {}

    def run(kind):
        if kind not in done:
            out = root / kind
            if kind == "meed.rescore":
                argv = [str(run("meed.train")), "--sen-samples", "5"]
            else:
                argv = CLI_RUNS[kind] + ["--models-dir", str(root / "models")]
            assert importlib.import_module(kind).main(argv + ["--verbose", "0", "--out", str(out)]) == 0, kind
            done[kind] = out
        return done[kind]

    return run
