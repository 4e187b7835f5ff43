"""Test helpers: the repository root, the real-data condition, fresh-process runners, weight snapshots.

Tiny models and data live in tests/tiny.py, shared fixtures in tests/conftest.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: The Debian package dataset-fashion-mnist (the full Fashion-MNIST); real-data tests skip without it.
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="needs the Debian package dataset-fashion-mnist")


def run_python(code: str, timeout: int = 300, env: dict | None = None) -> str:
    """Run ``code`` in a fresh Python process from the repository root; return its stdout (asserting rc 0)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_cli(module: str, *args, timeout: int = 900, cwd=REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m module args...`` in a fresh process (not asserting its exit code)."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def snapshot(variables) -> list:
    """Copies (numpy) of the values of ``variables`` (e.g. ``model.weights``), to compare after a step."""
    return [np.array(v.numpy(), copy=True) for v in variables]


def changed(before: list, variables) -> list[bool]:
    """For each of ``variables``: whether its value differs from the ``snapshot`` ``before``."""
    return [not np.array_equal(a, v.numpy()) for a, v in zip(before, variables, strict=True)]
