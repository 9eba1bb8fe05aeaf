"""Reading runtimes and IMDb ids in the forms the sources write them."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_HOURS_MINUTES_RE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h(?:ours?|rs?)?)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in(?:utes?|s)?)?)?\s*$"
)


def parse_runtime(value: Any) -> float | None:
    """Minutes from the forms IMDb returns, or None.

    Handles 142, "142", "142 min", "USA:142", "USA:142::(director's cut)",
    "2h 22m", "2h", "45m", and lists of these (the first usable one wins).

    >>> parse_runtime(["USA:142::(uncut)", "UK:139"])
    142.0
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            minutes = parse_runtime(item)
            if minutes is not None:
                return minutes
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        minutes = float(value)
        return minutes if np.isfinite(minutes) and minutes > 0 else None
    text = str(value).strip()
    if not text or text == "\\N":
        return None
    # "Country:minutes::(note)" -> the minutes part.
    if ":" in text:
        parts = [p for p in text.split(":") if p.strip()]
        numeric = [p for p in parts if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*(?:min)?\s*", p)]
        if not numeric:
            return None
        text = numeric[0]
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:min(?:utes?|s)?\.?)?\s*", text, flags=re.IGNORECASE)
    if match:
        minutes = float(match.group(1))
    else:
        match = _HOURS_MINUTES_RE.match(text.lower())
        if not match or not any(match.groups()):
            return None
        minutes = 60 * float(match.group(1) or 0) + float(match.group(2) or 0)
    return minutes if minutes > 0 else None


def imdb_number(value: Any) -> int | None:
    """'tt0114709', '0114709', 114709, 114709.0 -> 114709; '' / NaN -> None."""
    if value is None:
        return None
    if isinstance(value, float):
        return int(value) if np.isfinite(value) and value > 0 else None
    if isinstance(value, (int, np.integer)):
        return int(value) if value > 0 else None
    digits = re.sub(r"^tt", "", str(value).strip().lower())
    if digits.endswith(".0"):
        digits = digits[:-2]
    return int(digits) if digits.isdigit() and int(digits) > 0 else None
