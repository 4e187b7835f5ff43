"""Aggregate repeated runs (seeds, settings) into one paper-style table: mean ± std per metric.

One run reports one number per metric (``report.json``, written by ``eval.report.write_report``); a
claim about a method needs several seeds. This module loads the reports of many runs, groups them (by a
configuration key such as ``config.legacy``, or by any function of the report), and shows each metric as
"mean ± std" over the runs of a group, with the sample standard deviation (ddof = 1; 0 for a single run).
The fidelities and SEN are shown in % with two decimals and TPS in seconds in scientific notation, the
units of MEED's tables (Liang et al., KDD 2020, Tables 1-5); the paper's own numbers can be added as
rows for comparison.

CLI::

    python -m eval.summary "runs/meed/mnist/*" [--group-by config.legacy,config.ablation]
                           [--metrics FS-M,FU-M] [--paper paper.json] [--out summary.md]
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from eval.report import PERCENT_COLUMNS, atomic_write, markdown_table

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
    missing = [key for key in ("config", "metrics") if not isinstance(report, dict) or
               not isinstance(report.get(key), dict)]
    if missing:
        raise ValueError(
            f"{path}: expected a report written by eval.report.write_report (a JSON object whose 'config' "
            f"and 'metrics' are objects), got no object for {missing}"
        )
    return {**report, "path": str(path)}


def load_reports(paths_or_glob) -> list[dict]:
    """Load the ``report.json`` files of several runs; return them as dicts, each with its ``path`` added.

    ``paths_or_glob`` is a path or glob pattern, or a list of them ("runs/**/report.json" searches nested
    folders). A match that is a directory stands for its ``report.json`` (a run directory); directories
    without one (e.g. runs still in progress) are skipped. A matched file must be a report, so a pattern
    should not match report.md or config.json. Files are read in sorted order, each once. Raises
    FileNotFoundError when nothing is found and ValueError for a file that is not a report.
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


def _grouper(group_by) -> Callable[[Mapping], str]:
    """``group_by`` as a function report -> group label."""
    if group_by is None:
        return lambda report: "all"
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


