"""Argument checks shared by every public entry point of the project.

The project's convention (DESIGN.md, "Core conventions"): a bad input at a public boundary raises a
ValueError or TypeError that names the argument, the value it got and what was expected. These helpers
say it once so every package words it the same way. They run eagerly on numpy arrays and eager tensors;
on symbolic tensors (inside a traced tf.function) only the static shape is checked, because the values
are not known yet.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf


def _is_symbolic(x) -> bool:
    """A tensor whose values are not known yet (traced in a tf.function; a variable read while tracing)."""
    return tf.is_tensor(x) and (not hasattr(x, "numpy") or not tf.executing_eagerly())


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"array of shape {tuple(shape)} and dtype {getattr(dtype, 'name', dtype)}"
    return f"{type(x).__name__} {x!r}"[:120]


def check_rank(name: str, x, *, rank: int | Sequence[int] | None = None, min_rank: int | None = None):
    """Raise ValueError unless ``x`` has the given rank (or one of several, or at least ``min_rank``)."""
    ndim = len(x.shape)
    if rank is not None:
        allowed = (rank,) if isinstance(rank, int) else tuple(rank)
        if ndim not in allowed:
            want = " or ".join(str(r) for r in allowed)
            raise ValueError(f"{name}: expected rank {want}, got {_describe(x)}")
    if min_rank is not None and ndim < min_rank:
        raise ValueError(f"{name}: expected rank >= {min_rank}, got {_describe(x)}")


def check_finite(name: str, x):
    """Raise ValueError if ``x`` holds NaN or Inf (skipped for symbolic tensors)."""
    if _is_symbolic(x):
        return
    arr = np.asarray(x)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/Inf entries in {_describe(x)}")


def check_numeric(name: str, x):
    """Raise TypeError unless ``x`` is an array-like of numbers (bool, int or float)."""
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    dtype = tf.as_dtype(dtype) if not isinstance(dtype, np.dtype) else tf.as_dtype(dtype)
    if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
        raise TypeError(f"{name}: expected a numeric array, got {_describe(x)}")


def as_float_tensor(name: str, x, *, rank=None, min_rank=None, finite: bool = True) -> tf.Tensor:
    """Convert ``x`` to a float32 tensor after checking dtype, rank and (optionally) finiteness."""
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    if not tf.is_tensor(x):
        x = np.asarray(x)
    check_numeric(name, x)
    check_rank(name, x, rank=rank, min_rank=min_rank)
    if finite:
        check_finite(name, x)
    return tf.cast(x, tf.float32)


def k_or_default(k, default, n_features: int, owner: str, what: str = "pixels") -> int:
    """``k`` checked by check_k, or when None the explainer's ``default`` k (ValueError if it has none)."""
    if k is None:
        if default is None:
            raise ValueError(f"k: expected the number of {what} to select (1 <= k <= {n_features}); this {owner} "
                             f"was built without a default k")
        return default
    return check_k("k", k, n_features)


def check_k(name: str, k, n_features: int, *, allow_float: bool = False) -> int:
    """Return ``k`` as an int after checking 1 <= k <= n_features.

    With ``allow_float`` a value in (0, 1) is read as a share of the features (e.g. 0.1 = 10%).
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, float, np.floating)):
        raise TypeError(f"{name}: expected an integer number of features, got {k!r}")
    if isinstance(k, (float, np.floating)):
        if allow_float and 0.0 < k < 1.0:
            k = max(1, int(round(float(k) * n_features)))
        elif float(k).is_integer():
            k = int(k)
        else:
            raise TypeError(f"{name}: expected an integer number of features, got {k!r}")
    k = int(k)
    if not 1 <= k <= n_features:
        raise ValueError(f"{name}: expected 1 <= {name} <= {n_features} (the number of features), got {k}")
    return k


def check_int(name: str, value, *, minimum: int | None = 0, maximum: int | None = None) -> int:
    """Return ``value`` as an int after checking it is an integer (not a bool) in [minimum, maximum].

    Counts such as ``epochs``, ``n_samples``, ``repeats`` and ``seed`` must be whole numbers; a float
    like 2.5 would otherwise be truncated silently somewhere down the line. TypeError for a non-integer,
    ValueError outside the bounds (None = unbounded on that side).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer{_bounds(minimum, maximum)}, got {type(value).__name__} {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name}: expected an integer{_bounds(minimum, maximum)}, got {value}")
    return value


def _bounds(minimum, maximum) -> str:
    if maximum is None:
        return "" if minimum is None else f" >= {minimum}"
    return f" in [{'-inf' if minimum is None else minimum}, {maximum}]"


def check_positive(name: str, value, *, allow_zero: bool = False):
    """Raise ValueError unless ``value`` is a number > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        want = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {want}, got {value!r}")


def check_bool(name: str, value) -> bool:
    """``value`` as a bool after checking it is one (1 or "yes" are not: TypeError naming the argument)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Raise ValueError unless ``value`` is one of ``choices``; suggest the closest names."""
    choices = list(choices)
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), choices, n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise ValueError(f"{name}: unknown value {value!r}{hint}; expected one of {sorted(choices)}")


def check_same_shape(name_a: str, a, name_b: str, b):
    """Raise ValueError unless ``a`` and ``b`` have the same shape (no silent broadcasting)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}"
        )
