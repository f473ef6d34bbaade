"""Kafka I/O of the live shell: topic names, value encoding, a batching confluent producer.

Everything we produce ourselves goes through confluent-kafka (librdkafka): the outputs of the
engine, the forwards and the table changelog. Faust (aiokafka) only consumes.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from connectors.topics import CLICKSTREAM, IDENTITIES, PURCHASES

_codec: ModuleType | None
try:
    _codec = importlib.import_module("streams.codec")
except ImportError:  # pragma: no cover - the codec ships with the package
    _codec = None

#: Prefix put before every topic name (tests isolate themselves on one shared broker with it).
PREFIX_ENV = "MICROMARKETING_TOPIC_PREFIX"

#: Track events that travel on the purchases topic; identify and alias go to identities.
PURCHASE_EVENTS = frozenset(
    {"Order Completed", "Order Refunded", "Order Cancelled", "Checkout Started"}
)


def topic_name(base: str, prefix: str | None = None) -> str:
    """The real name of topic `base`: `MICROMARKETING_TOPIC_PREFIX` + base."""
    return (os.environ.get(PREFIX_ENV, "") if prefix is None else prefix) + base


def encode_value(topic: str, value: dict[str, Any]) -> bytes:
    """Serialize one output record of `topic` (base name): `streams.codec` (JSON, or Avro when a
    Schema Registry is configured) if present, else plain JSON."""
    if _codec is not None:
        return bytes(_codec.encode_value(topic, value))
    return orjson.dumps(value)


def decode_input(data: bytes) -> bytes | dict[str, Any]:
    """An input value for the engine: JSON bytes as they are (the engine parses them), Confluent
    Avro decoded to a dict by `streams.codec`."""
    if _codec is not None and data[:1] == b"\x00":
        return dict(_codec.decode_input(data))
    return data


def input_topic_for(event: dict[str, Any]) -> str:
    """Base input topic of a Segment event: identities, purchases or clickstream."""
    etype = event.get("type")
    if etype in ("identify", "alias"):
        return IDENTITIES
    if etype == "track" and event.get("event") in PURCHASE_EVENTS:
        return PURCHASES
    return CLICKSTREAM


def event_key(event: dict[str, Any]) -> str:
    """Kafka key of a Segment event: the consumer id (userId, else anonymousId)."""
    return str(event.get("userId") or event.get("anonymousId") or "")


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for our producers: Java-compatible key partitioning, big batches."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        "compression.type": "none",
        "enable.idempotence": False,
        "log.connection.close": False,
    }
    conf.update(extra)
    return conf


class DeliveryError(RuntimeError):
    """A record could not be delivered; the batch is not committed."""


class BatchProducer:
    """A confluent producer that the asyncio loop flushes once per batch.

    `produce()` never blocks on the network; `flush()` waits (in a thread) until every record
    is acknowledged and raises DeliveryError if one was not. The highest delivered offset per
    (topic, partition) of tracked topics is kept in `offsets` (the changelog uses it).
    """

    def __init__(self, bootstrap: str, *, track: Iterable[str] = (), **extra: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, **extra))
        self._track = set(track)
        self.offsets: dict[tuple[str, int], int] = {}
        self._errors: list[str] = []
        self.produced = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")
            return
        topic, partition = msg.topic(), msg.partition()
        if topic in self._track and topic is not None and partition is not None:
            tp = (topic, partition)
            off = msg.offset()
            if off is not None and off > self.offsets.get(tp, -1):
                self.offsets[tp] = off

    def produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record (retrying while librdkafka's queue is full)."""
        kwargs: dict[str, Any] = {"on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)
        self.produced += 1
        if self.produced % 10000 == 0:
            self._producer.poll(0)

    def poll(self) -> None:
        """Serve delivery callbacks without waiting."""
        self._producer.poll(0)

    def flush_blocking(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raise DeliveryError otherwise."""
        left = self._producer.flush(timeout)
        if left:
            raise DeliveryError(f"{left} records not delivered after {timeout}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryError("; ".join(errors[:5]))

    async def flush(self, timeout: float = 30.0) -> None:
        """`flush_blocking` in a thread, so the event loop (heartbeats, fetches) goes on."""
        if len(self._producer) == 0 and not self._errors:
            self._producer.poll(0)
            return
        await asyncio.to_thread(self.flush_blocking, timeout)


def produce_events(
    producer: BatchProducer, events: Iterable[dict[str, Any]], prefix: str | None = None
) -> int:
    """Queue Segment events on their input topics, keyed by consumer id, Kafka timestamp =
    event time when it parses (so the worker can merge the three topics in time order)."""
    from streams.engine.events import parse_event

    n = 0
    for ev in events:
        ts_ms: int | None
        try:
            ts_ms = int(parse_event(ev).timestamp * 1000)
        except Exception:
            ts_ms = None
        producer.produce(
            topic_name(input_topic_for(ev), prefix),
            event_key(ev),
            orjson.dumps(ev),
            timestamp_ms=ts_ms,
        )
        n += 1
    return n
