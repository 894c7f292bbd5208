"""Argument checks shared by the replay factories: each error names the argument."""

from __future__ import annotations

import math
import operator


def check_choice(name, value, choices):
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_real(name, value, lo, hi, lo_open, hi_open=False):
    """float(value), or a ValueError naming `name` unless it is finite and inside the interval."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    bad = not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi)
    if bad:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {value!r}")
    return x


def check_int(name, value, lo):
    """int(value), or a ValueError naming `name` unless it is an integer (not a bool) >= lo."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}") from None
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return v
