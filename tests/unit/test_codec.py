"""Schemas and value codecs: round trips, JSON vs Confluent Avro sniffing, Segment fidelity."""

from __future__ import annotations

import io
import struct
from importlib.resources import files
from typing import Any

import fastavro
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from streams import contract
from streams.codec import (
    AvroCodec,
    CodecError,
    JsonCodec,
    event_to_record,
    is_confluent_avro,
)
from streams.contract import INPUT_TOPICS, OUTPUT_TOPICS, make_codec

CONTEXT = {
    "ip": "203.0.113.7",
    "timezone": "Europe/Paris",
    "library": {"name": "analytics.js", "version": "4.1.0"},
    "location": {"country": "FR", "city": "Lyon", "latitude": 45.764, "longitude": 4.8357},
    "campaign": {"name": "spring-sale", "source": "newsletter"},
    "consent": {"categoryPreferences": {"marketing": False}},
    "traits": {"email": "ada@example.com"},
}

INPUT_EVENTS: dict[str, list[dict[str, Any]]] = {
    "clickstream": [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "a-1",
            "messageId": "m-1",
            "timestamp": "2024-05-01T11:30:00.123Z",
            "sentAt": "2024-05-01T11:30:00.200Z",
            "receivedAt": "2024-05-01T11:30:00.321Z",
            "properties": {"product_id": "p1", "category": "road", "brand": "V", "price": 1899.0},
            "context": CONTEXT,
            "integrations": {"All": True, "Braze": False},
        },
        {
            "type": "page",
            "name": "Home",
            "userId": "u-1",
            "messageId": "m-2",
            "originalTimestamp": "2024-05-01T11:31:00Z",
            "properties": {"path": "/", "title": "Bike shop"},
            "channel": "client",
            "version": 2,
        },
        {
            "type": "track",
            "event": "Products Searched",
            "userId": "u-1",
            "timestamp": "2024-05-01T11:32:00+02:00",
            "properties": {"query": "gravel 🚲", "filters": [{"k": "price", "v": [0, 500]}]},
        },
    ],
    "purchases": [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u-1",
            "messageId": "m-3",
            "timestamp": "2024-05-01T11:36:40.555Z",
            "properties": {
                "order_id": "o-1",
                "revenue": 2034.5,
                "discount": 100,
                "coupon": None,
                "currency": "EUR",
                "products": [
                    {"product_id": "p1", "category": "road", "price": 1899.0, "quantity": 1},
                    {"product_id": "p2", "category": "bottles", "price": 9.5, "quantity": 2},
                ],
            },
        },
        {"type": "track", "event": "Order Refunded", "userId": "u-1", "messageId": "m-4",
         "timestamp": "2024-05-02T08:00:00Z", "properties": {"order_id": "o-1"}},
    ],
    "identities": [
        {
            "type": "identify",
            "userId": "u-1",
            "anonymousId": "a-1",
            "messageId": "m-5",
            "timestamp": "2024-05-01T11:29:00Z",
            "traits": {"gender": "female", "age": 34, "email": "ada@example.com",
                       "unsubscribed": False, "address": {"city": "Lyon"}},
            "context": {"consent": {"categoryPreferences": {"marketing": True}}},
        },
        {"type": "alias", "userId": "u-1", "previousId": "a-0", "messageId": "m-6",
         "timestamp": "2024-05-01T11:29:01Z"},
    ],
}

