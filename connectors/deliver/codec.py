"""Decoding of the records the deliverer reads (triggers, profiles).

Everything goes through `decode_record`, so a schema-registry / Avro codec can replace it by
passing another `Decoder` to the `Deliverer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

Record = dict[str, Any]
Decoder = Callable[[str, bytes], Record]

_CONFLUENT_MAGIC = 0


class DecodeError(ValueError):
    """A record value that cannot be decoded into a JSON object."""


def decode_record(topic: str, value: bytes) -> Record:
    """Decode the value of a record read from `topic` (plain JSON object today)."""
    if value[:1] == bytes([_CONFLUENT_MAGIC]):
        raise DecodeError(f"{topic}: record is in the Confluent wire format (Avro?); no codec set")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"{topic}: invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"{topic}: expected a JSON object, got {type(obj).__name__}")
    return obj


def encode_record(record: Record) -> bytes:
    """Encode a record we write (delivery failures) as JSON."""
    return orjson.dumps(record)
