"""One delivery per trigger id: the ids a deliverer group delivered, kept for a window.

The record of truth is the `deliveries` topic. Before a trigger's offset is committed, the
deliverer writes `{trigger_id, group, sink, delivered_at}` to the partition of `deliveries`
with the trigger's own partition number (and key): the trigger topics are keyed by consumer id
and a re-emitted trigger keeps its id, kind and key, so a duplicate always comes back on the
same partition number. When partitions are assigned, the deliverer reads those partitions of
`deliveries` from the start of the window (a timestamp lookup) or from where it stopped
reading them, to their end (partition EOF: the embedded broker's end offsets are not to be
trusted), before it handles any trigger of them. So a trigger id is delivered at most once
per group within the window, across restarts of deliver and of the workers and when
partitions move between the instances of a group; what remains at least once is a crash
between the send and the acknowledged record (see the README's Delivery section).

Nothing here needs compaction: records age out by retention (set `retention.ms` of
`deliveries` to at least the window on Kafka; the embedded broker keeps everything in memory).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 7 * 86400.0


class DedupeError(RuntimeError):
    """The delivery record could not be written or read back: deliver stops rather than risk
    a second email."""


class TriggerDedupe(Protocol):
    """What the delivery loop needs from a dedupe store."""

    def delivered(self, partition: int, trigger_id: str) -> bool:
        """True when `trigger_id` (of trigger partition `partition`) was delivered already."""
        ...

    def record(self, partition: int, key: bytes | None, trigger_id: str) -> None:
        """Remember durably that `trigger_id` was delivered; return once it is stored."""
        ...

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions now owned: know every id delivered on them (by anyone) before returning."""
        ...

    def close(self) -> None: ...


class DeliveredIds:
    """Delivered trigger ids per partition, each forgotten `window` seconds after delivery.

    Pure and in memory: the Kafka-backed store fills it from the deliveries topic; tests can
    use it alone. Ids are kept in arrival order, which is (nearly) delivery-time order, so
    expiry pops from the front.
    """

    def __init__(self, window: float = DEFAULT_WINDOW) -> None:
        if window <= 0:
            raise ValueError(f"dedupe window must be positive, got {window}")
        self.window = window
        self._ids: dict[int, dict[str, float]] = {}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._ids.values())

    def seen(self, partition: int, trigger_id: str, now: float) -> bool:
        """True when `trigger_id` was delivered on `partition` less than `window` ago."""
        at = self._ids.get(partition, {}).get(trigger_id)
        return at is not None and now - at < self.window

    def add(self, partition: int, trigger_id: str, at: float) -> None:
        """Remember a delivery at `at` (epoch seconds); the earliest delivery of an id counts."""
        ids = self._ids.setdefault(partition, {})
        if trigger_id not in ids:
            ids[trigger_id] = at

    def expire(self, now: float) -> int:
        """Forget deliveries older than the window; how many were forgotten."""
        cutoff = now - self.window
        gone = 0
        for ids in self._ids.values():
            while ids:
                oldest = next(iter(ids))
                if ids[oldest] >= cutoff:
                    break
                del ids[oldest]
                gone += 1
        return gone


class MemoryDedupe:
    """A TriggerDedupe without Kafka (one process, not durable): for tests and embedding."""

    def __init__(
        self, window: float = DEFAULT_WINDOW, clock: Callable[[], float] = time.time
    ) -> None:
        self.ids = DeliveredIds(window)
        self._clock = clock

    def delivered(self, partition: int, trigger_id: str) -> bool:
        return self.ids.seen(partition, trigger_id, self._clock())

    def record(self, partition: int, key: bytes | None, trigger_id: str) -> None:
        self.ids.add(partition, trigger_id, self._clock())

    def assign(self, partitions: Iterable[int]) -> None:
        pass

    def close(self) -> None:
        pass


def delivery_value(trigger_id: str, group: str, sink: str, at: float) -> bytes:
    """The value of one deliveries record."""
    return orjson.dumps(
        {"trigger_id": trigger_id, "group": group, "sink": sink, "delivered_at": round(at, 3)}
    )


def parse_delivery(value: bytes | None) -> tuple[str, str, float] | None:
    """(trigger_id, group, delivered_at) of a deliveries record; None when it is not one."""
    if not value:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    tid, group, at = obj.get("trigger_id"), obj.get("group"), obj.get("delivered_at")
    if not isinstance(tid, str) or not isinstance(group, str):
        return None
    if not isinstance(at, int | float) or isinstance(at, bool):
        return None
    return tid, group, float(at)


