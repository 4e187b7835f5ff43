"""Run reports: one ``report.json`` schema for every CLI, and ``report.md`` (the paper-style table).

A report is a JSON object (``SCHEMA``):

- ``schema``, ``kind`` (the CLI that wrote it, e.g. "meed.train"), ``label`` (the run's name),
  ``created_utc``, ``seed``, ``command``;
- ``config``: what the run was asked to do and what it resolved (data sizes, the black box's record);
- ``rows``: the measurements, a list of ``{"label": ..., "seed": ..., <metric>: value}``: one row per
  method (or setting) and seed, values as computed (fractions for the MEED metrics, seconds for times),
  a number, null (not measured) or the strings "nan" / "inf" / "-inf" (strict JSON has no such numbers);
- ``columns``: per metric ``{"format": "percent" | "seconds" | "number" | "integer", "higher_is_better":
  true | false | null, "description": ...}``, how report.md and ``eval.summary`` show it;
- ``reference``: rows of published numbers in the same units as ``rows`` (e.g. the paper's Table 4),
  each with a ``source``; shown beside the measured rows, never aggregated;
- ``details``: anything else worth keeping (curves, per-sample values, trajectories);
- ``timings`` (seconds per phase) and ``environment`` (versions, hardware).

``eval.summary`` aggregates the rows of any set of reports (mean +- std per label). report.md shows the
rows (percent columns x100 with two decimals: the unit of MEED's tables), the reference rows, extra
sections, timings, the configuration and the environment. Writes are atomic (temporary file + rename).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from data.io import atomic_write

#: The report format this code writes and reads.
SCHEMA = "keras-explain/report/1"
#: Keys of a row that are not metrics.
ROW_KEYS = ("label", "seed")
FORMATS = ("percent", "seconds", "number", "integer")


@dataclass(frozen=True)
class Column:
    """How a metric is shown: ``format`` (FORMATS), whether higher is better (None: neither), what it is."""

    format: str = "number"
    higher_is_better: bool | None = None
    description: str = ""

    def to_dict(self) -> dict:
        return {"format": self.format, "higher_is_better": self.higher_is_better, "description": self.description}


#: Columns every report knows: MEED's table columns (fractions shown in %, TPS in seconds).
COLUMNS: dict[str, Column] = {
    "FS-M": Column("percent", True, "agreement of M(x * mask) with M(x): the selected features alone"),
    "FU-M": Column("percent", False, "agreement of M(x * (1 - mask)) with M(x): the unselected features"),
    "FS-A": Column("percent", True, "FS with a post-hoc approximator trained on masked training data"),
    "FU-A": Column("percent", False, "FU with a post-hoc approximator trained on masked training data"),
    "SEN": Column("percent", False, "max-sensitivity ||s(x) - s(x')|| / ||s(x)|| over a ball of radius 0.2"),
    "TPS": Column("seconds", False, "explanation time per sample"),
    "TPR": Column("percent", True, "share of the truly relevant features the masks select"),
    "TPR chance": Column("percent", None, "TPR of uniformly random masks (k / d)"),
}
#: The MEED columns shown in % (fractions x 100).
PERCENT_COLUMNS = tuple(name for name, column in COLUMNS.items() if column.format == "percent")


def environment() -> dict[str, object]:
    """Versions and hardware a result was produced with (python, tensorflow, keras, numpy, platform, CPUs)."""
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "executable": sys.executable,
    }


def to_jsonable(value, *, where: str = "value"):
    """Convert ``value`` to plain JSON types (numpy scalars/arrays, tuples, paths, dates, mappings, dataclasses).

    A mapping that is also a dataclass (e.g. FidelityResult) is stored as its mapping, other
    dataclasses field by field, objects with ``to_dict()`` as that dict. Non-finite floats become the
    strings "inf", "-inf" and "nan" (strict JSON has no such numbers; ``float()`` reads them back).
    Anything else raises a TypeError naming where it was found.
    """
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
        value = value.to_dict()
    elif not isinstance(value, Mapping) and dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, where=f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in JSON ({value!r:.80})")


def percent(value) -> str:
    """A fraction as a percentage with two decimals (0.9123 -> "91.23")."""
    return f"{100.0 * float(value):.2f}"


def formatter(column: Column | None) -> Callable[[float], str]:
    """value -> text for a column: % with 2 decimals, seconds as 1.23e-04, integers, else 4 significant digits."""
    kind = column.format if column is not None else "number"
    if kind == "percent":
        return percent
    if kind == "seconds":
        return lambda value: f"{float(value):.2e}"
    if kind == "integer":
        return lambda value: f"{int(round(float(value)))}"
    return lambda value: f"{float(value):.4g}"


def _format_cell(value, format_fn) -> str:
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return value
    if format_fn is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        text = format_fn(value) if callable(format_fn) else format(value, format_fn)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Mapping], columns: Sequence[str] | None = None,
                   formats: Mapping[str, str | Callable] | None = None) -> str:
    """A GitHub markdown table of ``rows`` (dicts), one line per row.

    ``columns`` fixes which keys are shown and in which order (default: every key, in order of first
    appearance). ``formats`` maps a column to a spec for ``format()`` (such as ".3f") or a callable
    value -> str, applied to numbers; MEED's percent columns (COLUMNS) default to ``percent``, other
    floats to 4 significant digits. Missing values are left empty.
    """
    rows = [dict(row) for row in rows]
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    columns = [str(c) for c in columns]
    if not columns:
        raise ValueError("rows: expected at least one column, got no keys (pass rows or columns)")
    formatters = {c: percent for c in PERCENT_COLUMNS}
    formatters.update(formats or {})
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [_format_cell(row.get(c), formatters.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ the schema

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def metric_names(rows: Iterable[Mapping]) -> list[str]:
    """The metric keys of ``rows`` (every key but ROW_KEYS), in order of first appearance."""
    return list(dict.fromkeys(key for row in rows for key in row if key not in ROW_KEYS))


def _check_rows(name: str, rows) -> list[dict]:
    if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise TypeError(f"{name}: expected a list of row dicts {{'label': ..., metric: value}}, got {rows!r:.80}")
    checked = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not isinstance(row.get("label"), str) or not row["label"]:
            raise ValueError(f"{name}[{i}]: expected a dict with a non-empty 'label' string, got {row!r:.80}")
        checked.append(dict(row))
    return checked


def build_report(kind: str, *, label: str, seed, config: Mapping, rows, columns: Mapping | None = None,
                 reference=None, details: Mapping | None = None, timings: Mapping | None = None,
                 command: str | None = None, created_utc: str | None = None) -> dict:
    """A report dict of the schema (module docstring), JSON-ready; ``columns`` may hold Column objects
    or dicts and adds to COLUMNS' defaults for the metrics that appear in the rows."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a mapping, got {type(config).__name__}")
    rows = _check_rows("rows", rows)
    reference = _check_rows("reference", reference or [])
    known = {**COLUMNS, **dict(columns or {})}
    shown = {}
    for name in metric_names(rows + reference):
        column = known.get(name, Column())
        shown[name] = column.to_dict() if isinstance(column, Column) else dict(column)
    report = {
        "schema": SCHEMA,
        "kind": kind,
        "label": label,
        "created_utc": created_utc or _now(),
        "seed": seed,
        "command": command,
        "config": config,
        "rows": rows,
        "columns": shown,
        "reference": reference,
        "details": details or {},
        "timings": timings or {},
        "environment": environment(),
    }
    return to_jsonable(report, where="report")


