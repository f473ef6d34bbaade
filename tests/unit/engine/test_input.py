"""Bad input becomes dead letters with the reason; duplicates are dropped and counted."""

from __future__ import annotations

import pytest

from streams.engine.events import EventError, parse_event
from tests.unit.engine.helpers import HOUR, T0, engine, run, track

CART = """
segments:
  - name: v
    when: views >= 1
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    offer: free-shipping
"""


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            {"type": "track", "event": "X", "timestamp": "2026-01-01T00:00:00Z"},
            "missing userId and anonymousId",
        ),
        ({"type": "trak", "userId": "u", "timestamp": "2026-01-01T00:00:00Z"}, "type must be"),
        (
            {"type": "track", "userId": "u", "timestamp": "2026-01-01T00:00:00Z"},
            "without an event name",
        ),
        ({"type": "track", "event": "X", "userId": "u", "timestamp": "yesterday"}, "not ISO-8601"),
        ({"type": "track", "event": "X", "userId": "u"}, "missing timestamp"),
        (
            {
                "type": "track",
                "event": "X",
                "userId": {"a": 1},
                "timestamp": "2026-01-01T00:00:00Z",
            },
            "userId must be a string",
        ),
        (
            {
                "type": "track",
                "event": "X",
                "userId": "u",
                "timestamp": "2026-01-01T00:00:00Z",
                "properties": [1],
            },
            "properties must be an object",
        ),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_parse_event_reasons(event, reason):
    with pytest.raises(EventError, match=reason):
        parse_event(event)


def test_bad_events_become_dead_letters_and_processing_goes_on():
    eng = engine(CART)
    out = eng.process(b'{"type": "track", "event": ', source="f.jsonl", offset="7")
    [dl] = out.dead_letters
    assert dl["source"] == "f.jsonl" and dl["offset"] == "7"
    assert dl["reason"] == "invalid_json" and dl["message"].startswith("invalid JSON")
    assert dl["raw"] == '{"type": "track", "event": '
    out = eng.process(
        {"type": "track", "event": "Product Viewed", "timestamp": "x", "userId": "u"}, offset="8"
    )
    assert out.dead_letters[0]["reason"] == "invalid_value"
    assert out.dead_letters[0]["message"].startswith("timestamp is not ISO-8601")
    out = run(eng, track("u", "Product Viewed", T0))
    assert len(out.segment_changes) == 1
    assert eng.stats["dead_letters"] == 2


def test_duplicate_message_ids_are_dropped_without_a_trace():
    eng = engine(CART)
    first = track("u", "Product Added", T0, mid="same")
    out = run(eng, first)
    state = eng.consumer("u")
    assert state is not None and state.cart_adds == 1
    dup = run(eng, dict(first), track("u", "Product Added", T0 + 1, mid="same"))
    assert not dup
    state = eng.consumer("u")
    assert state is not None and state.cart_adds == 1
    assert eng.stats["duplicates"] == 2
    # a duplicate does not re-arm: the trigger fires at the first arming's due time
    out = run(eng, track("w", "Page", T0 + HOUR))
    assert len(out.triggers) == 1


def test_dedupe_window_forgets_old_ids():
    eng = engine(CART + "settings:\n  dedupe_window: 1h\n")
    run(eng, track("u", "Product Viewed", T0, mid="m0"))
    for i in range(1, 200):
        run(eng, track("u", "Page", T0 + i * 60, mid=f"m{i}"))
    # m0 is older than the window now: it counts again
    run(eng, track("u", "Product Viewed", T0 + 200 * 60, mid="m0"))
    state = eng.consumer("u")
    assert state is not None and state.views == 2


def test_dedupe_survives_restart_from_store():
    from streams.engine.core import Engine

    eng = engine(CART)
    run(eng, track("u", "Product Viewed", T0, mid="once"))
    eng.flush()
    again = Engine(eng.rules, eng.store)
    assert not run(again, track("u", "Product Viewed", T0 + 5, mid="once"))
    state = again.consumer("u")
    assert state is not None and state.views == 1


@pytest.mark.parametrize(
    ("raw", "reason", "message"),
    [
        (b"[1, 2]", "bad_type", "event must be a JSON object, got list"),
        (b'"x"', "bad_type", "event must be a JSON object, got str"),
        (b"null", "bad_type", "event must be a JSON object, got NoneType"),
        (b"{oops", "invalid_json", "invalid JSON"),
    ],
)
def test_router_dead_letters_say_why_valid_json_is_not_an_event(raw, reason, message):
    from streams.engine.rules import loads_rules
    from streams.runtime import Runtime as Router

    router = Router(loads_rules(CART, "<test>"), 2)
    [dl] = router.process(raw, source="f.jsonl", offset="3").dead_letters
    assert dl["reason"] == reason and dl["message"].startswith(message)
    assert dl["raw"] == raw.decode()
