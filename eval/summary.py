"""Aggregate any runs (seeds, settings, CLIs) into one table: mean ± std per row label and metric.

Every CLI writes report.json with the same schema (eval.report): a list of rows ``{"label", "seed",
<metric>: value}``. This module loads the reports of many runs, puts every row in a group -- its label,
optionally prefixed by a key of the report such as ``config.legacy`` -- and shows each metric as "mean ±
std" over the rows of a group, with the sample standard deviation (ddof = 1; 0 for a single value). So
three seeds of ``meed.train``, two ``iba.explain`` runs or a benchmark with several seeds per method all
aggregate the same way. Columns are formatted as the reports say (MEED's fidelities and SEN in % with
two decimals, TPS in seconds); the reports' reference rows (the papers' numbers) are shown once each.

CLI::

    python -m eval.summary "runs/meed/fashion_mnist/*" [--group-by config.legacy,config.ablation]
                           [--metrics FS-M,FU-M] [--paper paper.json] [--out summary.md]
"""
from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from data.io import atomic_write
from eval.report import (
    COLUMNS,
    ROW_KEYS,
    Column,
    columns_of,
    formatter,
    markdown_table,
    units_line,
    validate_report,
)

#: The columns of MEED's tables, in the paper's order (FS-H needs human raters and is not computed).
DEFAULT_METRICS = ("FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS")

_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}  # as eval.report.to_jsonable stores them


def _patterns(paths_or_glob) -> list[str]:
    if isinstance(paths_or_glob, (str, os.PathLike)):
        return [os.fspath(paths_or_glob)]
    if isinstance(paths_or_glob, Iterable):
        patterns = list(paths_or_glob)
        if patterns and all(isinstance(p, (str, os.PathLike)) for p in patterns):
            return [os.fspath(p) for p in patterns]
    raise TypeError(f"paths_or_glob: expected a path, a glob pattern or a list of them, got {paths_or_glob!r}")


def _read_report(path: Path) -> dict:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: expected a report.json (JSON), got malformed content: {error}") from None
    return {**validate_report(report, where=str(path)), "path": str(path)}


def load_reports(paths_or_glob) -> list[dict]:
    """Load the ``report.json`` files of several runs; return them as dicts, each with its ``path`` added.

    ``paths_or_glob`` is a path or glob pattern, or a list of them ("runs/**/report.json" searches nested
    folders). A match that is a directory stands for its ``report.json`` (a run directory); directories
    without one (e.g. runs still in progress) are skipped. A matched file must be a report of the schema
    (eval.report.SCHEMA). Files are read in sorted order, each once. Raises FileNotFoundError when
    nothing is found and ValueError for a file that is not a report.
    """
    patterns = _patterns(paths_or_glob)
    files: dict[Path, None] = {}
    skipped = 0
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            if path.is_dir():
                if not (path / "report.json").is_file():
                    skipped += 1
                    continue
                path = path / "report.json"
            files[path] = None
    if not files:
        note = f" ({skipped} matching directories have no report.json)" if skipped else ""
        raise FileNotFoundError(
            f"paths_or_glob: expected run directories or report.json files, found none for {patterns}{note}"
        )
    return [_read_report(path) for path in files]


def _lookup(report: Mapping, key_path: str):
    value = report
    for part in key_path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            keys = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise ValueError(
                f"group_by: {report.get('path', 'a report')} has no {key_path!r} (no {part!r} among {keys})"
            )
        value = value[part]
    return value


