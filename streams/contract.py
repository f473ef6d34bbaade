"""The contract of the topics: what every producer and reader of them must agree on.

The collector, the worker, both replays (file and topics), `deliver`, `tail` and the demo take
from here, and only from here: topic names and their prefix, the partition count, the input
topic of an event, its key, its time and the Kafka timestamp made of it, the partition of a key,
the dead-letter record of a value no one can read, and the codec (JSON, or Confluent Avro when
a Schema Registry is configured). Decisions pinned by tests/unit/test_contract.py:

- Routing: identify, alias and group travel on `identities`; the track events of the order
  lifecycle (`PURCHASE_EVENTS`, `Order Updated` included) on `purchases`; the rest on
  `clickstream`. The engine reads all three alike, so the topic decides only the order within a
  partition and what a dead letter names as its source (a `group` call is one: the engine does
  not take group events).
- Key: the consumer id as the engine computes it (`Event.consumer_id`): userId, else
  anonymousId; ids are strings and an integer id is its decimal digits (`0` -> "0"), as
  Segment's servers coerce it; any other id (boolean, float, object, too long) has no key and
  the event is a dead letter everywhere.
- Time: `timestamp`, else `originalTimestamp`, else `receivedAt`; the Kafka record timestamp is
  that time in milliseconds rounded up (at microsecond precision), so a `[since, until)` range
  of Kafka timestamps holds exactly the events whose time is in it.

Dependencies point one way: the engine (`streams.engine`) <- this module and the codecs
(`streams.codec`, `schemas`) <- connectors <- shells <- the `micromarketing` CLI.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import orjson

from streams.codec import AvroCodec, CodecError, JsonCodec, is_confluent_avro
from streams.engine.core import MAX_DEAD_LETTER_RAW
from streams.engine.events import INVALID_JSON, EventError, consumer_key, iso, parse_time
from streams.engine.partitioning import partition_for
from streams.engine.topics import (
    ALL_TOPICS,
    CLICKSTREAM,
    CONTROL,
    CONVERSIONS,
    DEAD_LETTERS,
    DELIVERIES,
    DELIVERY_FAILURES,
    FORWARDS,
    IDENTITIES,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    PROFILES,
    PURCHASES,
    SEGMENT_CHANGES,
    SUPPRESSED,
    TRIGGER_TOPICS,
    TRIGGERS_RETARGETING,
    TRIGGERS_WINBACK,
    trigger_topic,
)

# topics --------------------------------------------------------------------------------------

#: Prefix put before every topic name (tests isolate themselves on one shared broker with it).
PREFIX_ENV = "MICROMARKETING_TOPIC_PREFIX"
#: Partitions of the topics we create, and of the engines when nothing else says.
DEFAULT_PARTITIONS = 4


def topic_prefix() -> str:
    """`$MICROMARKETING_TOPIC_PREFIX` ("" when unset)."""
    return os.environ.get(PREFIX_ENV, "")


def topic_name(base: str, prefix: str | None = None) -> str:
    """The real name of topic `base`: the prefix (default `$MICROMARKETING_TOPIC_PREFIX`) + base."""
    return (topic_prefix() if prefix is None else prefix) + base


def input_topic_names(prefix: str | None = None) -> dict[str, str]:
    """Real name -> base name of the input topics."""
    pre = topic_prefix() if prefix is None else prefix
    return {pre + base: base for base in INPUT_TOPICS}


# events: topic, key, partition, time --------------------------------------------------------

#: Event types that travel on `identities` (`group` too, though the engine refuses it).
IDENTITY_TYPES = frozenset({"identify", "alias", "group"})
#: Track events that travel on `purchases`: the order lifecycle of Segment's e-commerce spec.
PURCHASE_EVENTS = frozenset(
    {"Checkout Started", "Order Completed", "Order Updated", "Order Refunded", "Order Cancelled"}
)


def input_topic(obj: Mapping[str, Any]) -> str:
    """Base input topic of a Segment event: identities, purchases or clickstream."""
    etype = obj.get("type")
    if etype in IDENTITY_TYPES:
        return IDENTITIES
    if etype == "track" and obj.get("event") in PURCHASE_EVENTS:
        return PURCHASES
    return CLICKSTREAM


def record_key(obj: dict[str, Any]) -> bytes | None:
    """Kafka key of a Segment event: its consumer id (`consumer_key`), None when it has none."""
    key = consumer_key(obj)
    return None if key is None else key.encode()


def partition_of(key: str | None, partitions: int) -> int:
    """The partition of a consumer key (Kafka's murmur2 partitioner); no key -> partition 0."""
    return partition_for(key, partitions) if key else 0


def event_time(obj: Mapping[str, Any]) -> float | None:
    """The event's time as the engine reads it (epoch seconds), None when it has no valid one."""
    stamp = obj.get("timestamp") or obj.get("originalTimestamp") or obj.get("receivedAt")
    if stamp is None:
        return None
    try:
        t = parse_time(stamp)
    except (EventError, OverflowError, OSError, ValueError):
        return None
    return t if math.isfinite(t) else None


def to_ms_ceil(t: float) -> int:
    """Epoch seconds -> the smallest whole millisecond at or after it (microsecond precision)."""
    us = round(t * 1_000_000)
    return -(-us // 1000)


def timestamp_ms(t: float) -> int:
    """The Kafka record timestamp of an event at `t`: milliseconds rounded up, at least 0."""
    return max(0, to_ms_ceil(t))


def record_timestamp_ms(obj: Mapping[str, Any]) -> int | None:
    """Kafka record timestamp of an event (`timestamp_ms`), None when it has no valid time."""
    t = event_time(obj)
    return None if t is None else timestamp_ms(t)


def where(base: str, partition: int, offset: int) -> str:
    """Where a record was read, as dead letters say it: `topic:partition:offset` (base name)."""
    return f"{base}:{partition}:{offset}"


# dead letters ------------------------------------------------------------------------------

#: Longest `raw` of a dead letter made outside the engine, in characters (the rest is cut): the
#: engine's own bound, so every dead letter is cut alike.
MAX_DEAD_RAW = MAX_DEAD_LETTER_RAW
#: Nesting kept in a dead letter's `raw` (deeper containers become a placeholder).
MAX_DEAD_DEPTH = 16


def raw_text(raw: Any) -> str:
    """The `raw` of a dead letter: bytes as UTF-8 (bad bytes replaced), other values as JSON
    (nesting cut at MAX_DEAD_DEPTH when it cannot be encoded as is), at most MAX_DEAD_RAW."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # too deep, or strings that are not UTF-8
            pruned = _pruned(raw, MAX_DEAD_DEPTH)
            text = orjson.dumps(pruned, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(text) > MAX_DEAD_RAW:
        text = text[:MAX_DEAD_RAW] + f"...(truncated, {len(text) - MAX_DEAD_RAW} more characters)"
    return text


def _pruned(value: Any, depth: int) -> Any:
    """`value` with containers below `depth` levels and unencodable strings replaced."""
    if isinstance(value, dict | list):
        if depth <= 0:
            return "...(too deep)"
        if isinstance(value, dict):
            return {str(k): _pruned(v, depth - 1) for k, v in value.items()}
        return [_pruned(v, depth - 1) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def dead_letter(
    source: str,
    offset: str | None,
    raw: Any,
    reason: str,
    at: float | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """The dead-letter record `{source, offset, raw, reason, message, at}` (`reason` a code of
    streams.engine.events.REASONS, `at` ISO-8601 or None)."""
    return {
        "source": source,
        "offset": offset,
        "raw": raw_text(raw),
        "reason": reason,
        "message": message,
        "at": None if at is None else iso(at),
    }


def undecodable(
    base: str, partition: int, offset: int, raw: bytes, exc: Exception
) -> dict[str, Any]:
    """The dead letter of an input value that does not decode, live and in topic replay alike."""
    return dead_letter(
        base, where(base, partition, offset), raw, INVALID_JSON, message=f"undecodable value: {exc}"
    )


# codec ---------------------------------------------------------------------------------------

#: Environment variable naming the Schema Registry URL (Avro output when set).
SCHEMA_REGISTRY_ENV = "MICROMARKETING_SCHEMA_REGISTRY"

Codec = JsonCodec | AvroCodec


def schema_registry_url(explicit: str | None = None) -> str | None:
    """The Schema Registry URL: `explicit` if given, else `$MICROMARKETING_SCHEMA_REGISTRY`."""
    return explicit or os.environ.get(SCHEMA_REGISTRY_ENV) or None


def make_codec(schema_registry: str | None) -> Codec:
    """JSON without a registry URL, Confluent Avro with one (`mock://...` is an in-process one)."""
    return AvroCodec(schema_registry) if schema_registry else JsonCodec()


_codec: Codec | None = None


def codec() -> Codec:
    """The process-wide codec, chosen once from `$MICROMARKETING_SCHEMA_REGISTRY`."""
    global _codec
    if _codec is None:
        _codec = make_codec(schema_registry_url())
    return _codec


def reset_codec() -> None:
    """Forget the process-wide codec (the next use reads the environment again)."""
    global _codec
    _codec = None


def encode_value(topic: str, value: Mapping[str, Any]) -> bytes:
    """Serialize a record of `topic` (base name) with the process-wide codec."""
    return codec().encode(topic, value)


def decode_value(topic: str, data: bytes) -> dict[str, Any]:
    """Deserialize a record of `topic` (JSON or Confluent Avro, told apart by the first byte)."""
    return codec().decode(topic, data)


def decode_input(data: bytes) -> bytes | dict[str, Any]:
    """An input value in the form the engine takes: JSON bytes as they are (the engine parses
    them and says what is wrong), Confluent Avro decoded to its Segment object. Raises
    CodecError for Avro that does not decode (`undecodable` is its dead letter)."""
    if is_confluent_avro(data):
        return dict(codec().decode_input(data))
    return data


__all__ = [
    "ALL_TOPICS",
    "CLICKSTREAM",
    "CONTROL",
    "CONVERSIONS",
    "DEAD_LETTERS",
    "DEFAULT_PARTITIONS",
    "DELIVERIES",
    "DELIVERY_FAILURES",
    "FORWARDS",
    "IDENTITIES",
    "IDENTITY_TYPES",
    "INPUT_TOPICS",
    "MAX_DEAD_DEPTH",
    "MAX_DEAD_RAW",
    "OUTPUT_TOPICS",
    "PREFIX_ENV",
    "PROFILES",
    "PURCHASES",
    "PURCHASE_EVENTS",
    "SCHEMA_REGISTRY_ENV",
    "SEGMENT_CHANGES",
    "SUPPRESSED",
    "TRIGGERS_RETARGETING",
    "TRIGGERS_WINBACK",
    "TRIGGER_TOPICS",
    "Codec",
    "CodecError",
    "codec",
    "consumer_key",
    "dead_letter",
    "decode_input",
    "decode_value",
    "encode_value",
    "event_time",
    "input_topic",
    "input_topic_names",
    "is_confluent_avro",
    "make_codec",
    "partition_of",
    "raw_text",
    "record_key",
    "record_timestamp_ms",
    "reset_codec",
    "schema_registry_url",
    "timestamp_ms",
    "to_ms_ceil",
    "topic_name",
    "topic_prefix",
    "trigger_topic",
    "undecodable",
    "where",
]
