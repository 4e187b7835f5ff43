"""Run reports: ``report.json`` (machine-readable) and ``report.md`` (the paper-style table).

Every run writes both (DESIGN.md, "eval/"). The JSON keeps metrics as fractions, exactly as computed,
with the configuration, the seed, timings and the software/hardware environment, so that a number can
be traced back to how it was produced. The markdown shows the fidelities and SEN as percentages with two
decimals, the unit of MEED's tables (Liang et al., KDD 2020, Tables 1-5). All writes are atomic
(temporary file in the same folder + os.replace), so an interrupted run never leaves a half-written
report behind.
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
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from data.io import atomic_write

#: Columns shown as percentages in markdown tables (MEED's tables report these in %).
PERCENT_COLUMNS = ("FS-M", "FU-M", "FS-A", "FU-A", "FS-H", "SEN", "TPR", "TPR chance")


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
    dataclasses field by field. Non-finite floats become the strings "inf", "-inf" and "nan" (strict JSON has no such numbers;
    ``float()`` reads them back). Anything else raises a TypeError naming where it was found.
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
    if not isinstance(value, Mapping) and dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, where=f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in JSON ({value!r:.80})")


def percent(value) -> str:
    """A fraction as a percentage with two decimals (0.9123 -> "91.23")."""
    return f"{100.0 * float(value):.2f}"


def _format_cell(value, formatter) -> str:
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if formatter is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        text = formatter(value) if callable(formatter) else format(value, formatter)
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
    value -> str, applied to numbers; the columns in PERCENT_COLUMNS default to ``percent`` (fractions shown as %),
    other floats to 4 significant digits. Missing values are left empty.
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


def write_report(run_dir, *, config: Mapping, metrics: Mapping, seed: int, timings: Mapping | None = None,
                 extra: Mapping | None = None, table: Sequence[Mapping] | None = None) -> tuple[Path, Path]:
    """Write ``run_dir/report.json`` and ``run_dir/report.md``; return their paths (json, md).

    report.json holds ``created_utc``, ``seed``, ``config``, ``metrics`` (fractions, as computed),
    ``timings``, ``environment`` and ``extra``. report.md shows ``table`` (rows of dicts, e.g. one row
    per method) or, without it, one row of ``metrics``, then timings, the seed and the environment.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a mapping, got {type(config).__name__}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics: expected a mapping, got {type(metrics).__name__}")
    run_dir = Path(run_dir)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env = environment()
    payload = {
        "created_utc": created,
        "seed": seed,
        "config": config,
        "metrics": metrics,
        "timings": timings or {},
        "environment": env,
        "extra": extra or {},
    }
    payload = to_jsonable(payload, where="report")
    json_path = atomic_write(run_dir / "report.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")

    rows = list(table) if table is not None else [dict(metrics)]
    shown = {key for row in rows for key in row}
    lines = [f"# Report: {run_dir.name}", "", f"Created {created} (UTC), seed {seed}.", "",
             markdown_table(rows)]
    in_percent = [c for c in PERCENT_COLUMNS if c in shown]
    if in_percent:
        lines += [f"{', '.join(in_percent)} in %.", ""]
    if timings:
        lines += ["## Timings (seconds)", "", markdown_table([payload["timings"]])]
    lines += ["## Configuration", ""] + [f"- {key}: {json.dumps(value)}" for key, value in payload["config"].items()]
    lines += ["", "## Environment", ""] + [f"- {key}: {value}" for key, value in payload["environment"].items()]
    md_path = atomic_write(run_dir / "report.md", "\n".join(lines) + "\n")
    return json_path, md_path
