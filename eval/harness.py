"""One harness for comparing methods: build each through the registry, fit what needs fitting, score it
with a suite, for every seed; ``eval.benchmark`` (MEED's tables) and ``iba.explain`` (IBA's) both run it.

A ``Candidate`` is one row of the comparison: its label, ``build(model, seed)`` (an unfitted explainer)
and ``fit(explainer)`` (None when nothing is learnt). ``registry_candidate`` makes one from a registered
method name. For sanity checks a candidate is rebuilt (and refitted) on the randomised models; the
cascade changes one working copy's weights in place, so the rebuilt explainer is kept per model object
and only refitted (its traced functions read the new weights).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from eval import registry
from eval.suites import Suite

log = logging.getLogger("eval")


@dataclass
class Candidate:
    """A method to compare: ``build(model, seed) -> explainer``, ``fit(explainer)`` or None; ``sanity``:
    whether it can be rebuilt on randomised models (False for an explainer trained elsewhere)."""

    label: str
    build: Callable
    fit: Callable | None = None
    sanity: bool = True
    config: dict = field(default_factory=dict)


@dataclass
class Evaluation:
    """One (candidate, seed) cell: the suite's result, the fitting time and the explainer's config."""

    label: str
    seed: int
    metrics: dict
    details: dict
    timings: dict
    outputs: dict
    config: dict

    def row(self) -> dict:
        """The report row of the cell."""
        return {"label": self.label, "seed": self.seed, **self.metrics}


def methods_and_options(methods, options: str) -> tuple[list[str], dict]:
    """The ``--methods`` names resolved through the registry and the ``--options`` JSON {method: {hyper:
    value}} checked against them (only benchmarked methods, only hyper-parameters they accept); a
    UsageError (one line naming the flag) otherwise."""
    import json

    from eval.run import UsageError, user_input

    try:
        options = json.loads(options)
    except json.JSONDecodeError as error:
        raise UsageError(f"--options: expected JSON, got {options!r} ({error})") from None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise UsageError(f"--options: expected a JSON object {{method: {{hyperparameter: value}}}}, got {options!r}")
    if not methods:
        raise UsageError("--methods: expected at least one method name")
    with user_input("--methods"):
        resolved = [method.name for method in registry.resolve(methods)]
    unknown = sorted(set(options) - set(resolved))
    if unknown:
        raise UsageError(f"--options: {unknown} not among the benchmarked methods {resolved}")
    with user_input("--options"):
        for name, hyper in options.items():
            spec = registry.spec(name)
            bad = sorted(key for key in hyper if not spec.accepts(key))
            if bad:
                raise TypeError(f"{name}: unknown hyperparameter(s) {bad}; accepted: "
                                f"{sorted(h.name for h in spec.hyperparameters)}")
    return resolved, options


def registry_candidate(name: str, *, label: str | None = None, hyper: dict | None = None,
                       shared: dict | None = None, fit_args: tuple = (), fit_kwargs: dict | None = None) -> Candidate:
    """A Candidate for the registered method ``name``: built with ``hyper`` and those of the ``shared``
    settings (e.g. k, seed, dataset, verbose) that it accepts, its ``seed`` hyper-parameter set to the
    cell's seed; fitted with ``fit(*fit_args, **fit_kwargs)`` when the method requires fitting."""
    method = registry.spec(name)
    hyper, shared, fit_kwargs = dict(hyper or {}), dict(shared or {}), dict(fit_kwargs or {})

    def build(model, seed):
        settings = {key: value for key, value in shared.items() if method.accepts(key)}
        if method.accepts("seed"):
            settings["seed"] = seed
        return method.build(model, **{**settings, **hyper})

    fit = (lambda explainer: explainer.fit(*fit_args, **fit_kwargs)) if method.requires_fit else None
    return Candidate(label=label or method.name, build=build, fit=fit, config={"method": method.name, **hyper})


def explain_on_factory(candidate: Candidate, seed: int) -> Callable:
    """``explain_on(model, x, targets)``: the candidate rebuilt for ``model`` (kept per model object, refitted
    every call), explaining x for the targets (see the module docstring)."""
    kept = {"model": None, "explainer": None}

    def explain_on(model, x, targets):
        if kept["model"] is not model:
            kept["model"], kept["explainer"] = model, candidate.build(model, seed)
        if candidate.fit is not None:
            candidate.fit(kept["explainer"])
        return kept["explainer"].explain(x, targets)

    return explain_on


def evaluate(suite, candidates, seeds=(0,), *, on_result: Callable | None = None) -> list[Evaluation]:
    """Every candidate under ``suite`` for every seed, in order (candidate-major); ``on_result(evaluation)``
    is called after each cell (e.g. to log it). ``suite`` is a Suite, or ``seed -> Suite`` when the
    metrics themselves are seeded per cell (MEED's approximators and SEN)."""
    evaluations = []
    for candidate in candidates:
        for seed in seeds:
            log.info("%s, seed %d", candidate.label, seed)
            cell_suite = suite(seed) if callable(suite) and not isinstance(suite, Suite) else suite
            explainer = candidate.build(cell_suite.model, seed)
            timings = {}
            if candidate.fit is not None:
                start = time.perf_counter()
                candidate.fit(explainer)
                timings["train_seconds"] = time.perf_counter() - start
            explain_on = explain_on_factory(candidate, seed) if candidate.sanity else None
            result = cell_suite.evaluate(explainer, explain_on=explain_on)
            config = explainer.get_config() if hasattr(explainer, "get_config") else dict(candidate.config)
            evaluation = Evaluation(candidate.label, seed, result.metrics, result.details,
                                    {**timings, **result.timings}, result.outputs, config)
            evaluations.append(evaluation)
            if on_result is not None:
                on_result(evaluation)
    return evaluations
