"""Process start-up of the command-line programs: TensorFlow imported with its start-up messages hidden.

It lives in ``data``, the lowest package that imports no TensorFlow at package level, so that every
program -- ``data.blackbox``'s as well as the run layer's (eval.run re-exports it) -- can call it before
anything loads TensorFlow.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence


def _verbosity(argv: Sequence[str]) -> int:
    """The --verbose level in argv (default 1), read before argparse runs (TensorFlow is not loaded yet)."""
    level = 1
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--verbose=") else (
            argv[i + 1] if arg == "--verbose" and i + 1 < len(argv) else None)
        if value is not None and value.strip().isdigit():
            level = int(value)
    return level


def quiet_startup(argv: Sequence[str] | None = None) -> None:
    """Import TensorFlow with its start-up messages hidden, unless ``--verbose 2`` is in ``argv``.

    TensorFlow prints C++ log lines while it loads (oneDNN, CPU features, "Could not find cuda drivers")
    and, on a machine without a GPU, an error-level "failed call to cuInit" line that looks like a real
    failure. They go to the process's stderr before Python's logging exists, so they are hidden by
    sending file descriptor 2 to /dev/null while TensorFlow imports and initialises its devices, and by
    TF_CPP_MIN_LOG_LEVEL=3 for later C++ messages (unless already set). No effect once TensorFlow is
    imported (e.g. in a test process).
    """
    argv = sys.argv[1:] if argv is None else argv
    if "tensorflow" in sys.modules or _verbosity(argv) >= 2:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf  # noqa: PLC0415 (the point of this function)

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