OUTPUT_RECORDS: dict[str, list[dict[str, Any]]] = {
    "segment-changes": [
        {"consumer_id": "u-1", "segment": "champions", "change": "entered",
         "at": "2024-05-01T11:36:40.555Z", "event": "Audience Entered", "rules_version": "v3"},
        {"consumer_id": "u-1", "segment": "champions", "change": "exited",
         "at": "2024-06-01T00:00:00.000Z", "event": "Audience Exited", "rules_version": None},
    ],
    "triggers.retargeting": [
        {"trigger_id": "t-1", "kind": "retargeting", "campaign": "cart-abandonment",
         "consumer_id": "u-1", "fired_at": "2024-05-01T12:06:40.555Z",
         "due_at": "2024-05-01T12:06:40.555Z", "offer": "free-shipping",
         "products": ["p1", "p2"], "segments": ["champions"], "holdout": False,
         "reason": None, "attribution_until": "2024-05-08T12:06:40.555Z", "rules_version": "v3"},
    ],
    "triggers.winback": [
        {"trigger_id": "t-2", "kind": "winback", "campaign": "winback-60d",
         "consumer_id": "u-2", "fired_at": "2024-07-01T00:00:00.000Z",
         "due_at": "2024-07-01T00:00:00.000Z", "offer": None, "products": [],
         "segments": [], "holdout": True, "reason": "global_control",
         "attribution_until": "2024-07-08T00:00:00.000Z", "rules_version": None},
    ],
    "suppressed": [
        {"campaign": "winback-60d", "kind": "winback", "consumer_id": "u-2",
         "due_at": "2024-07-01T00:00:00.000Z", "reason": "frequency_cap", "rules_version": "v3",
         "trigger_id": "t-3"},
        {"campaign": "cart-abandonment", "kind": "retargeting", "consumer_id": "u-3",
         "due_at": "2024-07-01T00:00:00.000Z", "reason": "consent", "rules_version": None,
         "trigger_id": None},
    ],
    "dead-letters": [
        {"source": "clickstream", "offset": "2:1041", "raw": '{"type": "nope"',
         "reason": "invalid_json", "message": "invalid JSON: unexpected end of data",
         "at": "2024-05-01T11:30:00.123Z"},
        {"source": "events.jsonl", "offset": None, "raw": "\x00\ufffd", "reason": "r",
         "message": None, "at": None},
    ],
    "profiles": [
        # (the engine's contact records leave out the snapshots' fields: Avro gives them null)
        {"consumer_id": "u-1", "email": "ada@example.com", "consented": True,
         "at": "2024-05-01T11:29:00.000Z", "features": None, "segments": None},
        {"consumer_id": "u-2", "email": None, "consented": False, "at": "2024-05-01T11:29:00.000Z",
         "features": None, "segments": None},
        {"consumer_id": "u-3", "email": None, "consented": True, "at": "2024-05-01T11:29:00.000Z",
         "features": {"views": 3, "revenue": 12.5, "top_category": "road", "consented": True,
                      "days_since_last_order": None},
         "segments": ["browser"]},
    ],
    "conversions": [
        {"trigger_id": "t-1", "campaign": "cart-abandonment", "kind": "retargeting",
         "offer": "free-shipping", "consumer_id": "u-1", "holdout": False,
         "fired_at": "2024-05-01T12:06:40.555Z", "converted_at": "2024-05-02T09:00:00.000Z",
         "order_id": "o-2", "revenue": 19.5},
        {"trigger_id": "t-2", "campaign": "winback-60d", "kind": "winback", "offer": None,
         "consumer_id": "u-2", "holdout": True, "fired_at": "2024-07-01T00:00:00.000Z",
         "converted_at": "2024-07-08T00:00:00.000Z", "order_id": None, "revenue": 0.0},
    ],
}

ALL = [(t, r) for t, rs in {**INPUT_EVENTS, **OUTPUT_RECORDS}.items() for r in rs]


@pytest.fixture
def avro() -> AvroCodec:
    return AvroCodec("mock://test-codec")


# schemas ----------------------------------------------------------------------------------------


def test_every_topic_has_a_schema_file_shipped_as_package_data() -> None:
    assert set(schemas.SCHEMA_FILES) == set(INPUT_TOPICS) | set(OUTPUT_TOPICS)
    for name in schemas.SCHEMA_FILES.values():
        assert files("schemas").joinpath(name).is_file()


@pytest.mark.parametrize("topic", sorted(schemas.SCHEMA_FILES))
def test_schemas_are_namespaced_and_documented(topic: str) -> None:
    raw = orjson.loads(files("schemas").joinpath(schemas.SCHEMA_FILES[topic]).read_text())
    assert raw["namespace"] == "micromarketing.v1"
    assert raw["doc"]
    assert all(f.get("doc") for f in raw["fields"])
    assert schemas.load_schema(topic)["name"].startswith("micromarketing.v1.")


def test_topic_names_map_to_schemas_with_prefixes() -> None:
    assert schemas.load_schema("triggers.winback") is schemas.load_schema("triggers.retargeting")
    assert schemas.base_topic("t123-triggers.winback") == "triggers.winback"
    assert schemas.base_topic("x.dead-letters") == "dead-letters"
    with pytest.raises(KeyError):
        schemas.load_schema("nope")


def test_free_form_fields_are_marked_json() -> None:
    for topic in INPUT_TOPICS:
        assert schemas.json_fields(schemas.load_schema(topic)) == (
            "properties", "traits", "context", "integrations", "extra"
        )
    assert schemas.json_fields(schemas.load_schema("profiles")) == ()


# round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "record"), ALL)
def test_avro_round_trip(avro: AvroCodec, topic: str, record: dict[str, Any]) -> None:
    data = avro.encode(topic, record)
    assert is_confluent_avro(data)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == avro.register(topic)
    assert avro.decode(topic, data) == record


@pytest.mark.parametrize(("topic", "record"), ALL)
def test_json_round_trip(topic: str, record: dict[str, Any]) -> None:
    c = JsonCodec()
    assert c.decode(topic, c.encode(topic, record)) == record


@pytest.mark.parametrize(("topic", "event"), [(t, e) for t, es in INPUT_EVENTS.items() for e in es])
def test_decode_input_sniffs_json_and_avro(avro: AvroCodec, topic: str, event: dict) -> None:
    as_json = orjson.dumps(event)
    as_avro = avro.encode(topic, event)
    assert avro.decode_input(as_json) == event
    assert avro.decode_input(b" \n\t" + as_json) == event
    assert avro.decode_input(as_avro) == event
    assert JsonCodec().decode_input(as_json) == event