def _grouper(group_by) -> Callable[[Mapping], str | None]:
    """``group_by`` as a function report -> the prefix of its rows' groups (None: the row label alone)."""
    if group_by is None:
        return lambda report: None
    if callable(group_by):
        return lambda report: str(group_by(report))
    key_paths = group_by.split(",") if isinstance(group_by, str) else group_by
    if not isinstance(key_paths, Sequence) or not all(isinstance(p, str) for p in key_paths):
        raise TypeError(
            f"group_by: expected None, a callable, a key path such as 'config.legacy' or a list of key "
            f"paths, got {group_by!r}"
        )
    key_paths = [p.strip() for p in key_paths]
    if not key_paths or not all(key_paths):
        raise ValueError(f"group_by: expected non-empty key paths such as 'config.legacy', got {group_by!r}")

    def label(report):
        values = [_lookup(report, p) for p in key_paths]
        return ", ".join(f"{p}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                         for p, v in zip(key_paths, values))
    return label


def _metric_value(where: str, key: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{where}: metric {key!r}: expected a number, null or 'nan'/'inf'/'-inf', got {value!r}")


def summarize(reports: Iterable[Mapping], group_by=None) -> list[dict]:
    """Mean and sample std of every metric over the rows of each group.

    A row's group is its label, prefixed by ``group_by`` of its report when given: None (the label
    alone), a key path into the report such as "config.legacy" (several as a list or comma-separated:
    "config.legacy,config.ablation"; values as in JSON) or a callable report -> text. Groups keep the
    order in which they first appear.

    Returns one row per group: ``{"group": label, "n": rows, "paths": [...], "metrics": {name: {"mean",
    "std", "n"}}}`` for every metric found in the group, in order of first appearance. A metric's ``n``
    counts the rows that report it: null values (e.g. SEN when it was skipped) are ignored. ``std`` is
    the sample standard deviation (ddof = 1), 0 for a single value.
    """
    if isinstance(reports, Mapping):
        raise TypeError("reports: expected a list of report dicts (load_reports), got a single mapping")
    reports = list(reports)
    if not reports:
        raise ValueError("reports: expected at least one report, got none")
    for i, report in enumerate(reports):
        if not isinstance(report, Mapping) or not isinstance(report.get("rows"), list):
            raise TypeError(f"reports[{i}]: expected a report dict with a 'rows' list, got {report!r:.80}")
    prefix = _grouper(group_by)
    groups: dict[str, list[tuple[Mapping, Mapping]]] = {}
    for report in reports:
        head = prefix(report)
        for row in report["rows"]:
            name = row["label"] if head is None else f"{head}, {row['label']}"
            groups.setdefault(name, []).append((report, row))

    result = []
    for name, members in groups.items():
        values: dict[str, list[float]] = {}
        for report, row in members:
            for key, value in row.items():
                if key in ROW_KEYS:
                    continue
                number = _metric_value(report.get("path", "report"), key, value)
                values.setdefault(key, [])
                if number is not None:
                    values[key].append(number)
        metrics = {}
        for key, numbers in values.items():
            if numbers:
                arr = np.asarray(numbers, dtype=np.float64)
                std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
                metrics[key] = {"mean": float(arr.mean()), "std": std, "n": len(arr)}
        paths = list(dict.fromkeys(r.get("path") for r, _ in members))
        result.append({"group": name, "n": len(members), "paths": paths, "metrics": metrics})
    return result


def merged_columns(reports: Iterable[Mapping]) -> dict[str, Column]:
    """The column metadata of several reports (the first report that describes a metric wins)."""
    columns: dict[str, Column] = dict(COLUMNS)
    for report in reports:
        for name, column in columns_of(report).items():
            columns.setdefault(name, column)
    return columns


def reference_rows(reports: Iterable[Mapping]) -> list[dict]:
    """The reports' reference rows (published numbers), each label once, in order of first appearance."""
    seen: dict[str, dict] = {}
    for report in reports:
        for row in report.get("reference", []):
            seen.setdefault(row["label"], dict(row))
    return list(seen.values())


def _paper_rows(paper) -> list[tuple[str, dict[str, float]]]:
    if not isinstance(paper, Mapping):
        raise TypeError(f"paper: expected a mapping {{row label: {{metric: value}}}}, got {paper!r:.80}")
    rows = []
    for label, values in paper.items():
        if not isinstance(values, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in values.items() if k != "source"):
            raise TypeError(f"paper[{label!r}]: expected a mapping {{metric: number}}, got {values!r:.80}")
        rows.append((str(label), {str(k): float(v) for k, v in values.items() if k != "source"}))
    return rows


def summary_table(rows: Sequence[Mapping], metrics: Sequence[str] | None = DEFAULT_METRICS, paper=None,
                  label: str = "group", columns: Mapping[str, Column] | None = None) -> str:
    """The markdown table of ``summarize`` rows: one line per group, each metric as "mean ± std".

    Numbers are formatted per ``columns`` (default: MEED's, eval.report.COLUMNS): percent columns in %
    with two decimals (reports store fractions), seconds as "1.23e-04", others with 4 significant digits.
    A metric reported by fewer rows than the group has gets "(n=...)". ``metrics`` picks the columns
    (None: every metric found); requested metrics that no row (and no paper row) has are left out.
    ``paper`` holds published numbers in the reports' units, as reference rows (a list of dicts with
    "label") or a mapping {row label: {metric: value}}; each adds a line "paper: <label>". ``label``
    heads the first column (e.g. "method" for a benchmark). A line below the table states the units.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows: expected at least one summarize() row, got none")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not {"group", "n", "metrics"} <= set(row):
            raise TypeError(f"rows[{i}]: expected a summarize() row with 'group', 'n' and 'metrics', got {row!r:.80}")
    if paper is None:
        paper_rows = []
    elif isinstance(paper, Mapping):
        paper_rows = _paper_rows(paper)
    else:
        paper_rows = [(str(r["label"]), {k: v for k, v in r.items() if k not in ("label", "source") and v is not None})
                      for r in paper]
    columns = dict(COLUMNS if columns is None else columns)
    found = list(dict.fromkeys([k for row in rows for k in row["metrics"]] +
                               [k for _, values in paper_rows for k in values]))
    if metrics is None:
        shown = found
    else:
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
            raise TypeError(f"metrics: expected a list of metric names, got {metrics!r}")
        shown = [m for m in metrics if m in found]
    if not shown:
        raise ValueError(f"metrics: none of {list(metrics or [])} is in the reports; found metrics {found}")

    table = []
    for row in rows:
        line = {label: row["group"], "n": row["n"]}
        for metric in shown:
            stats = row["metrics"].get(metric)
            if stats is not None:
                fmt = formatter(columns.get(metric))
                cell = f"{_finite(fmt, stats['mean'])} ± {_finite(fmt, stats['std'])}"
                line[metric] = cell + (f" (n={stats['n']})" if stats["n"] != row["n"] else "")
        table.append(line)
    for name, values in paper_rows:
        line = {label: f"paper: {name}"}
        for metric in shown:
            if metric in values:
                line[metric] = _finite(formatter(columns.get(metric)), values[metric])
        table.append(line)
    notes = units_line(shown, columns).strip().rstrip(".")
    notes = (notes + "; " if notes else "") + "mean ± sample std (ddof=1) over the n rows of each group"
    return markdown_table(table, columns=[label, "n"] + shown) + "\n" + notes + ".\n"


def _finite(fmt, value: float) -> str:
    return fmt(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


def main(argv=None) -> int:
    """CLI: summarise the report.json of many runs as a markdown table (printed, and written with --out)."""
    from eval.run import cli_parser, run_main, user_input

    parser = cli_parser("python -m eval.summary", main.__doc__, shared=("verbose",))
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR_GLOB",
                        help="run directories or report.json files, or glob patterns of them (quote them)")
    parser.add_argument("--group-by", default=None,
                        help="comma-separated key paths into report.json that prefix the row labels, "
                             "e.g. config.legacy,config.ablation")
    parser.add_argument("--metrics", default="all",
                        help=f"comma-separated columns ('all' = every metric; MEED's: {','.join(DEFAULT_METRICS)})")
    parser.add_argument("--paper", default=None,
                        help="JSON file {row label: {metric: value}} with published numbers, in the reports' units")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")

    def body(args):
        metrics = None if args.metrics == "all" else [m.strip() for m in args.metrics.split(",") if m.strip()]
        with user_input("runs"):
            reports = load_reports(args.runs)
        with user_input("--paper"):
            paper = json.loads(Path(args.paper).read_text(encoding="utf-8")) if args.paper else None
        with user_input("--group-by"):
            rows = summarize(reports, group_by=args.group_by)
        with user_input("--metrics"):
            text = summary_table(rows, metrics=metrics, paper=paper if paper is not None else
                                 (reference_rows(reports) or None), columns=merged_columns(reports),
                                 label="row" if args.group_by is None else "group")
        if args.out:
            atomic_write(Path(args.out), text)
        print(text, end="")
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
