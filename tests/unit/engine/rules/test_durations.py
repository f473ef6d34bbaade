from __future__ import annotations

import pytest

from streams.engine.rules import DurationError, compile_expr, parse_duration

from .fakeview import FakeView


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45s", 45.0),
        ("30m", 1800.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("1.5d", 129600.0),
        (" 30m ", 1800.0),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("30x", "unknown duration unit 'x'"),
        ("-3d", "negative duration"),
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("30", "needs a unit"),
        ("d", "bad duration"),
        ("3 d", "unknown duration unit 'd'"),
        ("1h30m", "unknown duration unit 'h30m'"),
        ("9" * 400 + "d", "too long"),
    ],
)
def test_bad_durations(text: str, fragment: str) -> None:
    with pytest.raises(DurationError, match=fragment):
        parse_duration(text)


def test_duration_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("literal", "days"),
    [("7d", 7), ("2w", 14), ("12h", 0.5), ("30m", 30 / 1440), ("45s", 45 / 86400), ("1.5d", 1.5)],
)
def test_duration_literals_are_days(literal: str, days: float) -> None:
    # constants fold at compile time: the compiled function ignores its view
    assert compile_expr(f"{literal} == {days!r}", segments=()).fn(FakeView()) is True
