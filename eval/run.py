"""The run layer every command-line program is built on: shared flags, one error path, quiet start-up,
the run directory, phases with timings and progress, and the report at the end.

A CLI module starts with ``quiet_startup()`` (data.startup, re-exported here: TensorFlow imported with its
start-up messages hidden, before anything else imports it), builds its parser with
``cli_parser(prog, description, shared=...)``, and hands its work to ``run_main``::

    parser = cli_parser("python -m iba.explain", __doc__, shared=("dataset", "seed", "out", ...))
    parser.add_argument(...)
    return run_main(parser, body, argv, validate=check)

- Shared flags (``SHARED``): ``--dataset``, ``--preset``, ``--seed``, ``--out``, ``--resume``,
  ``--data-dir``, ``--models-dir``, ``--train-samples``, ``--test-samples``, ``--verbose``, with one
  meaning in every program (README, "Command-line flags").
- One error path: a bad flag or value (argparse's own errors, ``validate``'s ValueError / TypeError,
  and any ``UsageError`` raised later, e.g. by ``user_input``) prints one line ``prog: error: ...`` and
  returns exit code 2, no traceback. Real failures keep their traceback.
- ``--verbose``: 0 the final report only; 1 (default) phases, progress bars and Keras' per-epoch
  output; 2 also TensorFlow's own start-up and C++ log messages (hidden otherwise).
- ``Run``: the run directory (``--out`` or ``runs/<package>/<dataset>/<run-id>``), ``config.json``
  written at the start, ``phase(name)`` (a log line when it starts and ends, its seconds in the
  report's timings), ``finish(...)``: report.json / report.md (eval.report) written atomically.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from data.startup import quiet_startup  # noqa: F401 (the run layer's first step, kept below eval: data uses it)

log = logging.getLogger("run")

#: The flags every program shares (each program picks the ones it uses).
SHARED = ("dataset", "preset", "seed", "out", "resume", "data_dir", "models_dir", "train_samples", "test_samples",
          "verbose")


class UsageError(Exception):
    """A user mistake in a flag or value: printed as one line ``prog: error: ...`` with exit code 2."""


# -------------------------------------------------------------------------------------- parsing

class _Parser(argparse.ArgumentParser):
    """argparse with the one error path: errors raise UsageError instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(message)