def validate_report(report, where: str = "report") -> dict:
    """``report`` after checking it follows the schema; ValueError naming the first problem otherwise."""
    if not isinstance(report, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(report).__name__}")
    if report.get("schema") != SCHEMA:
        raise ValueError(f"{where}: expected a report of schema {SCHEMA!r} (written by this toolkit's CLIs), got "
                         f"schema {report.get('schema')!r}")
    for key, kind in (("kind", str), ("label", str), ("config", Mapping), ("rows", list), ("columns", Mapping),
                      ("reference", list), ("details", Mapping), ("timings", Mapping), ("environment", Mapping)):
        if not isinstance(report.get(key), kind):
            raise ValueError(f"{where}: expected {key!r} to be a {kind.__name__}, got {report.get(key)!r:.60}")
    for part in ("rows", "reference"):
        for i, row in enumerate(_check_rows(f"{where}[{part!r}]", report[part])):
            for name, value in row.items():
                if name in ROW_KEYS:
                    continue
                ok = value is None or value in ("nan", "inf", "-inf") or (
                    isinstance(value, (int, float)) and not isinstance(value, bool))
                if part == "reference" and name == "source":
                    ok = isinstance(value, str)
                if not ok:
                    raise ValueError(f"{where}[{part!r}][{i}][{name!r}]: expected a number, null or "
                                     f"'nan'/'inf'/'-inf', got {value!r:.60}")
    for name in metric_names(report["rows"]):
        if name not in report["columns"]:
            raise ValueError(f"{where}: metric {name!r} of the rows has no entry in 'columns'")
    return dict(report)


