"""Lazy package attributes: a package's public names are imported from their submodules on first use.

The top-level packages (data, eval, meed, iba) import nothing heavy when they are imported, so that a
command-line program can hide TensorFlow's start-up messages before TensorFlow loads
(eval.run.quiet_startup) and ``--help`` answers at once. ``import data; data.load(...)`` and ``from
data import load`` work as with eager imports: the first access imports the submodule.
"""
from __future__ import annotations

import importlib
import sys
import types


def _resolve(package: str, name: str, module: types.ModuleType):
    """What public ``name`` is, given the module it is exported from: the module's attribute ``name``;
    for the submodule of the same name, that attribute if the submodule defines one (the function
    ``data.blackbox.blackbox``), else the submodule itself (``data.synthetic``)."""
    if module.__name__ == f"{package}.{name}" and not hasattr(module, name):
        return module
    return getattr(module, name)


class _Package(types.ModuleType):
    """A lazy package. When a submodule is first imported, the import system sets the package attribute
    of its name to the submodule (after ``from data.blackbox import describe``, ``data.blackbox`` would
    be the module, no longer the function); for an exported name this binds the export instead."""

    _lazy_exports: dict[str, str] = {}

    def __setattr__(self, name, value):
        if (isinstance(value, types.ModuleType) and self._lazy_exports.get(name) == value.__name__
                and value.__name__ == f"{self.__name__}.{name}"):
            value = _resolve(self.__name__, name, value)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a public name to the module holding it
    (a name that is itself a submodule is that submodule's attribute of the name if it has one, else the
    submodule). Also makes the package a ``_Package``, so importing a submodule does not hide an export
    of the same name."""
    module = sys.modules[package]
    module.__class__ = _Package
    module._lazy_exports = dict(exports)

    def __getattr__(name):
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = _resolve(package, name, importlib.import_module(module_name))
        importlib.import_module(package).__dict__[name] = value  # later accesses skip __getattr__
        return value

    def __dir__():
        return sorted(set(importlib.import_module(package).__dict__) | set(exports))

    return __getattr__, __dir__
