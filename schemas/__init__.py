"""Avro schemas of the values of our Kafka topics (`*.avsc`, namespace `micromarketing.v1`).

The files ship as package data and are read through `importlib.resources`, so this works from an
installed wheel too. Topic names may carry a prefix (tests isolate themselves with one): a topic
maps to the schema of the longest known topic name it ends with.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

import fastavro
import orjson

from streams.engine.topics import (
    CLICKSTREAM,
    CONVERSIONS,
    DEAD_LETTERS,
    IDENTITIES,
    INPUT_TOPICS,
    PROFILES,
    PURCHASES,
    SEGMENT_CHANGES,
    SUPPRESSED,
    TRIGGERS_RETARGETING,
    TRIGGERS_WINBACK,
)

#: Topic name -> schema file in this package.
SCHEMA_FILES: dict[str, str] = {
    CLICKSTREAM: "clickstream.avsc",
    PURCHASES: "purchases.avsc",
    IDENTITIES: "identities.avsc",
    SEGMENT_CHANGES: "segment-changes.avsc",
    TRIGGERS_RETARGETING: "triggers.avsc",
    TRIGGERS_WINBACK: "triggers.avsc",
    SUPPRESSED: "suppressed.avsc",
    DEAD_LETTERS: "dead-letters.avsc",
    PROFILES: "profiles.avsc",
    CONVERSIONS: "conversions.avsc",
}

#: Input topics: their values are Segment events with free-form members carried as JSON text.
INPUT_SCHEMA_TOPICS = frozenset(INPUT_TOPICS)

#: Custom field attribute marking a string field that holds a JSON document.
JSON_ATTR = "x-json"

_BY_LENGTH = sorted(SCHEMA_FILES, key=len, reverse=True)


def base_topic(topic: str) -> str:
    """The known topic name `topic` stands for (exact, or the longest known suffix)."""
    if topic in SCHEMA_FILES:
        return topic
    for name in _BY_LENGTH:
        if topic.endswith(name):
            return name
    raise KeyError(f"no Avro schema for topic {topic!r}; known: {sorted(SCHEMA_FILES)}")


@functools.cache
def _file_text(filename: str) -> str:
    return files(__name__).joinpath(filename).read_text(encoding="utf-8")


def schema_text(topic: str) -> str:
    """The schema of `topic` as compact JSON text (what gets registered in a Schema Registry)."""
    return orjson.dumps(orjson.loads(_file_text(SCHEMA_FILES[base_topic(topic)]))).decode()


@functools.cache
def _parsed(filename: str) -> dict[str, Any]:
    parsed = fastavro.parse_schema(orjson.loads(_file_text(filename)))
    assert isinstance(parsed, dict)
    return parsed


def load_schema(topic: str) -> dict[str, Any]:
    """The parsed (fastavro) schema of the values of `topic`; shared, do not mutate."""
    return _parsed(SCHEMA_FILES[base_topic(topic)])


def json_fields(schema: dict[str, Any]) -> tuple[str, ...]:
    """Names of the fields of a record schema that carry JSON text (marked `x-json`)."""
    return tuple(f["name"] for f in schema.get("fields", ()) if f.get(JSON_ATTR))