def _metric_value(report: Mapping, key: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(
        f"{report.get('path', 'report')}: metric {key!r}: expected a number, null or 'nan'/'inf'/'-inf', "
        f"got {value!r}"
    )


def summarize(reports: Iterable[Mapping], group_by=None) -> list[dict]:
    """Mean and sample std of every metric over the runs of each group.

    ``group_by`` is None (all runs in one group "all"), a key path into the report such as
    "config.legacy" (several as a list or comma-separated: "config.legacy,config.ablation"; the group is
    labelled "config.legacy=true, config.ablation=null", values as in JSON) or a callable report -> label.
    Groups keep the order in which they first appear.

    Returns one row per group: ``{"group": label, "n": runs, "paths": [...], "metrics": {name: {"mean",
    "std", "n"}}}`` for every metric found in the group, in order of first appearance. A metric's ``n``
    counts the runs that report it: null values (e.g. SEN when it was skipped) are ignored. ``std`` is
    the sample standard deviation (ddof = 1), 0 for a single value.
    """
    if isinstance(reports, Mapping):
        raise TypeError("reports: expected a list of report dicts (load_reports), got a single mapping")
    reports = list(reports)
    if not reports:
        raise ValueError("reports: expected at least one report, got none")
    for i, report in enumerate(reports):
        if not isinstance(report, Mapping) or not isinstance(report.get("metrics"), Mapping):
            raise TypeError(f"reports[{i}]: expected a report dict with a 'metrics' mapping, got {report!r:.80}")
    label = _grouper(group_by)
    groups: dict[str, list[Mapping]] = {}
    for report in reports:
        groups.setdefault(label(report), []).append(report)

    rows = []
    for name, members in groups.items():
        values: dict[str, list[float]] = {}
        for report in members:
            for key, value in report["metrics"].items():
                number = _metric_value(report, key, value)
                values.setdefault(key, [])
                if number is not None:
                    values[key].append(number)
        metrics = {}
        for key, numbers in values.items():
            if numbers:
                arr = np.asarray(numbers, dtype=np.float64)
                std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
                metrics[key] = {"mean": float(arr.mean()), "std": std, "n": len(arr)}
        rows.append({"group": name, "n": len(members), "paths": [r.get("path") for r in members],
                     "metrics": metrics})
    return rows


def _formatter(metric: str) -> Callable[[float], str]:
    """Per-metric number format: % with 2 decimals (fractions), scientific for TPS, 4 digits otherwise."""
    if metric in PERCENT_COLUMNS:
        return lambda value: f"{100.0 * value:.2f}"
    if metric == "TPS":
        return lambda value: f"{value:.2e}"
    return lambda value: f"{value:.4g}"


def _paper_rows(paper) -> list[tuple[str, dict[str, float]]]:
    if not isinstance(paper, Mapping):
        raise TypeError(f"paper: expected a mapping {{row label: {{metric: value}}}}, got {paper!r:.80}")
    rows = []
    for label, values in paper.items():
        if not isinstance(values, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
            raise TypeError(f"paper[{label!r}]: expected a mapping {{metric: number}}, got {values!r:.80}")
        rows.append((str(label), {str(k): float(v) for k, v in values.items()}))
    return rows


def summary_table(rows: Sequence[Mapping], metrics: Sequence[str] | None = DEFAULT_METRICS,
                  paper: Mapping | None = None, label: str = "group") -> str:
    """The markdown table of ``summarize`` rows: one line per group, each metric as "mean ± std".

    Metrics in ``eval.report.PERCENT_COLUMNS`` (FS-M, FU-M, FS-A, FU-A, SEN, ...) are shown in % with two
    decimals (reports store fractions), TPS in seconds as "1.23e-04", others with 4 significant digits.
    A metric reported by fewer runs than the group has gets "(n=...)". ``metrics`` picks the columns
    (None: every metric found); requested metrics that no row (and no paper row) has are left out.
    ``paper`` maps a row label to the paper's numbers in the table's units, {metric: value in %} (TPS in
    seconds), e.g. ``{"Ours": {"FS-M": 99.04, "FU-M": 74.70}}``; each adds a row "paper: <label>" with
    the value alone. ``label`` heads the first column (e.g. "method" for a benchmark). A line below the
    table states the units.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows: expected at least one summarize() row, got none")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not {"group", "n", "metrics"} <= set(row):
            raise TypeError(f"rows[{i}]: expected a summarize() row with 'group', 'n' and 'metrics', got {row!r:.80}")
    paper_rows = _paper_rows(paper) if paper is not None else []
    found = list(dict.fromkeys([k for row in rows for k in row["metrics"]] +
                               [k for _, values in paper_rows for k in values]))
    if metrics is None:
        columns = found
    else:
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
            raise TypeError(f"metrics: expected a list of metric names, got {metrics!r}")
        columns = [m for m in metrics if m in found]
    if not columns:
        raise ValueError(f"metrics: none of {list(metrics or [])} is in the reports; found metrics {found}")

    table = []
    for row in rows:
        line = {label: row["group"], "n": row["n"]}
        for metric in columns:
            stats = row["metrics"].get(metric)
            if stats is not None:
                fmt = _formatter(metric)
                cell = f"{fmt(stats['mean'])} ± {fmt(stats['std'])}"
                line[metric] = cell + (f" (n={stats['n']})" if stats["n"] != row["n"] else "")
        table.append(line)
    for name, values in paper_rows:
        line = {label: f"paper: {name}"}
        for metric in columns:
            if metric in values:
                value = values[metric]
                line[metric] = f"{value:.2f}" if metric in PERCENT_COLUMNS else _formatter(metric)(value)
        table.append(line)

    notes = []
    in_percent = [m for m in columns if m in PERCENT_COLUMNS]
    if in_percent:
        notes.append(f"{', '.join(in_percent)} in %")
    if "TPS" in columns:
        notes.append("TPS in seconds per sample")
    notes.append("mean ± sample std (ddof=1) over the n runs of each group")
    return markdown_table(table, columns=[label, "n"] + columns) + "\n" + "; ".join(notes) + ".\n"


def main(argv=None) -> int:
    """CLI: summarise the report.json of many runs as a markdown table (printed, and written with --out)."""
    parser = argparse.ArgumentParser(prog="python -m eval.summary", description=main.__doc__)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR_GLOB",
                        help="run directories or report.json files, or glob patterns of them (quote them)")
    parser.add_argument("--group-by", default=None,
                        help="comma-separated key paths into report.json, e.g. config.legacy,config.ablation")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                        help=f"comma-separated columns (default {','.join(DEFAULT_METRICS)}; 'all' = every metric)")
    parser.add_argument("--paper", default=None,
                        help="JSON file {row label: {metric: value in %%}} with the paper's numbers")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    metrics = None if args.metrics == "all" else [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        paper = json.loads(Path(args.paper).read_text(encoding="utf-8")) if args.paper else None
        rows = summarize(load_reports(args.runs), group_by=args.group_by)
        text = summary_table(rows, metrics=metrics, paper=paper)
    except (OSError, ValueError, TypeError) as error:
        parser.error(str(error))
    if args.out:
        atomic_write(Path(args.out), text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
