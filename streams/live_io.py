"""Kafka I/O of the live shell: a batching confluent producer (names and codec: `streams.contract`).

Everything we produce ourselves goes through confluent-kafka (librdkafka): the outputs of the
engine, the forwards and the table changelog. Faust (aiokafka) only consumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from streams.contract import input_topic, record_key, record_timestamp_ms, topic_name


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
    """Queue Segment events on their input topics as the collector does (`streams.contract`:
    topic, key, Kafka timestamp = event time when it has one)."""
    n = 0
    for ev in events:
        producer.produce(
            topic_name(input_topic(ev), prefix),
            record_key(ev),
            orjson.dumps(ev),
            timestamp_ms=record_timestamp_ms(ev),
        )
        n += 1
    return n