def columns_of(report: Mapping) -> dict[str, Column]:
    """The report's column metadata as Column objects."""
    return {name: Column(**value) for name, value in report.get("columns", {}).items()}


def rows_table(rows, columns: Mapping[str, Column], *, reference=(), metrics: Sequence[str] | None = None) -> str:
    """Markdown table of report rows (label, seed when the rows have one, the metrics) with the reference
    rows below as "paper: <label>" lines, numbers formatted per ``columns``."""
    rows, reference = list(rows), list(reference)
    metrics = list(metrics) if metrics is not None else metric_names(rows + reference)
    metrics = [m for m in metrics if m != "source"]
    head = ["label"] + (["seed"] if any(row.get("seed") is not None for row in rows) else [])
    shown = [dict(row) for row in rows] + [{**row, "label": f"paper: {row['label']}"} for row in reference]
    formats = {name: formatter(columns.get(name)) for name in metrics}
    return markdown_table(shown, columns=head + metrics, formats=formats) + units_line(metrics, columns)


def units_line(metrics: Sequence[str], columns: Mapping[str, Column]) -> str:
    """One line under a table: which columns are in %, which in seconds (empty when none)."""
    in_percent = [m for m in metrics if columns.get(m) is not None and columns[m].format == "percent"]
    in_seconds = [m for m in metrics if columns.get(m) is not None and columns[m].format == "seconds"]
    notes = ([f"{', '.join(in_percent)} in %"] if in_percent else []) + (
        [f"{', '.join(in_seconds)} in seconds"] if in_seconds else [])
    return ("\n" + "; ".join(notes) + ".\n") if notes else ""


def write_report(run_dir, report: Mapping, *, title: str, table: str | None = None,
                 sections: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``run_dir/report.json`` and ``run_dir/report.md`` atomically; return their paths.

    report.md: the title, when and with which seed, ``table`` (markdown) or the rows table
    (``rows_table``), the ``sections`` (markdown blocks), the command, timings, configuration and
    environment.
    """
    report = validate_report(report)
    run_dir = Path(run_dir)
    json_path = atomic_write(run_dir / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    if table is None:
        table = rows_table(report["rows"], columns_of(report), reference=report["reference"]) \
            if report["rows"] else "(no rows)\n"
    sources = sorted({row["source"] for row in report["reference"] if row.get("source")})
    lines = [f"# {title}", "", f"Created {report['created_utc']} (UTC), seed {report['seed']}.", "", table]
    if sources:
        lines += [f"Rows \"paper: ...\": {'; '.join(sources)}.", ""]
    lines += [section.rstrip() + "\n" for section in sections]
    if report.get("command"):
        lines += ["## Command", "", "```", report["command"], "```", ""]
    if report["timings"]:
        lines += ["## Timings (seconds)", "", markdown_table([report["timings"]], formats={
            key: ".4g" for key in report["timings"]})]
    lines += ["## Configuration", ""] + [f"- {key}: {json.dumps(value)}" for key, value in report["config"].items()]
    lines += ["", "## Environment", ""] + [f"- {key}: {value}" for key, value in report["environment"].items()]
    md_path = atomic_write(run_dir / "report.md", "\n".join(lines) + "\n")
    return json_path, md_path