class KafkaDedupe:
    """TriggerDedupe on the deliveries topic (see the module docstring)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        sink: str = "",
        window: float = DEFAULT_WINDOW,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = topic
        self.group = group
        self.sink = sink
        self.ids = DeliveredIds(window)
        self._timeout = timeout
        self._clock = clock
        self._next: dict[int, int] = {}  # partition -> next deliveries offset to read
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
        )
        self._reader = Consumer(
            {
                "bootstrap.servers": bootstrap,
                # required by librdkafka, never joined: we only assign() and never commit
                "group.id": f"micromarketing-deliveries-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
            }
        )
        self._last_expiry = clock()

    def partition_count(self, topic: str | None = None) -> int:
        """How many partitions `topic` (default: the deliveries topic) has; 0 when missing."""
        topic = topic or self.topic
        meta = self._reader.list_topics(topic, timeout=10).topics.get(topic)
        return 0 if meta is None or meta.error is not None else len(meta.partitions)

    def delivered(self, partition: int, trigger_id: str) -> bool:
        now = self._clock()
        if now - self._last_expiry > 60.0:
            self.ids.expire(now)
            self._last_expiry = now
        return self.ids.seen(partition, trigger_id, now)

    def record(self, partition: int, key: bytes | None, trigger_id: str) -> None:
        now = self._clock()
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        self._producer.produce(
            self.topic,
            value=delivery_value(trigger_id, self.group, self.sink, now),
            key=key,
            partition=partition,
            timestamp=int(now * 1000),
            on_delivery=on_delivery,
        )
        if self._producer.flush(self._timeout) > 0 or errors:
            why = errors[0] if errors else f"no acknowledgement within {self._timeout}s"
            raise DedupeError(f"delivery of {trigger_id} not recorded on {self.topic}: {why}")
        self.ids.add(partition, trigger_id, now)

    def assign(self, partitions: Iterable[int]) -> None:
        """Read the assigned partitions of the deliveries topic to their end."""
        wanted = sorted(set(partitions))
        if not wanted:
            return
        started = time.monotonic()
        read = self._read(wanted)
        log.info(
            "deliveries: %d records of partitions %s read in %.2fs (%d ids in the window)",
            read,
            wanted,
            time.monotonic() - started,
            len(self.ids),
        )

    def _starts(self, partitions: list[int]) -> list[TopicPartition]:
        """Where to read each partition from: where we stopped, else the window's start."""
        known = [
            TopicPartition(self.topic, p, self._next[p]) for p in partitions if p in self._next
        ]
        unknown = [p for p in partitions if p not in self._next]
        if not unknown:
            return known
        since_ms = int((self._clock() - self.ids.window) * 1000)
        try:
            found = self._reader.offsets_for_times(
                [TopicPartition(self.topic, p, since_ms) for p in unknown], timeout=self._timeout
            )
        except Exception as exc:  # KafkaException: unknown topic, timeout
            raise DedupeError(f"cannot look up {self.topic} by time: {exc}") from exc
        # offset -1: nothing at or after the window's start, so nothing to read
        return known + [tp for tp in found if tp.offset >= 0]

    def _read(self, partitions: list[int]) -> int:
        """Read `partitions` to their end; how many records were read."""
        starts = self._starts(partitions)
        if not starts:
            return 0
        read = 0
        pending = {tp.partition for tp in starts}
        self._reader.assign(starts)
        deadline = time.monotonic() + self._timeout
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise DedupeError(
                        f"{self.topic} partitions {sorted(pending)} not read to their end "
                        f"within {self._timeout}s"
                    )
                for msg in self._reader.consume(500, 0.2):
                    read += self._take(msg, pending)
        finally:
            self._reader.unassign()
        return read

    def _take(self, msg: Message, pending: set[int]) -> int:
        """Apply one message of the reader (1 if it was a record, else 0)."""
        partition = msg.partition()
        assert partition is not None
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                pending.discard(partition)
                return 0
            raise DedupeError(f"reading {self.topic}: {err}")
        offset = msg.offset()
        assert offset is not None
        self._next[partition] = offset + 1
        parsed = parse_delivery(msg.value())
        if parsed is None:
            log.warning("skipping a malformed record at %s/%d@%d", self.topic, partition, offset)
            return 1
        trigger_id, group, at = parsed
        if group == self.group:
            self.ids.add(partition, trigger_id, at)
        return 1

    def close(self) -> None:
        self._producer.flush(self._timeout)
        self._reader.close()
