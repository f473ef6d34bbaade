"""Decoding of the records the deliverer reads (triggers, profiles).

Everything goes through `decode_record`, which reads what the worker writes: JSON, or Confluent
Avro when a Schema Registry is configured (the codec of `streams.contract`). Another `Decoder`
can be passed to the `Deliverer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from streams.contract import CodecError, decode_value

Record = dict[str, Any]
Decoder = Callable[[str, bytes], Record]


class DecodeError(ValueError):
    """A record value that cannot be decoded into a JSON object."""


def decode_record(topic: str, value: bytes) -> Record:
    """Decode the value of a record read from `topic` (JSON object or Confluent Avro record)."""
    try:
        return decode_value(topic, value)
    except CodecError as exc:
        raise DecodeError(f"{topic}: {exc}") from None


def encode_record(record: Record) -> bytes:
    """Encode a record we write (delivery failures) as JSON."""
    return orjson.dumps(record)
