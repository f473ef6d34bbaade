from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.events import EventError, iso, parse_time


@given(st.floats(0, 4e9, allow_nan=False))
def test_iso_is_utc_with_milliseconds_and_round_trips(ts):
    ms = round(ts * 1000)
    expected = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert iso(ts) == f"{expected}.{ms % 1000:03d}Z"
    assert parse_time(iso(ts)) == pytest.approx(ms / 1000, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "ts"),
    [
        ("2026-01-01T00:00:00Z", 1767225600.0),
        ("2026-01-01T00:00:00.250z", 1767225600.25),
        (" 2026-01-01T00:00:00Z ", 1767225600.0),
        ("2026-01-01T01:00:00+01:00", 1767225600.0),
        ("2026-01-01 00:00:00", 1767225600.0),  # naive means UTC
    ],
)
def test_parse_time_forms(text, ts):
    assert parse_time(text) == ts


@given(st.integers(-10**12, 8 * 10**12))
def test_parse_time_of_the_usual_form_is_datetimes_to_the_bit(ms):
    # "YYYY-MM-DDTHH:MM:SS.mmmZ" takes a shortcut for years 1970..2199: the same float
    text = iso(ms / 1000)
    assert parse_time(text) == datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    "bad",
    [
        "yesterday",
        "",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00.000Z",
        "2026-04-31T00:00:00.000Z",
        "2026-01-01T24:00:00.000Z",
        "2026-01-01T00:60:00.000Z",
        "2026-01-01T00:00:60.000Z",
        "2026-00-01T00:00:00.000Z",
        1767225600,
    ],
)
def test_parse_time_refuses(bad):
    with pytest.raises(EventError):
        parse_time(bad)
