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
    env = environment()
    for key in ("python", "tensorflow", "keras", "numpy", "platform", "cpu_count"):
        assert key in env and env[key] is not None
    json.dumps(env)


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
    json_path, md_path = write_report(
        tmp_path / "run1", config=config, metrics=metrics, seed=np.int64(7),
        timings={"TPS": np.float32(0.25), **metrics.train_seconds},
        extra={"per_sample_sen": np.array([0.1, np.inf])},
        table=[{"method": "MEED", **metrics}, {"method": "Grad", "FS-M": 0.5}],
    )
    report = json.loads(json_path.read_text())
    assert report["metrics"] == {"FS-M": 0.91234, "FU-M": 0.1, "FS-A": 0.8, "FU-A": 0.55}
    assert report["config"] == {"dataset": "fashion_mnist", "k": 64, "shape": [28, 28, 1]}
    assert report["seed"] == 7
    assert report["timings"] == {"TPS": 0.25, "A'_S": 1.5, "A'_U": 1.25}
    assert report["extra"] == {"per_sample_sen": [0.1, "inf"]}
    assert report["environment"]["tensorflow"]
    assert report["created_utc"].endswith("+00:00")
    md = md_path.read_text()
    assert "| method | FS-M | FU-M | FS-A | FU-A |" in md
    assert "| MEED | 91.23 | 10.00 | 80.00 | 55.00 |" in md
    assert "| Grad | 50.00 |  |  |  |" in md
    assert "FS-M, FU-M, FS-A, FU-A in %." in md
    assert sorted(os.listdir(tmp_path / "run1")) == ["report.json", "report.md"]


def test_write_report_without_table_shows_the_metrics(tmp_path):
    _, md_path = write_report(tmp_path, config={}, metrics={"FS-M": 1.0, "SEN": 0.0018}, seed=0)
    assert "| 100.00 | 0.18 |" in md_path.read_text()
    with pytest.raises(TypeError, match="metrics: expected a mapping"):
        write_report(tmp_path, config={}, metrics=[1.0], seed=0)


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
