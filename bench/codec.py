"""Codec benchmark: encode + decode of realistic Segment events and trigger records.

    .venv/bin/python bench/codec.py [--n N]

Compares stdlib json, orjson, fastavro schemaless, the `avro` package, confluent's
AvroSerializer / AvroDeserializer and our `streams.codec.AvroCodec` (fastavro + Confluent framing
done by hand), and prints ops/s (one op = one encode + one decode) and the ratio to stdlib json
measured in the same run. Avro of an input event includes the Segment <-> record mapping (JSON
text for the free-form members), as the product does it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import avro.io
import avro.schema
import fastavro
import orjson

from schemas import INPUT_SCHEMA_TOPICS, load_schema, schema_text
from streams.codec import AvroCodec, event_to_record, record_to_event

Record = dict[str, Any]

CONTEXT: Record = {
    "ip": "203.0.113.7",
    "locale": "fr-FR",
    "timezone": "Europe/Paris",
    "library": {"name": "analytics.js", "version": "4.1.0"},
    "page": {
        "path": "/bikes/road/aero-2000",
        "referrer": "https://www.google.com/",
        "title": "Aero 2000 road bike",
        "url": "https://shop.example.com/bikes/road/aero-2000",
    },
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "location": {"country": "FR", "city": "Lyon", "latitude": 45.764, "longitude": 4.8357},
    "campaign": {"name": "spring-sale", "source": "newsletter", "medium": "email"},
    "consent": {"categoryPreferences": {"marketing": True, "analytics": True}},
}

PRODUCT_VIEWED: Record = {
    "type": "track",
    "event": "Product Viewed",
    "userId": "u-1f3a9c",
    "anonymousId": "a-7b2d-4e11-9c0f",
    "messageId": "ajs-next-1714563000123-6a1e2f",
    "timestamp": "2024-05-01T11:30:00.123Z",
    "sentAt": "2024-05-01T11:30:00.200Z",
    "receivedAt": "2024-05-01T11:30:00.321Z",
    "properties": {
        "product_id": "sku-aero-2000",
        "category": "road",
        "brand": "Velociraptor",
        "price": 1899.0,
        "currency": "EUR",
        "name": "Aero 2000",
        "variant": "54cm red",
    },
    "context": CONTEXT,
    "integrations": {"All": True},
}

ORDER_COMPLETED: Record = {
    "type": "track",
    "event": "Order Completed",
    "userId": "u-1f3a9c",
    "messageId": "ajs-next-1714563400555-91bc00",
    "timestamp": "2024-05-01T11:36:40.555Z",
    "properties": {
        "order_id": "o-50314",
        "revenue": 2034.5,
        "discount": 100.0,
        "coupon": "SPRING10",
        "currency": "EUR",
        "products": [
            {"product_id": "sku-aero-2000", "category": "road", "price": 1899.0, "quantity": 1},
            {"product_id": "sku-bottle-750", "category": "bottles", "price": 9.5, "quantity": 2},
            {"product_id": "sku-helmet-m", "category": "helmets", "price": 126.5, "quantity": 1},
        ],
    },
    "context": CONTEXT,
}

TRIGGER: Record = {
    "trigger_id": "tr-3f9a1c0b7e2d4a55",
    "kind": "retargeting",
    "campaign": "cart-abandonment",
    "consumer_id": "u-1f3a9c",
    "fired_at": "2024-05-01T12:06:40.555Z",
    "due_at": "2024-05-01T12:06:40.555Z",
    "offer": "free-shipping",
    "products": ["sku-aero-2000", "sku-helmet-m"],
    "segments": ["road-amateur-women", "champions"],
    "holdout": False,
    "rules_version": "3c2b1a",
}

CASES: list[tuple[str, str, Record]] = [
    ("Product Viewed", "clickstream", PRODUCT_VIEWED),
    ("Order Completed", "purchases", ORDER_COMPLETED),
    ("trigger", "triggers.retargeting", TRIGGER),
]

RoundTrip = Callable[[Record], Record]


def _stdlib(topic: str) -> RoundTrip:
    return lambda r: json.loads(json.dumps(r).encode())


def _orjson(topic: str) -> RoundTrip:
    return lambda r: orjson.loads(orjson.dumps(r))


def _fastavro(topic: str) -> RoundTrip:
    schema = load_schema(topic)
    is_input = topic in INPUT_SCHEMA_TOPICS
    names = ("properties", "traits", "context", "integrations", "extra")

    def rt(r: Record) -> Record:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, event_to_record(r) if is_input else r)
        buf.seek(0)
        rec = fastavro.schemaless_reader(buf, schema, None)
        assert isinstance(rec, dict)
        return record_to_event(rec, names) if is_input else rec

    return rt


def _avro_pkg(topic: str) -> RoundTrip:
    schema = avro.schema.parse(schema_text(topic))
    writer, reader = avro.io.DatumWriter(schema), avro.io.DatumReader(schema)
    is_input = topic in INPUT_SCHEMA_TOPICS
    names = ("properties", "traits", "context", "integrations", "extra")
    fields = [f.name for f in schema.fields]  # type: ignore[attr-defined]

    def rt(r: Record) -> Record:
        rec = event_to_record(r) if is_input else r
        rec = {name: rec.get(name) for name in fields}  # the avro package wants every field
        buf = io.BytesIO()
        writer.write(rec, avro.io.BinaryEncoder(buf))
        buf.seek(0)
        out = reader.read(avro.io.BinaryDecoder(buf))
        assert isinstance(out, dict)
        return record_to_event(out, names) if is_input else out

    return rt


def _confluent(topic: str) -> RoundTrip:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient.new_client({"url": "mock://bench"})
    is_input = topic in INPUT_SCHEMA_TOPICS
    names = ("properties", "traits", "context", "integrations", "extra")
    ser = AvroSerializer(
        client,
        schema_text(topic),
        to_dict=(lambda o, c: event_to_record(o)) if is_input else None,
    )
    de = AvroDeserializer(
        client, from_dict=(lambda d, c: record_to_event(d, names)) if is_input else None
    )
    ctx = SerializationContext(topic, MessageField.VALUE)
    return lambda r: de(ser(r, ctx), ctx)


def _ours(topic: str) -> RoundTrip:
    codec = AvroCodec("mock://bench-ours")
    return lambda r: codec.decode(topic, codec.encode(topic, r))


CODECS: list[tuple[str, Callable[[str], RoundTrip], int]] = [
    # name, factory, share of N to run (slow codecs run fewer ops; rates are per second anyway)
    ("stdlib json", _stdlib, 1),
    ("orjson", _orjson, 1),
    ("fastavro schemaless", _fastavro, 1),
    ("AvroCodec (ours)", _ours, 1),
    ("confluent AvroSerde", _confluent, 4),
    ("avro package", _avro_pkg, 10),
]


def measure(rt: RoundTrip, record: Record, n: int) -> float:
    """Round trips per second over `n` ops (after a short warm-up)."""
    assert rt(record) == record, "codec does not round-trip the record"
    for _ in range(min(200, n)):
        rt(record)
    t0 = time.perf_counter()
    for _ in range(n):
        rt(record)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=20000, help="round trips per codec and record")
    args = ap.parse_args(argv)
    print(f"{'record':<16} {'codec':<22} {'ops/s':>10} {'vs json':>8} {'bytes':>6}")
    for label, topic, record in CASES:
        base = 0.0
        for name, factory, share in CODECS:
            rt = factory(topic)
            rate = measure(rt, record, max(1, args.n // share))
            base = base or rate
            size = _size(name, topic, record)
            print(f"{label:<16} {name:<22} {rate:>10,.0f} {rate / base:>7.2f}x {size:>6}")
        print()
    return 0


def _size(name: str, topic: str, record: Record) -> int:
    if name == "stdlib json":
        return len(json.dumps(record).encode())
    if name == "orjson":
        return len(orjson.dumps(record))
    return len(AvroCodec("mock://size").encode(topic, record))


if __name__ == "__main__":
    sys.exit(main())
