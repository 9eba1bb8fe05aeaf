"""Numeric checks for flags and config values: nan, inf and out-of-range numbers are refused up front.

    check_finite("--learning_rate", args.learning_rate, low=0, low_inclusive=False)
    -> ValueError: --learning_rate must be a finite number > 0, got inf

The errors are `ValueError`s, which the CLIs print in one line (`movielens.errors.USER_ERRORS`).
"""

from __future__ import annotations

import math
import numbers


def check_finite(name: str, value, low: float | None = None, high: float | None = None, *,
                 low_inclusive: bool = True, high_inclusive: bool = True, integer: bool = False) -> float | int:
    """Returns `value` (as int when `integer`, else float) if it is a finite number within the bounds.

    Args:
      name: how the user knows the value, e.g. "--learning_rate" (it starts the message).
      low, high: optional bounds; `low_inclusive` / `high_inclusive` say whether they are allowed.
      integer: require a whole number (an int, or a float such as 3.0).

    Raises:
      ValueError: "<name> must be a finite number > 0, got inf" (or "an integer >= 1", "in [0, 1)", ...).
    """
    wanted = _describe(low, high, low_inclusive, high_inclusive, integer)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    number = float(value)
    ok = math.isfinite(number) and (not integer or number.is_integer())
    if ok and low is not None:
        ok = number >= low if low_inclusive else number > low
    if ok and high is not None:
        ok = number <= high if high_inclusive else number < high
    if not ok:
        raise ValueError(f"{name} must be {wanted}, got {_show(value)}")
    return int(number) if integer else number


def _describe(low, high, low_inclusive: bool, high_inclusive: bool, integer: bool) -> str:
    kind = "an integer" if integer else "a finite number"
    if low is not None and high is not None:
        return f"{kind} in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
    if low is not None:
        return f"{kind} {'>=' if low_inclusive else '>'} {low:g}"
    if high is not None:
        return f"{kind} {'<=' if high_inclusive else '<'} {high:g}"
    return kind


def _show(value) -> str:
    """A number as users type it: inf, -inf, nan, 0.5, 3."""
    number = float(value)
    if math.isfinite(number) and isinstance(value, numbers.Integral):
        return str(int(value))
    return repr(number) if math.isfinite(number) else str(number)
