"""The one registry of explanation methods: every package registers its methods here, every CLI and the
benchmark resolve names through it.

    from eval import registry
    registry.names()                                # every registered method
    explainer = registry.get("ig", model, steps=32)  # aliases resolve; unknown names list close matches
    print(registry.describe("iba"))                 # summary, paper, hyper-parameters with defaults and docs

A provider package (``PROVIDERS``) declares its methods in its module ``<package>/methods.py`` by calling
``register``; the registry imports those modules on first use (eval never imports a method package at
module level: the dependency direction of docs/ARCHITECTURE.md), and a package that does not exist yet
is skipped. A method's hyper-parameters are its factory's keyword arguments (for a class, those of its
``__init__`` and of the bases it passes ``**kwargs`` on to), documented by the "Args:" sections of the
class docstrings.

``python -m eval.registry [NAME]`` lists the methods, or describes one.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Callable

#: Packages whose ``methods`` module registers explanation methods, in lookup order.
PROVIDERS = ("baselines", "meed", "iba", "vp", "masking")

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Hyperparameter:
    """One keyword argument of a method: its default (``required`` when it has none) and its documentation."""

    name: str
    default: object = None
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Method:
    """A registered method: ``factory(model, **hyper)`` builds it for a black box.

    ``requires_fit``: the explainer must be fitted (``fit(x_train, y_train)``) before it explains;
    ``needs_labels``: its ``fit`` needs the true labels; ``paper``: where the method comes from.
    """

    name: str
    factory: Callable
    package: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    paper: str = ""
    requires_fit: bool = False
    needs_labels: bool = False
    hyperparameters: tuple[Hyperparameter, ...] = field(default=(), repr=False)

    def accepts(self, name: str) -> bool:
        return any(h.name == name for h in self.hyperparameters)

    def build(self, model, **hyper):
        """The method for ``model``; TypeError listing the accepted hyper-parameters for an unknown one."""
        unknown = sorted(set(hyper) - {h.name for h in self.hyperparameters})
        if unknown:
            raise TypeError(f"{self.name}: unknown hyperparameter(s) {unknown}; accepted: "
                            f"{sorted(h.name for h in self.hyperparameters)}")
        missing = [h.name for h in self.hyperparameters if h.required and h.name not in hyper]
        if missing:
            raise TypeError(f"{self.name}: missing required hyperparameter(s) {missing}")
        return self.factory(model, **hyper)


_METHODS: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register(name: str, factory: Callable, *, aliases=(), summary: str | None = None, paper: str = "",
             requires_fit: bool | None = None, needs_labels: bool | None = None) -> Method:
    """Register ``factory(model, **hyper)`` under ``name`` (and ``aliases``); returns the Method.

    ``summary`` defaults to the first line of the factory's docstring; ``requires_fit`` and
    ``needs_labels`` default to the factory's class attributes of those names (False when absent).
    A name or alias may be registered once.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"name: expected a lower-case identifier, got {name!r}")
    key = name
    for alias in (key, *aliases):
        if alias in _METHODS or alias in _ALIASES:
            raise ValueError(f"name: {alias!r} is already registered")
    method = Method(
        name=key, factory=factory, package=factory.__module__.split(".")[0], aliases=tuple(aliases),
        summary=summary if summary is not None else _first_line(factory.__doc__), paper=paper,
        requires_fit=bool(getattr(factory, "requires_fit", False) if requires_fit is None else requires_fit),
        needs_labels=bool(getattr(factory, "needs_labels", False) if needs_labels is None else needs_labels),
        hyperparameters=tuple(_hyperparameters(factory)))
    _METHODS[key] = method
    for alias in aliases:
        _ALIASES[alias] = key
    return method


def _load_providers():
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in PROVIDERS:
        try:
            importlib.import_module(f"{package}.methods")
        except ModuleNotFoundError as error:
            if error.name not in (package, f"{package}.methods"):
                raise


def names(package: str | None = None) -> list[str]:
    """Registered method names (aliases excluded) in registration order, optionally of one package."""
    _load_providers()
    return [name for name, method in _METHODS.items() if package is None or method.package == package]


def aliases() -> dict[str, str]:
    """{alias: method name} for every registered alias."""
    _load_providers()
    return dict(_ALIASES)