def count(minimum: int = 1):
    """An argparse type: an integer >= ``minimum`` (a clear message otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def comma_list(text: str) -> list[str]:
    """An argparse type: "a,b, c" -> ["a", "b", "c"] (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


class DeprecatedAlias(argparse.Action):
    """An old flag name kept because the README once showed it: stores into the new flag, with a warning."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        log.warning("%s is deprecated; use %s", option_string, self.new)
        setattr(namespace, self.dest, values)


_SHARED_HELP = {
    "dataset": "dataset name (data.load)",
    "preset": "the paper's named setting (its dataset and hyper-parameters)",
    "seed": "seeds everything random in the run (default 0)",
    "out": "run directory (default runs/<package>/<dataset>/<run-id>)",
    "resume": "continue the run in --out from its last checkpoint",
    "data_dir": "folder holding the dataset files (default: the usual places, see data.sources)",
    "models_dir": "black-box cache folder (default $XAI_MODELS_DIR or ~/.keras/explain-models)",
    "train_samples": "a subset of N training samples, drawn with --seed, in their original order (default: all)",
    "test_samples": "the first N samples of the test split (itself a seeded half of the test set; default: all)",
    "verbose": "0: the final report only; 1: phases and progress bars (default); 2: also TensorFlow's own logs",
}


def cli_parser(prog: str, description: str | None, *, shared: Sequence[str] = ("seed", "out", "verbose"),
               required: Sequence[str] = ()) -> argparse.ArgumentParser:
    """An ArgumentParser with the one error path and the ``shared`` flags (SHARED) added.

    ``required`` lists shared flags that this program requires (e.g. "dataset").
    """
    unknown = sorted(set(shared) - set(SHARED))
    if unknown:
        raise ValueError(f"shared: unknown shared flags {unknown}; expected names in {list(SHARED)}")
    first_line = (description or "").strip().split("\n")[0]
    parser = _Parser(prog=prog, description=first_line, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name in shared:
        flag = "--" + name.replace("_", "-")
        options = {"help": _SHARED_HELP[name], "required": name in required}
        if name in ("seed",):
            options.update(type=count(0), default=0)
        elif name in ("train_samples", "test_samples"):
            options.update(type=count(1), default=None, metavar="N")
        elif name == "verbose":
            options.update(type=int, choices=(0, 1, 2), default=1)
        elif name == "resume":
            options = {"help": _SHARED_HELP[name], "action": "store_true"}
        parser.add_argument(flag, **options)
    return parser


@contextlib.contextmanager
def user_input(flag: str) -> Iterator[None]:
    """Within the block, a ValueError / TypeError (raised by our argument checks) or a FileNotFoundError is
    the user's mistake in ``flag``: it becomes a UsageError naming the flag (one line, exit code 2)."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(f"{flag}: {error}") from None


def configure_logging(verbose: int) -> None:
    """Log lines "name: message" on stderr: INFO and above with verbose >= 1, warnings only with 0."""
    logging.basicConfig(level=logging.INFO if verbose >= 1 else logging.WARNING, format="%(name)s: %(message)s",
                        force=True)


def keras_verbose(verbose: int) -> int:
    """Keras' fit verbosity for a run's --verbose: 0 silent; a progress bar on a terminal, else one line
    per epoch."""
    if verbose <= 0:
        return 0
    return 1 if sys.stdout.isatty() else 2


def run_main(parser: argparse.ArgumentParser, body: Callable, argv=None, *,
             validate: Callable | None = None) -> int:
    """Parse ``argv``, validate, run ``body(args)``; a UsageError anywhere is one line and exit code 2.

    ``validate(args)`` runs before any work; a ValueError / TypeError it raises is a usage error (its
    message names the flag). Returns ``body``'s return value (0 when it returns None).
    """
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        configure_logging(getattr(args, "verbose", 1))
        if validate is not None:
            try:
                validate(args)
            except (ValueError, TypeError) as error:
                raise UsageError(str(error)) from None
        result = body(args)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0 if result is None else int(result)


def to_argv(parser: argparse.ArgumentParser, options: dict) -> list[str]:
    """Keyword options as the command line of ``parser``: ``train_samples=2000`` -> ``--train-samples 2000``,
    True -> the bare flag of a switch, None / False -> left out, a list -> one token per item for a flag
    that takes several (``nargs``), else its items joined by commas. Unknown names: TypeError."""
    actions = {}
    for action in parser._actions:  # the flags (not their deprecated aliases), by destination
        if action.option_strings and action.dest != "help" and not isinstance(action, DeprecatedAlias):
            actions.setdefault(action.dest, action)
    positional = [action for action in parser._actions if not action.option_strings]
    argv = []
    for name, value in options.items():
        if name in {action.dest for action in positional}:
            continue
        action = actions.get(name)
        if action is None:
            raise TypeError(f"{name}: unknown option of {parser.prog}; expected one of {sorted(actions)}")
        if value is None or value is False:
            continue
        flag = action.option_strings[0]
        if value is True and action.nargs == 0:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            items = [str(v) for v in value]
            argv += [flag, *items] if action.nargs in ("+", "*") else [flag, ",".join(items)]
        else:
            argv += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    for action in positional:
        value = options.get(action.dest)
        argv += [str(v) for v in value] if isinstance(value, (list, tuple)) else ([] if value is None else [str(value)])
    return argv


def invoke(parser: argparse.ArgumentParser, work: Callable, options: dict, *, validate: Callable | None = None):
    """A CLI's work from Python: ``options`` are its flags as keyword arguments (``to_argv``), parsed and
    validated exactly as on the command line; a user mistake raises ValueError (not an exit code).
    Returns ``work(args)`` (the run directory for the CLIs that write one)."""
    argv = to_argv(parser, options)
    try:
        args = parser.parse_args(argv)
        args.argv = argv
        if validate is not None:
            validate(args)
    except UsageError as error:
        raise ValueError(str(error)) from None
    try:
        return work(args)
    except UsageError as error:
        raise ValueError(str(error)) from None


def command_line(prog: str, argv: Sequence[str]) -> str:
    """The command that reproduces a run, shell-quoted."""
    return " ".join([prog] + [shlex.quote(str(a)) for a in argv])


# ------------------------------------------------------------------------------------ the run

class Run:
    """One run of a CLI: its directory, its configuration, its phases and its report.

    Args:
        kind: the CLI (e.g. "meed.train"), stored in the report.
        args: the parsed flags (``run_main`` adds ``argv``); ``out``, ``resume`` and ``seed`` are read.
        default_dir: the run directory when ``--out`` is not given.
        config: settings to store besides the flags (e.g. the preset's hyper-parameters).
        label: the run's name (default: the directory's name).

    ``config.json`` is written when the run starts. With ``--resume`` the directory must exist (it
    holds the run to continue); otherwise an existing directory is reused (its files are overwritten).
    """

    def __init__(self, kind: str, args, *, default_dir, config: dict | None = None, label: str | None = None):
        from eval.report import to_jsonable

        self.kind, self.args = kind, args
        out = getattr(args, "out", None)
        self.dir = Path(out) if out else Path(default_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"--out: {self.dir} is a file; expected a directory for the run")
        if getattr(args, "resume", False) and not self.dir.is_dir():
            raise UsageError(f"--resume: there is no run to continue at {self.dir}; run without --resume to "
                             "start it")
        self.label = label or self.dir.name
        self.seed = getattr(args, "seed", None)
        self.verbose = getattr(args, "verbose", 1)
        self.command = command_line(f"python -m {kind}", getattr(args, "argv", []))
        flags = {key: value for key, value in vars(args).items() if key != "argv"}
        self.config = {"command": self.command, **flags, **(config or {})}
        self.created_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.timings: dict[str, float] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        from data.io import atomic_write

        atomic_write(self.dir / "config.json", json.dumps(to_jsonable(self.config, where="config"), indent=2) + "\n")
        log.info("%s: run directory %s", kind, self.dir)

    @property
    def keras_verbose(self) -> int:
        return keras_verbose(self.verbose)

    def path(self, relative: str) -> Path:
        """A path inside the run directory."""
        return self.dir / relative

    @contextlib.contextmanager
    def phase(self, name: str, what: str = "") -> Iterator[None]:
        """Log the phase's start (with ``what`` it does) and end; its seconds go into the report's timings."""
        log.info("%s%s", name, f": {what}" if what else " ...")
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            log.info("%s: done in %.1f s", name, seconds)

    def finish(self, rows, *, title: str, columns=None, reference=None, details=None, config=None,
               table: str | None = None, sections=()) -> Path:
        """Write report.json and report.md (eval.report schema) atomically; return the run directory.

        ``config`` adds what the run resolved (data sizes, the black box's record) to the flags.
        """
        from eval.report import build_report, write_report

        report = build_report(self.kind, label=self.label, seed=self.seed, config={**self.config, **(config or {})},
                              rows=rows, columns=columns, reference=reference, details=details,
                              timings=self.timings, command=self.command, created_utc=self.created_utc)
        write_report(self.dir, report, title=title, table=table, sections=sections)
        log.info("%s: wrote %s", self.kind, self.dir / "report.md")
        return self.dir


def print_report(run_dir: Path, verbose: int) -> None:
    """Print a finished run's report.md (and where it is) on stdout."""
    print((Path(run_dir) / "report.md").read_text(), end="")
    if verbose >= 1:
        print(f"run directory: {run_dir}")
