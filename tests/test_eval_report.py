"""Reports (report.json / report.md, atomic writes, environment) and figures (PNG files)."""
import json
import os

import numpy as np
import pytest

from eval import (
    FidelityResult,
    atomic_write,
    environment,
    heatmap_overlay,
    markdown_table,
    masked_grid,
    to_jsonable,
    write_report,
)
from eval.report import COLUMNS, SCHEMA, build_report, validate_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_atomic_write_str_and_bytes_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    assert atomic_write(target, "héllo") == target
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(target.parent) == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # like open(), not tempfile's 0o600
    with pytest.raises(TypeError, match="data: expected str or bytes"):
        atomic_write(target, 3)


def test_atomic_write_failure_removes_the_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        atomic_write(tmp_path / "taken", "x")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_environment_has_the_versions():
    import platform
    import sys

    import keras
    import tensorflow as tf

    env = environment()
    assert {key: env[key] for key in ("python", "tensorflow", "keras", "numpy", "cpu_count", "executable")} == {
        "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "numpy": np.__version__, "cpu_count": os.cpu_count(), "executable": sys.executable}
    assert env["platform"] == platform.platform()
    assert env["gpus"] == [device.name for device in tf.config.list_physical_devices("GPU")]
    assert json.loads(json.dumps(env)) == env


def test_to_jsonable_numpy_and_non_finite_values():
    value = {"a": np.float32(0.5), "b": np.arange(3, dtype=np.int64), "c": (np.bool_(True), np.inf),
             "d": np.array([np.nan, -np.inf]), 4: None}
    assert to_jsonable(value) == {"a": 0.5, "b": [0, 1, 2], "c": [True, "inf"], "d": ["nan", "-inf"], "4": None}
    with pytest.raises(TypeError, match=r"value\['bad'\]: cannot store a set"):
        to_jsonable({"bad": {1, 2}})


def test_markdown_table_formats_fidelities_as_percent():
    rows = [{"method": "MEED", "FS-M": 0.91234, "FU-A": np.float32(0.5), "TPS": 0.00123456},
            {"method": "a|b", "FS-M": 1.0}]
    assert markdown_table(rows) == (
        "| method | FS-M | FU-A | TPS |\n"
        "|---|---|---|---|\n"
        "| MEED | 91.23 | 50.00 | 0.001235 |\n"
        "| a\\|b | 100.00 |  |  |\n"
    )
    table = markdown_table(rows, columns=["FS-M", "method"], formats={"FS-M": ".3f"})
    assert table.splitlines()[2] == "| 0.912 | MEED |"
    with pytest.raises(ValueError, match="rows: expected at least one column"):
        markdown_table([])


def test_write_report_round_trip(tmp_path):
    metrics = FidelityResult(fs_m=np.float64(0.91234), fu_m=0.1, fs_a=0.8, fu_a=0.55,
                             train_seconds={"A'_S": 1.5, "A'_U": 1.25})
    config = {"dataset": "fashion_mnist", "k": np.int64(64), "shape": (28, 28, 1)}
    report = build_report("meed.train", label="seed7", seed=np.int64(7), config=config,
                          rows=[{"label": "MEED", "seed": 7, **metrics}, {"label": "Grad", "FS-M": 0.5}],
                          reference=[{"label": "Ours", "source": "MEED Table 4", "FS-M": 0.978}],
                          details={"per_sample_sen": np.array([0.1, np.inf])},
                          timings={"TPS": np.float32(0.25), **metrics.train_seconds}, command="python -m meed.train")
    json_path, md_path = write_report(tmp_path / "run1", report, title="MEED on fashion_mnist")
    stored = validate_report(json.loads(json_path.read_text()))
    assert stored["schema"] == SCHEMA and stored["kind"] == "meed.train" and stored["label"] == "seed7"
    assert stored["rows"][0] == {"label": "MEED", "seed": 7, "FS-M": 0.91234, "FU-M": 0.1, "FS-A": 0.8, "FU-A": 0.55}
    assert stored["columns"]["FU-M"] == {"format": "percent", "higher_is_better": False,
                                         "description": COLUMNS["FU-M"].description}
    assert stored["config"] == {"dataset": "fashion_mnist", "k": 64, "shape": [28, 28, 1]}
    assert stored["seed"] == 7 and stored["timings"] == {"TPS": 0.25, "A'_S": 1.5, "A'_U": 1.25}
    assert stored["details"] == {"per_sample_sen": [0.1, "inf"]}
    assert stored["environment"]["tensorflow"] and stored["created_utc"].endswith("+00:00")
    md = md_path.read_text()
    assert md.startswith("# MEED on fashion_mnist\n")
    assert "| label | seed | FS-M | FU-M | FS-A | FU-A |" in md
    assert "| MEED | 7 | 91.23 | 10.00 | 80.00 | 55.00 |" in md
    assert "| Grad |  | 50.00 |  |  |  |" in md and "| paper: Ours |  | 97.80 |" in md
    assert "FS-M, FU-M, FS-A, FU-A in %." in md and 'Rows "paper: ...": MEED Table 4.' in md
    assert sorted(os.listdir(tmp_path / "run1")) == ["report.json", "report.md"]


def test_reports_are_checked_against_the_schema(tmp_path):
    with pytest.raises(TypeError, match="config: expected a mapping"):
        build_report("x", label="a", seed=0, config=[1], rows=[])
    with pytest.raises(ValueError, match=r"rows\[0\]: expected a dict with a non-empty 'label'"):
        build_report("x", label="a", seed=0, config={}, rows=[{"FS-M": 1.0}])
    report = build_report("x", label="a", seed=0, config={}, rows=[{"label": "m", "FS-M": 1.0, "bits": 3.5}])
    assert report["columns"]["bits"] == {"format": "number", "higher_is_better": None, "description": ""}
    with pytest.raises(ValueError, match="expected a report of schema"):
        validate_report({**report, "schema": "other"})
    with pytest.raises(ValueError, match=r"\['rows'\]\[0\]\['FS-M'\]: expected a number"):
        validate_report({**report, "rows": [{"label": "m", "FS-M": "high"}]})
    with pytest.raises(ValueError, match="metric 'TPR' of the rows has no entry in 'columns'"):
        validate_report({**report, "rows": [{"label": "m", "TPR": 0.5}]})


def test_masked_grid_and_heatmap_overlay_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 8, 8, 1)).astype(np.float32)
    masks = (rng.uniform(size=(3, 8, 8)) < 0.3).astype(np.uint8)
    single = masked_grid(images, masks, tmp_path / "grid.png")
    several = masked_grid(rng.uniform(size=(3, 8, 8, 3)), {"MEED": masks, "VIBI": 1 - masks},
                          tmp_path / "figs" / "grid2.png", col_titles=["a", "b", "c"], max_images=2)
    heat = heatmap_overlay(images, rng.uniform(0, 3, size=(3, 4, 4)), tmp_path / "heat.png")
    for path in (single, several, heat):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    with pytest.raises(ValueError, match="row_titles: expected 3 titles"):
        masked_grid(images, {"a": masks, "b": masks}, tmp_path / "x.png", row_titles=["original", "a"])
    with pytest.raises(ValueError, match=r"masks\['a'\]: expected shape"):
        masked_grid(images, {"a": masks[:2]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="heatmaps: expected"):
        heatmap_overlay(images, np.ones((2, 8, 8)), tmp_path / "x.png")