def spec(name: str) -> Method:
    """The Method registered as ``name`` or one of its aliases (case-insensitive); ValueError listing the
    close matches and every known name otherwise."""
    _load_providers()
    if not isinstance(name, str):
        raise TypeError(f"name: expected a method name (str), got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _METHODS:
        return _METHODS[key]
    known = list(_METHODS) + list(_ALIASES)
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise ValueError(f"name: unknown value {name!r}{hint}; expected one of {sorted(known)}")


def get(name: str, model, **hyper):
    """The method ``name`` built for the black box ``model`` with the hyper-parameters ``hyper``."""
    return spec(name).build(model, **hyper)


def resolve(method_names) -> list[Method]:
    """Methods for a list of names (aliases resolve, duplicates are dropped, order kept)."""
    resolved: list[Method] = []
    for name in method_names:
        method = spec(name)
        if method not in resolved:
            resolved.append(method)
    return resolved


def describe(name: str) -> str:
    """A few lines on the method ``name``: summary, package, paper, fit requirements, hyper-parameters."""
    method = spec(name)
    lines = [f"{method.name}: {method.summary}".rstrip(": ")]
    if method.aliases:
        lines.append(f"  aliases: {', '.join(method.aliases)}")
    lines.append(f"  package: {method.package}" + (f"; paper: {method.paper}" if method.paper else ""))
    if method.requires_fit:
        lines.append("  needs fit(x_train" + (", y_train)" if method.needs_labels else ")") + " before explaining")
    for h in method.hyperparameters:
        default = "required" if h.required else f"default {h.default!r}"
        lines.append(f"  --{h.name} ({default})" + (f": {h.doc}" if h.doc else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------- introspection

def _first_line(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    for match in re.finditer(r"\. (?=[A-Z(])", paragraph):
        if not re.search(r"\b(al|e\.g|i\.e|cf|vs|Fig|Eq|Sec)$", paragraph[:match.start()]):
            return paragraph[:match.start() + 1]
    return paragraph


def _parameters(factory) -> list[tuple[inspect.Parameter, type | None]]:
    """The hyper-parameters of ``factory``: for a class, the keyword arguments of every __init__ in the
    MRO that ``**kwargs`` reaches, each with the class that documents it; the first positional argument
    (the model) is left out."""
    found: list[tuple[inspect.Parameter, type | None]] = []
    seen = set()
    owners = [klass for klass in factory.__mro__ if "__init__" in vars(klass)] if inspect.isclass(factory) \
        else [None]
    for owner in owners:
        if owner is not None and owner.__module__.split(".")[0] in ("keras", "builtins"):
            break
        params = list(inspect.signature(owner.__init__ if owner is not None else factory).parameters.values())
        params = params[2:] if owner is not None else params[1:]  # self, model / model
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in seen:
                continue
            seen.add(p.name)
            found.append((p, owner))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return found


def _arg_docs(doc: str | None) -> dict[str, str]:
    """{argument: text} from the "Args:" sections of a docstring (Google style, one entry per name)."""
    docs: dict[str, str] = {}
    in_args, current, indent = False, None, None
    for line in (doc or "").splitlines():
        stripped = line.strip()
        if re.match(r"^(Args|Extra args)( \(.*\))?:", stripped):
            in_args, current, indent = True, None, None
            rest = stripped.split(":", 1)[1].strip()
            match = re.match(r"``(\w+)``: (.*)", rest)
            if match:
                current = [match.group(1)]
                docs[match.group(1)] = match.group(2)
            continue
        if not in_args:
            continue
        if not stripped:
            in_args = False
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        match = re.match(r"^([\w, ]+?)(?: \([^)]*\))?: (.*)", stripped) if depth <= indent else None
        if match and all(part.strip().isidentifier() for part in match.group(1).split(",")):
            current = [part.strip() for part in match.group(1).split(",")]
            for part in current:
                docs[part] = match.group(2)
        elif current is not None:
            for part in current:
                docs[part] = docs[part] + " " + stripped
    return docs


def _mention(doc: str | None, name: str) -> str:
    """The first sentence of a docstring that names ``name`` as ``name`` (prose documentation), or ""."""
    text = " ".join((doc or "").split())
    position = text.find(f"``{name}``")
    if position < 0:
        return ""
    start = max(text.rfind(". ", 0, position) + 2, text.rfind(": ", 0, position) + 2 if text.rfind(": ", 0, position)
                > text.rfind(". ", 0, position) else 0)
    end = text.find(". ", position)
    return text[start: len(text) if end < 0 else end + 1]


def _hyperparameters(factory) -> list[Hyperparameter]:
    result = []
    for parameter, owner in _parameters(factory):
        owner_doc = getattr(owner, "__doc__", None) if owner is not None else factory.__doc__
        required = parameter.default is _EMPTY
        doc = _arg_docs(owner_doc).get(parameter.name) or _mention(owner_doc, parameter.name)
        result.append(Hyperparameter(parameter.name, None if required else parameter.default, required, doc))
    return result


def main(argv=None) -> int:
    """CLI: list the registered methods, or describe the ones named."""
    from eval.run import cli_parser, quiet_startup, run_main

    quiet_startup()  # the providers import TensorFlow
    # The providers register into the imported module, not into a copy run as __main__ (python -m).
    registry = importlib.import_module("eval.registry")

    def body(args):
        if not args.names:
            for name in registry.names():
                method = registry.spec(name)
                alias = f" (aliases: {', '.join(method.aliases)})" if method.aliases else ""
                print(f"{name:24s} {method.package:10s} {method.summary}{alias}")
            return 0
        for name in args.names:
            print(registry.describe(name))
        return 0

    parser = cli_parser("python -m eval.registry", main.__doc__, shared=())
    parser.add_argument("names", nargs="*", help="methods to describe (default: list every method)")
    return run_main(parser, body, argv, validate=lambda args: [registry.spec(n) for n in args.names])


if __name__ == "__main__":
    raise SystemExit(main())
