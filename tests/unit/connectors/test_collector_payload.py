"""Pure parts of the collector: enrichment, skew correction, limits, decoding, auth parsing."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson
import pytest

from connectors.collector.auth import authorized, basic_auth_user, body_write_key
from connectors.collector.config import CollectorConfig, Limits
from connectors.collector.payload import (
    PayloadError,
    Rejected,
    dead_letter,
    decompress,
    enrich,
    parse_json,
    plan_batch,
    plan_single,
)
from streams.contract import MAX_DEAD_RAW
from streams.engine.events import REASONS, EventError, parse_time

RECEIVED = parse_time("2024-05-01T12:00:00.000Z")
LIMITS = Limits()


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- enrichment ---------------------------------------------------------------------------


def test_skew_correction_uses_sent_at():
    # The client's clock is 1 h ahead: it says it sent at 13:00:05 an event of 13:00:00.
    event = {
        "type": "track",
        "event": "Product Viewed",
        "userId": "u",
        "timestamp": "2024-05-01T13:00:00.000Z",
        "sentAt": "2024-05-01T13:00:05.000Z",
    }
    out = enrich(event, RECEIVED)
    assert out["receivedAt"] == "2024-05-01T12:00:00.000Z"
    assert out["timestamp"] == "2024-05-01T11:59:55.000Z"
    assert out["originalTimestamp"] == "2024-05-01T13:00:00.000Z"
    assert event["timestamp"] == "2024-05-01T13:00:00.000Z"  # the input is not mutated


def test_batch_sent_at_applies_when_the_event_has_none():
    event = {"type": "track", "event": "x", "userId": "u", "timestamp": "2024-05-01T10:00:00+02:00"}
    out = enrich(event, RECEIVED, sent_at="2024-05-01T08:00:10Z")
    assert out["timestamp"] == "2024-05-01T11:59:50.000Z"
    assert out["sentAt"] == "2024-05-01T08:00:10Z"


def test_without_sent_at_the_timestamp_is_kept_as_sent():
    out = enrich({"type": "page", "userId": "u", "timestamp": "2024-04-01T00:00:00Z"}, RECEIVED)
    assert out["timestamp"] == "2024-04-01T00:00:00Z"
    assert "originalTimestamp" not in out


def test_missing_timestamp_defaults_to_received_at():
    out = enrich({"type": "identify", "userId": "u", "sentAt": "2030-01-01T00:00:00Z"}, RECEIVED)
    assert out["timestamp"] == out["receivedAt"] == "2024-05-01T12:00:00.000Z"


@pytest.mark.parametrize("sent_at", ["soon", ["2024-04-01T00:00:00Z"], 12, {"t": 1}])
def test_a_sent_at_that_is_not_a_time_refuses_the_event(sent_at: Any) -> None:
    with pytest.raises(EventError, match="sentAt"):
        enrich({"userId": "u", "timestamp": "2024-04-01T00:00:00Z", "sentAt": sent_at}, RECEIVED)


@pytest.mark.parametrize(
    "sent_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z"]
)
def test_a_sent_at_at_the_ends_of_the_calendar_refuses_the_event_never_raises_else(
    sent_at: str,
) -> None:
    event = {"type": "track", "event": "x", "userId": "u", "timestamp": "2024-04-01T00:00:00Z"}
    plan = plan_single({**event, "sentAt": sent_at}, "track", RECEIVED, LIMITS)
    assert plan.records == [] and len(plan.rejected) == 1
    assert plan.rejected[0].reason


def test_an_event_the_engine_refuses_for_its_time_is_refused_here_already() -> None:
    event = {"type": "page", "userId": "u", "timestamp": "0001-01-01T00:00:00Z"}
    plan = plan_single(event, "page", RECEIVED, LIMITS)
    assert plan.records == [] and len(plan.rejected) == 1


def test_a_batch_whose_sent_at_is_not_a_time_is_refused_as_a_whole() -> None:
    batch = {"batch": [{"type": "page", "userId": "u"}], "sentAt": "tomorrow"}
    with pytest.raises(PayloadError) as err:
        plan_batch(batch, RECEIVED, LIMITS)
    assert (err.value.status, err.value.code) == (400, "invalid_batch")
    assert "sentAt" in err.value.message


def test_an_event_more_than_the_clock_skew_ahead_of_the_server_is_refused() -> None:
    ahead = {"type": "page", "userId": "u", "timestamp": "2024-05-02T12:00:01.000Z"}  # 1d + 1s
    plan = plan_single(ahead, "page", RECEIVED, LIMITS)
    assert plan.records == [] and "ahead of the server clock" in plan.rejected[0].reason
    just = {**ahead, "timestamp": "2024-05-02T11:59:59.000Z"}
    assert len(plan_single(just, "page", RECEIVED, LIMITS).records) == 1
    lenient = Limits(max_clock_skew=7 * 86400)
    assert len(plan_single(ahead, "page", RECEIVED, lenient).records) == 1


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


MALFORMED: dict[str, dict[str, Any]] = {
    "event as an object": {"type": "track", "event": {"name": "x"}},
    "type as a list": {"type": ["track"], "event": "x"},
    "type as an object": {"type": {"t": 1}, "event": "x"},
    "300-deep properties": {"type": "track", "event": "x", "properties": _deep(300)},
    "300-deep traits": {"type": "identify", "traits": _deep(300)},
    "timestamp year 9999 -14:00": {"type": "page", "timestamp": "9999-12-31T23:59:59-14:00"},
    "timestamp year 9999": {"type": "page", "timestamp": "9999-12-31T23:59:59Z"},
    "timestamp unparsable": {"type": "page", "timestamp": "2026-W02-1x"},
    "timestamp a number": {"type": "page", "timestamp": 1e300},
    "sentAt year 1": {
        "type": "page",
        "timestamp": "2024-05-01T00:00:00Z",
        "sentAt": "0001-01-01T00:00:00Z",
    },
    "sentAt unparsable": {"type": "page", "timestamp": "2024-05-01T00:00:00Z", "sentAt": "x"},
    "userId as an object": {"type": "page", "userId": {"id": 1}},
    "messageId as a list": {"type": "page", "messageId": [1]},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_event_is_refused_with_a_reason_and_its_dead_letter_encodes(
    name: str,
) -> None:
    event = {"userId": "u-bad", **MALFORMED[name]}
    single = plan_single(event, "track", RECEIVED, LIMITS)
    assert single.records == [] and len(single.rejected) == 1
    assert single.rejected[0].reason
    batch = plan_batch({"batch": [event, {"type": "page", "userId": "u-ok"}]}, RECEIVED, LIMITS)
    assert len(batch.records) == 1 and len(batch.rejected) == 1
    letter = orjson.loads(dead_letter(batch.rejected[0], at=RECEIVED).value)
    assert letter["reason"] == batch.rejected[0].code in REASONS
    assert letter["message"] == batch.rejected[0].reason
    assert isinstance(letter["raw"], str) and len(letter["raw"]) <= MAX_DEAD_RAW + 60


def test_dead_letter_raw_is_truncated_and_cut_at_a_depth() -> None:
    deep = dead_letter(Rejected({"userId": "u", "traits": _deep(300)}, "too deep"), at=RECEIVED)
    raw = orjson.loads(deep.value)["raw"]
    assert "...(too deep)" in raw and deep.key == b"u"
    big = dead_letter(Rejected({"userId": "u", "blob": "x" * 100_000}, "too large"), at=RECEIVED)
    assert "...(truncated, " in orjson.loads(big.value)["raw"]
    odd_key = dead_letter(Rejected({"userId": {"a": 1}}, "bad id"), at=RECEIVED)
    assert odd_key.key is None


def test_bad_timestamp_is_an_event_error():
    with pytest.raises(EventError, match="ISO-8601"):
        enrich({"userId": "u", "timestamp": "yesterday"}, RECEIVED)


def test_message_id_added_only_when_missing():
    out = enrich({"userId": "u"}, RECEIVED, new_id=lambda: "fixed")
    assert out["messageId"] == "fixed"
    kept = enrich({"userId": "u", "messageId": "m-1"}, RECEIVED, new_id=lambda: "fixed")
    assert kept["messageId"] == "m-1"
    generated = enrich({"userId": "u", "messageId": ""}, RECEIVED)
    assert len(generated["messageId"]) == 36  # a uuid4


def test_type_from_path_write_key_removed_and_the_rest_kept():
    event = {
        "type": "",
        "userId": "u",
        "writeKey": "secret",
        "properties": {"a": [1, {"b": None}]},
        "custom": True,
    }
    out = enrich(event, RECEIVED, kind="screen")
    assert out["type"] == "screen"
    assert "writeKey" not in out
    assert out["properties"] == {"a": [1, {"b": None}]}
    assert out["custom"] is True
    assert enrich({"type": "page", "userId": "u"}, RECEIVED, kind="track")["type"] == "page"


def test_batch_context_is_a_default_the_event_overrides():
    defaults = {"context": {"ip": "1.2.3.4", "locale": "fr"}, "integrations": {"All": True}}
    out = enrich({"userId": "u", "context": {"locale": "de"}}, RECEIVED, defaults=defaults)
    assert out["context"] == {"ip": "1.2.3.4", "locale": "de"}
    assert out["integrations"] == {"All": True}


# --- plans: routing, limits, rejects ------------------------------------------------------


def test_single_event_routes_by_type_and_event():
    plan = plan_single({"userId": "u1", "event": "Order Completed"}, "track", RECEIVED, LIMITS)
    (record,) = plan.records
    assert record.topic == "purchases"
    assert record.key == b"u1"
    value = orjson.loads(record.value)
    assert value["type"] == "track" and value["receivedAt"] and value["messageId"]
    alias = plan_single({"userId": "u", "previousId": "a"}, "alias", RECEIVED, LIMITS)
    assert alias.records[0].topic == "identities"
    page = plan_single({"anonymousId": "anon"}, "page", RECEIVED, LIMITS)
    assert (page.records[0].topic, page.records[0].key) == ("clickstream", b"anon")


def test_single_invalid_event_is_rejected_with_the_reason():
    plan = plan_single({"event": "Product Viewed"}, "track", RECEIVED, LIMITS)
    assert plan.records == []
    assert plan.rejected[0].reason == "missing userId and anonymousId"
    not_object = plan_single([1, 2], "track", RECEIVED, LIMITS)
    assert "JSON object" in not_object.rejected[0].reason


def test_batch_keeps_the_valid_events_and_rejects_the_others():
    body = {
        "batch": [
            {"type": "track", "event": "Product Viewed", "userId": "a"},
            {"type": "track", "userId": "b"},  # no event name
            {"type": "nonsense", "userId": "c"},
            {"type": "identify", "userId": "d", "traits": {"email": "d@x"}},
        ],
        "sentAt": "2024-05-01T12:00:00Z",
    }
    plan = plan_batch(body, RECEIVED, LIMITS)
    assert [r.topic for r in plan.records] == ["clickstream", "identities"]
    assert [r.reason for r in plan.rejected] == [
        "track event without an event name",
        "type must be one of ['alias', 'identify', 'page', 'screen', 'track'], got 'nonsense'",
    ]


def test_batch_limits():
    small = Limits(max_event_bytes=400, max_batch_bytes=10_000, max_batch_events=3)
    with pytest.raises(PayloadError) as exc:
        plan_batch({"batch": [{}] * 4}, RECEIVED, small)
    assert (exc.value.status, exc.value.code) == (400, "too_many_events")
    with pytest.raises(PayloadError, match="batch"):
        plan_batch({"events": []}, RECEIVED, small)
    big = {"type": "track", "event": "x", "userId": "u", "properties": {"p": "x" * 500}}
    plan = plan_batch({"batch": [big, {"type": "page", "userId": "u"}]}, RECEIVED, small)
    assert len(plan.records) == 1
    assert plan.rejected[0].reason == "event larger than 400 bytes"


def test_event_just_under_the_limit_passes_despite_enrichment():
    small = Limits(max_event_bytes=400)
    event: dict[str, Any] = {"type": "track", "event": "x", "userId": "u", "properties": {"p": ""}}
    event["properties"]["p"] = "x" * (399 - len(orjson.dumps(event)))
    assert len(orjson.dumps(event)) == 399
    assert len(plan_batch({"batch": [event]}, RECEIVED, small).records) == 1


def test_dead_letter_shape():
    plan = plan_single({"anonymousId": "z", "writeKey": "k"}, "track", RECEIVED, LIMITS)
    record = dead_letter(plan.rejected[0], at=RECEIVED)
    assert record.topic == "dead-letters"
    assert record.key == b"z"
    value = orjson.loads(record.value)
    assert value == {
        "source": "collector",
        "offset": None,
        "raw": '{"anonymousId":"z"}',
        "reason": "missing_field",
        "message": "track event without an event name",
        "at": "2024-05-01T12:00:00.000Z",
    }


# --- decoding -----------------------------------------------------------------------------


def test_gzip_round_trip_and_identity():
    data = b'{"batch": []}'
    assert decompress(gzip.compress(data), "gzip", 100) == data
    assert decompress(data, None, 100) == data
    assert decompress(data, "gzip", 100) == data  # already decoded by the server


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"0" * 50_000_000)  # ~50 kB on the wire
    assert len(bomb) < 100_000
    with pytest.raises(PayloadError) as exc:
        decompress(bomb, "gzip", 500 * 1024)
    assert (exc.value.status, exc.value.code) == (400, "too_large")


def test_gzip_multi_member_and_limits():
    data = gzip.compress(b'{"a":') + gzip.compress(b"1}")
    assert decompress(data, "gzip", 100) == b'{"a":1}'
    with pytest.raises(PayloadError, match="larger than 5"):
        decompress(data, "gzip", 5)
    with pytest.raises(PayloadError, match="larger than 5"):
        decompress(b"123456", None, 5)


def test_broken_gzip_and_unknown_encoding():
    with pytest.raises(PayloadError, match="truncated"):
        decompress(gzip.compress(b"x" * 1000)[:20], "gzip", 10_000)
    with pytest.raises(PayloadError, match="invalid gzip"):
        decompress(b"\x1f\x8b" + b"garbage" * 10, "gzip", 10_000)
    with pytest.raises(PayloadError) as exc:
        decompress(b"{}", "br", 100)
    assert exc.value.status == 415


def test_parse_json():
    assert parse_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(PayloadError) as exc:
        parse_json(b"{nope")
    assert (exc.value.status, exc.value.code) == (400, "invalid_json")


# --- auth ---------------------------------------------------------------------------------


def test_basic_auth_segment_style():
    assert basic_auth_user(basic("KEY")) == "KEY"


def test_basic_auth_rudderstack_quotes_password():
    assert basic_auth_user(basic("KEY", '""')) == "KEY"


def test_basic_auth_garbage():
    assert basic_auth_user(None) is None
    assert basic_auth_user("") is None
    assert basic_auth_user("Bearer abc") is None
    assert basic_auth_user("Basic !!!notbase64") is None
    assert basic_auth_user(basic("")) is None
    assert basic_auth_user("basic " + base64.b64encode(b"k:").decode()) == "k"


def test_authorized_and_body_key():
    assert authorized(frozenset(), None)
    assert not authorized(frozenset({"k"}), None, "x")
    assert authorized(frozenset({"k"}), None, "k")
    assert body_write_key({"writeKey": "k"}) == "k"
    assert body_write_key({"writeKey": 3}) is None
    assert body_write_key([]) is None


def test_producer_config_defaults_and_overrides():
    conf = CollectorConfig(
        "b:1", ack_timeout=20, producer_options={"linger.ms": 1}
    ).producer_config()
    assert conf["partitioner"] == "murmur2_random"
    assert conf["enable.idempotence"] is True
    assert conf["linger.ms"] == 1
    assert conf["message.timeout.ms"] == 60_000
