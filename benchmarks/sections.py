"""The one way the benchmark scripts update benchmarks/RESULTS.md: each owns a section between its markers."""
from __future__ import annotations

from pathlib import Path

from data.io import atomic_write


def markers(name: str) -> tuple[str, str]:
    """The start and end markers (HTML comments) of the section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(path: Path, name: str, section: str):
    """Replace the section ``name`` of the Markdown file ``path`` (its markers included in ``section``)
    with ``section``, or append it; the rest of the file (hand-written findings) is kept."""
    start, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write(path, text)
