"""Durations as marketers write them: `45s`, `30m`, `12h`, `7d`, `2w`, `1.5d`.

`parse_duration` turns one into seconds. The same literal inside an expression means a number
of days (see `expr.py`); both share the pattern and unit table below.
"""

from __future__ import annotations

import math
import re

UNITS: dict[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
"""Seconds per unit."""

DAY = 86400.0

DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
"""One duration literal: a non-negative decimal number and a one-letter unit."""

_MAX_TEXT = 64
MAX_SECONDS = 100 * 365 * DAY  # a century: longer durations are typos


class DurationError(ValueError):
    """A duration that cannot be read; the message says why and what would be right."""


def parse_duration(text: str) -> float:
    """Seconds in `text`, e.g. `"30m"` -> 1800.0. A bare `0` is allowed (zero needs no unit).

    Raises DurationError for anything else: empty text, negative values, unknown units, numbers
    without a unit.
    """
    if not isinstance(text, str):
        raise DurationError(f"expected a duration such as 30m or 7d, got {text!r}")
    s = text.strip()
    if not s:
        raise DurationError("empty duration: write a number and a unit, e.g. 30m or 7d")
    if len(s) > _MAX_TEXT:
        raise DurationError("duration is too long")
    if s == "0":
        return 0.0
    m = DURATION_RE.fullmatch(s)
    if m is not None:
        seconds = float(m.group(1)) * UNITS[m.group(2)]
        if not math.isfinite(seconds) or seconds > MAX_SECONDS:
            raise DurationError(f"duration {s!r} is too large")
        return seconds
    if s.startswith("-"):
        raise DurationError(f"negative duration {s!r}: durations must be zero or more")
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", s):
        raise DurationError(
            f"duration {s!r} needs a unit: s (seconds), m (minutes), h (hours), d (days) "
            "or w (weeks), e.g. 30m"
        )
    number = re.match(r"[0-9]+(?:\.[0-9]+)?", s)
    if number is not None:
        unit = s[number.end() :].strip()
        raise DurationError(
            f"unknown duration unit {unit!r} in {s!r}: use s, m, h, d or w, e.g. 30m or 7d"
        )
    raise DurationError(f"bad duration {s!r}: write a number and a unit, e.g. 30m or 7d")
