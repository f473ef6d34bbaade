"""Value codecs of our topics: plain JSON (orjson) or Avro in the Confluent wire format.

Which codec a process uses (JSON, or Avro when a Schema Registry is configured) is decided by
`streams.contract`, which also holds the process-wide codec; this module only implements them.

Input topics accept both at once: trackers send JSON, schema-aware producers send Confluent-framed
Avro (magic byte 0, 4-byte big-endian schema id, schemaless Avro body). `decode_input` tells them
apart by the first byte (`is_confluent_avro`), so one topic may carry a mix.

The Avro codec does the framing itself with fastavro and uses the Schema Registry client only to
register schemas and resolve ids (both cached), which is wire-compatible with confluent's
AvroSerializer / AvroDeserializer but several times faster (see `bench/codec.py`).

Segment events map to the input schemas (`schemas/clickstream.avsc` ...) like this: string members
go to their field; free-form objects (properties, traits, context, integrations) travel as JSON
text; every other top-level member, and any member whose value does not fit its field (an
explicit null, a numeric userId, a `properties` that is not an object) goes into the `extra`
JSON object. Decoding reverses it, so any Segment JSON object round-trips exactly.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import fastavro
import orjson

from schemas import INPUT_SCHEMA_TOPICS, base_topic, json_fields, load_schema, schema_text
from streams.engine import jsonbytes

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

Record = dict[str, Any]

MAGIC = 0
_MAGIC_BYTE = b"\x00"
_HEADER = struct.Struct(">bI")

_STRING_FIELDS = (
    "type",
    "event",
    "name",
    "userId",
    "anonymousId",
    "previousId",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "receivedAt",
    "sentAt",
)
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_KNOWN = frozenset(_STRING_FIELDS + _OBJECT_FIELDS)


class CodecError(ValueError):
    """A value that cannot be encoded or decoded; `str(err)` is the reason (for dead letters)."""


class Codec(Protocol):
    """Encodes the values we write and decodes the values we read."""

    name: str

    def encode(self, topic: str, value: Mapping[str, Any]) -> bytes:
        """Serialize one record of `topic`."""
        ...

    def decode(self, topic: str, data: bytes) -> Record:
        """Deserialize one record of `topic` (JSON or Confluent Avro, sniffed)."""
        ...

    def decode_input(self, data: bytes) -> Record:
        """Deserialize one Segment event of an input topic into its JSON object."""
        ...


def is_confluent_avro(data: bytes) -> bool:
    """True when `data` starts with the Confluent wire-format magic byte (JSON never does)."""
    return data[:1] == _MAGIC_BYTE


def _loads_object(data: bytes) -> Record:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"invalid JSON: {exc}") from None
    if type(obj) is not dict:
        raise CodecError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


# Segment event <-> input record ------------------------------------------------------------------


def event_to_record(event: Mapping[str, Any]) -> Record:
    """A Segment JSON object -> a record of the input schemas (see the module doc)."""
    rec: Record = {}
    extra: Record | None = None
    for key, value in event.items():
        if key in _KNOWN:
            if type(value) is str and key in _STRING_FIELDS:
                rec[key] = value
                continue
            if type(value) is dict and key in _OBJECT_FIELDS:
                rec[key] = orjson.dumps(value).decode()
                continue
        if extra is None:
            extra = {}
        extra[key] = value
    if extra is not None:
        rec["extra"] = orjson.dumps(extra).decode()
    return rec


def record_to_event(rec: Mapping[str, Any], json_names: tuple[str, ...]) -> Record:
    """An input record (as fastavro decodes it) -> the Segment JSON object it was made from."""
    event: Record = {}
    for key, value in rec.items():
        if value is None:
            continue
        if key in json_names:
            if key == "extra":
                continue
            event[key] = orjson.loads(value)
        else:
            event[key] = value
    extra = rec.get("extra")
    if extra is not None:
        event.update(orjson.loads(extra))
    return event


# JSON --------------------------------------------------------------------------------------------


class JsonCodec:
    """Plain JSON values (orjson). Decoding refuses Confluent Avro: no registry to resolve it."""

    name = "json"

    def encode(self, topic: str, value: Mapping[str, Any]) -> bytes:
        try:
            return jsonbytes.dumps(value)
        except TypeError as exc:
            raise CodecError(f"{topic}: cannot encode as JSON: {exc}") from None

    def decode(self, topic: str, data: bytes) -> Record:
        if data[:1] == _MAGIC_BYTE:
            raise CodecError(
                f"{topic}: Confluent Avro record but no schema registry configured"
            )
        return _loads_object(data)

    def decode_input(self, data: bytes) -> Record:
        return self.decode("input", data)


# Avro (Confluent wire format) --------------------------------------------------------------------


class _Writer:
    __slots__ = ("header", "input", "schema")

    def __init__(self, schema: Record, schema_id: int, is_input: bool) -> None:
        self.schema = schema
        self.header = _HEADER.pack(MAGIC, schema_id)
        self.input = is_input


class _Reader:
    __slots__ = ("json_names", "schema")

    def __init__(self, schema: Record) -> None:
        self.schema = schema
        self.json_names = json_fields(schema)


class AvroCodec:
    """Avro values in the Confluent wire format, schemas registered under `<topic>-value`.

    `registry` is a Schema Registry URL (`mock://...` gives an in-process mock) or a ready
    `SchemaRegistryClient`. Decoding also accepts plain JSON, so it reads mixed topics.
    """

    name = "avro"

    def __init__(self, registry: str | SchemaRegistryClient) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        if isinstance(registry, str):
            self.client: SchemaRegistryClient = SchemaRegistryClient.new_client({"url": registry})
        else:
            self.client = registry
        self._writers: dict[str, _Writer] = {}
        self._readers: dict[int, _Reader] = {}
        self._lock = threading.Lock()

    # ids and schemas
    def _writer(self, topic: str) -> _Writer:
        w = self._writers.get(topic)
        if w is None:
            from confluent_kafka.schema_registry import Schema

            base = base_topic(topic)
            sid = self.client.register_schema(f"{topic}-value", Schema(schema_text(base), "AVRO"))
            w = _Writer(load_schema(base), sid, base in INPUT_SCHEMA_TOPICS)
            self._writers[topic] = w
        return w

    def _reader(self, schema_id: int) -> _Reader:
        r = self._readers.get(schema_id)
        if r is None:
            with self._lock:
                try:
                    text = self.client.get_schema(schema_id).schema_str
                except Exception as exc:  # SchemaRegistryError, network errors
                    raise CodecError(f"unknown schema id {schema_id}: {exc}") from None
                assert text is not None
                parsed = fastavro.parse_schema(orjson.loads(text))
                if not isinstance(parsed, dict):
                    raise CodecError(f"schema {schema_id} is not an Avro record schema")
                r = _Reader(parsed)
                self._readers[schema_id] = r
        return r

    def register(self, topic: str) -> int:
        """Register (or look up) the schema of `topic`; return its id."""
        return int(_HEADER.unpack(self._writer(topic).header)[1])

    # encode / decode
    def encode(self, topic: str, value: Mapping[str, Any]) -> bytes:
        w = self._writer(topic)
        buf = io.BytesIO(w.header)
        buf.seek(5)
        try:
            fastavro.schemaless_writer(buf, w.schema, event_to_record(value) if w.input else value)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CodecError(f"{topic}: record does not fit the Avro schema: {exc}") from None
        return buf.getvalue()

    def _decode_avro(self, data: bytes) -> tuple[Record, _Reader]:
        if len(data) < 5:
            raise CodecError("truncated Confluent Avro record")
        r = self._reader(_HEADER.unpack_from(data)[1])
        buf = io.BytesIO(data)
        buf.seek(5)
        try:
            rec = fastavro.schemaless_reader(buf, r.schema, None)
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise CodecError(f"corrupt Avro record: {exc!r}") from None
        if type(rec) is not dict:
            raise CodecError(f"Avro value is a {type(rec).__name__}, not a record")
        return rec, r

    def decode(self, topic: str, data: bytes) -> Record:
        if data[:1] != _MAGIC_BYTE:
            return _loads_object(data)
        rec, r = self._decode_avro(data)
        if r.json_names:
            return self._input_event(rec, r)
        return rec

    def decode_input(self, data: bytes) -> Record:
        if data[:1] != _MAGIC_BYTE:
            return _loads_object(data)
        rec, r = self._decode_avro(data)
        return self._input_event(rec, r)

    @staticmethod
    def _input_event(rec: Record, r: _Reader) -> Record:
        try:
            return record_to_event(rec, r.json_names)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"invalid JSON inside an Avro field: {exc}") from None


__all__ = [
    "AvroCodec",
    "Codec",
    "CodecError",
    "JsonCodec",
    "event_to_record",
    "is_confluent_avro",
    "record_to_event",
]