def test_output_records_validate_against_their_schema() -> None:
    for topic, records in OUTPUT_RECORDS.items():
        schema = schemas.load_schema(topic)
        for rec in records:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, rec)
            buf.seek(0)
            assert fastavro.schemaless_reader(buf, schema, None) == rec


def test_misfit_members_travel_in_extra() -> None:
    event = {"type": "track", "userId": 42, "anonymousId": None, "properties": "oops",
             "event": "X", "writeKey": "k"}
    rec = event_to_record(event)
    assert rec["type"] == "track"
    assert "userId" not in rec
    assert orjson.loads(rec["extra"]) == {"userId": 42, "anonymousId": None,
                                          "properties": "oops", "writeKey": "k"}


def test_one_topic_carries_both_formats(avro: AvroCodec) -> None:
    event = INPUT_EVENTS["clickstream"][0]
    values = [orjson.dumps(event), avro.encode("clickstream", event)]
    assert [avro.decode_input(v) for v in values] == [event, event]


# interop with confluent's serde ------------------------------------------------------------------


def test_wire_compatible_with_confluent_avro_serde() -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient.new_client({"url": "mock://interop"})
    ours = AvroCodec(client)
    topic = "triggers.retargeting"
    record = OUTPUT_RECORDS[topic][0]
    ctx = SerializationContext(topic, MessageField.VALUE)
    theirs = AvroSerializer(client, schemas.schema_text(topic))(record, ctx)
    assert theirs is not None
    assert ours.decode(topic, theirs) == record
    assert AvroDeserializer(client)(ours.encode(topic, record), ctx) == record


# errors -----------------------------------------------------------------------------------------


def test_json_codec_refuses_avro_with_a_reason(avro: AvroCodec) -> None:
    data = avro.encode("profiles", OUTPUT_RECORDS["profiles"][0])
    with pytest.raises(CodecError, match="no schema registry"):
        JsonCodec().decode("profiles", data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"type": "track"', "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"", "invalid JSON"),
        (b"\x00\x00\x00", "truncated"),
        (b"\x00\x00\x00\x03\xe7\x02", "unknown schema id 999"),
    ],
)
def test_undecodable_values_raise_codec_error(avro: AvroCodec, data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        avro.decode_input(data)


def test_corrupt_avro_body_raises_codec_error(avro: AvroCodec) -> None:
    data = avro.encode("triggers.winback", OUTPUT_RECORDS["triggers.winback"][0])
    with pytest.raises(CodecError, match="corrupt"):
        avro.decode("triggers.winback", data[:12])


def test_records_that_do_not_fit_raise_codec_error(avro: AvroCodec) -> None:
    bad = {**OUTPUT_RECORDS["suppressed"][0], "reason": "bored"}
    with pytest.raises(CodecError, match="does not fit"):
        avro.encode("suppressed", bad)
    with pytest.raises(CodecError):
        JsonCodec().encode("suppressed", {"x": object()})


def test_make_codec_and_process_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_codec(None), JsonCodec)
    assert isinstance(make_codec(""), JsonCodec)
    assert isinstance(make_codec("mock://m"), AvroCodec)
    monkeypatch.setattr(contract, "_codec", None)
    monkeypatch.setenv(contract.SCHEMA_REGISTRY_ENV, "mock://env")
    data = contract.encode_value("profiles", OUTPUT_RECORDS["profiles"][0])
    assert is_confluent_avro(data)
    assert contract.decode_value("profiles", data) == OUTPUT_RECORDS["profiles"][0]
    json_value = orjson.dumps({"a": 1})
    assert contract.decode_input(json_value) is json_value  # the engine parses JSON itself
    assert contract.decode_input(contract.encode_value("clickstream", {"a": 1})) == {"a": 1}


# arbitrary Segment JSON -------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=8), _json, max_size=5)
_known = ["type", "event", "name", "userId", "anonymousId", "previousId", "messageId",
          "timestamp", "originalTimestamp", "receivedAt", "sentAt"]
_segment_events = st.fixed_dictionaries(
    {},
    optional={
        **{k: st.text(max_size=10) | _json for k in _known},
        **{k: _objects | _json for k in ("properties", "traits", "context", "integrations")},
        "extra": _json,
        "channel": st.text(max_size=6),
        "writeKey": _json,
    },
)


@settings(max_examples=200, deadline=None)
@given(event=_segment_events, topic=st.sampled_from(sorted(INPUT_TOPICS)))
def test_arbitrary_segment_json_round_trips_through_avro(event: dict, topic: str) -> None:
    avro = _shared_avro()
    assert avro.decode_input(avro.encode(topic, event)) == event
    assert avro.decode_input(orjson.dumps(event)) == event


_AVRO: list[AvroCodec] = []


def _shared_avro() -> AvroCodec:
    if not _AVRO:
        _AVRO.append(AvroCodec("mock://hypothesis"))
    return _AVRO[0]
