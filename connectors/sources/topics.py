"""A time range of the input topics, read as one stream in event-time order.

This is a reader and nothing else: `streams.replay_topics` (`micromarketing replay
--from-topics`) feeds what it yields to the same replay loop as the file replay.

What is read
    Every partition of the input topics (`clickstream`, `purchases`, `identities`, named by
    `streams.contract`, under `MICROMARKETING_TOPIC_PREFIX` as the live worker reads them), from
    the first record stamped at or after `since` up to `until` (exclusive). The range is
    about the **Kafka record timestamp** (CreateTime as the producer set it, or LogAppendTime if
    the topic says so), because that is what the broker's time index, `offsets_for_times`, knows;
    the contract's producers stamp a record with its event time rounded up to the millisecond,
    so the range holds exactly the events whose time is in it.
    A partition's start offset comes from `Consumer.offsets_for_times`; its records are then read
    with `assign()` (no consumer group, no commits, so running workers are never disturbed).
    Records stamped before `since` are skipped (out-of-order records, or a start offset that is
    only a lower bound: Tansu answers the beginning of the log); a partition is finished at its
    first record stamped at or after `until`, or at its end, like the time index itself: a
    record stamped before `until` but written after one stamped at or after it (late data, or a
    producer with a skewed clock) is not read. Records with no timestamp at all (pre-0.10
    message format) are skipped.

Finding the end of a partition
    The embedded Tansu broker reports wrong end offsets (ListOffsets, and so
    `get_watermark_offsets`) after multi-record batches, so high watermarks are never used to
    decide that a partition is finished. The consumer runs with `enable.partition.eof` and a
    partition ends at its EOF event (which follows the fetch position and is right on Tansu);
    as a fallback, a partition from which nothing (no record, no EOF) arrives for
    `idle_timeout` seconds while the merge waits on it is considered finished, with a warning.

Order
    Records come in **event time**: all partitions of the three topics are merged on the
    event's own time (`streams.contract.event_time`); a record whose value does not decode or
    carries no valid time sorts by its Kafka timestamp. Ties are broken by (Kafka timestamp,
    topic, partition, offset), so the order is deterministic. The merge is a k-way merge
    (`heapq.merge`) over one iterator per partition, so memory stays bounded: at most
    `buffer_high` decoded records are buffered per partition (the partition is paused above
    it). Within a partition records keep their offset order, exactly as a live worker sees
    them: a late event in a partition is applied at its place in the log, just as the file
    replay applies an unsorted file in file order.

Values
    Plain JSON and Confluent-framed Avro (the contract's codec; Avro needs
    `MICROMARKETING_SCHEMA_REGISTRY`). A JSON value that is not a valid event is yielded as its
    raw bytes (the engine says what is wrong, as live); an Avro value that does not decode is
    yielded with its `error` (its dead letter is `streams.contract.undecodable`, as live).
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connectors.broker import BrokerError, wait_for_bootstrap
from streams.contract import (
    CodecError,
    codec,
    event_time,
    input_topic_names,
    is_confluent_avro,
    to_ms_ceil,
    where,
)
from streams.engine.events import iso

log = logging.getLogger(__name__)

#: Seconds without a record or EOF from a partition the merge waits on before giving up on it.
IDLE_TIMEOUT = 10.0
#: Decoded records buffered per partition before it is paused, and the level it resumes at.
BUFFER_HIGH = 5000
BUFFER_LOW = 1000
METADATA_TIMEOUT = 10.0
CONNECT_TIMEOUT = 4.0
_BATCH = 1000
_POLL = 0.2

PartitionKey = tuple[str, int]


class TopicReplayError(RuntimeError):
    """The topics cannot be read (no broker, no topic); the message says why."""


class SortKey(NamedTuple):
    """Where a record goes in the merged stream: event time first, then the tie-breakers."""

    time: float  # event time in epoch seconds, else the Kafka timestamp
    kafka_ms: int
    topic: str
    partition: int
    offset: int


class TopicRecord(NamedTuple):
    """One input record in range: its sort key and its value (decoded, or raw bytes if not)."""

    key: SortKey
    base_topic: str
    value: bytes | dict[str, Any]
    #: why an Avro value does not decode (then `value` is its raw bytes), else None
    error: CodecError | None = None

    @property
    def where(self) -> str:
        """`topic:partition:offset`, with the base topic name (as the live worker writes it)."""
        return where(self.base_topic, self.key.partition, self.key.offset)


def decode_record(
    topic: str, base: str, partition: int, offset: int, kafka_ms: int, data: bytes | None
) -> TopicRecord:
    """Decode one value and give it its place in the merge (raw bytes if it does not decode)."""
    raw = data or b""
    value: bytes | dict[str, Any] = raw
    error: CodecError | None = None
    t: float | None = None
    try:
        decoded = codec().decode_input(raw)
    except CodecError as exc:
        if is_confluent_avro(raw):
            error = exc
    else:
        value = decoded
        t = event_time(decoded)
    key = SortKey(kafka_ms / 1000.0 if t is None else t, kafka_ms, topic, partition, offset)
    return TopicRecord(key, base, value, error)


@dataclass
class _Partition:
    """Read state of one assigned partition."""

    tp: TopicPartition
    base: str
    next_offset: int
    buffer: deque[TopicRecord] = field(default_factory=deque)
    done: bool = False
    paused: bool = False


class RangeReader:
    """Reads [since_ms, until_ms) of partitions through one assign()-ed consumer.

    `partition_iterators()` gives one iterator per partition, in offset order, for a k-way merge;
    they share the consumer, which fetches for every partition still open and not paused.
    """

    def __init__(
        self,
        consumer: Consumer,
        starts: Sequence[tuple[TopicPartition, str]],
        since_ms: int,
        until_ms: int,
        idle_timeout: float = IDLE_TIMEOUT,
        buffer_high: int = BUFFER_HIGH,
        buffer_low: int = BUFFER_LOW,
    ) -> None:
        self.consumer = consumer
        self.since_ms = since_ms
        self.until_ms = until_ms
        self.idle_timeout = idle_timeout
        self.buffer_high = buffer_high
        self.buffer_low = min(buffer_low, buffer_high)
        self.parts: dict[PartitionKey, _Partition] = {
            (tp.topic, tp.partition): _Partition(
                TopicPartition(tp.topic, tp.partition), base, tp.offset
            )
            for tp, base in starts
        }
        self.read = 0
        self.out_of_range = 0
        if starts:
            consumer.assign([tp for tp, _ in starts])

    def partition_iterators(self) -> list[Iterator[TopicRecord]]:
        return [self._records(key) for key in sorted(self.parts)]

    def merged(self) -> Iterator[TopicRecord]:
        """All records in range, merged on their sort key."""
        return heapq.merge(*self.partition_iterators(), key=lambda r: r.key)

    # internals -----------------------------------------------------------------------------

    def _records(self, key: PartitionKey) -> Iterator[TopicRecord]:
        part = self.parts[key]
        buf = part.buffer
        while True:
            if buf:
                rec = buf.popleft()
                if part.paused and not part.done and len(buf) <= self.buffer_low:
                    self.consumer.resume([part.tp])
                    part.paused = False
                yield rec
            elif part.done:
                return
            else:
                self._fill(part)

    def _fill(self, want: _Partition) -> None:
        """Consume until `want` has a record buffered or is finished (EOF, until, idle)."""
        deadline = time.monotonic() + self.idle_timeout
        while not want.buffer and not want.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "%s [%d]: nothing (no record, no EOF) for %.0fs at offset %d; taking it as "
                    "the end of the partition",
                    want.tp.topic, want.tp.partition, self.idle_timeout, want.next_offset,
                )
                self._finish(want)
                return
            for msg in self.consumer.consume(_BATCH, min(_POLL, remaining)):
                self._accept(msg)

    def _accept(self, msg: Message) -> None:
        topic, partition = msg.topic(), msg.partition()
        part = self.parts.get((topic or "", partition if partition is not None else -1))
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if part is not None:
                    self._finish(part)
                return
            if err.fatal() or not err.retriable():
                raise KafkaException(err)
            log.warning("consumer: %s", err)
            return
        if part is None or part.done:
            return
        offset = msg.offset()
        if offset is None or offset < part.next_offset:
            return  # already seen (refetched after a resume)
        part.next_offset = offset + 1
        self.read += 1
        ts_type, ts = msg.timestamp()
        if ts_type == TIMESTAMP_NOT_AVAILABLE or ts < self.since_ms:
            self.out_of_range += 1
            return
        if ts >= self.until_ms:
            self.out_of_range += 1
            self._finish(part)
            return
        part.buffer.append(
            decode_record(topic or "", part.base, part.tp.partition, offset, ts, msg.value())
        )
        if not part.paused and len(part.buffer) >= self.buffer_high:
            self.consumer.pause([part.tp])
            part.paused = True

    def _finish(self, part: _Partition) -> None:
        if part.done:
            return
        part.done = True
        if not part.paused:
            self.consumer.pause([part.tp])
            part.paused = True


def consumer_config(bootstrap: str, verbose: bool = False) -> dict[str, Any]:
    """librdkafka settings: a private group id (never joined: assign() only), no commits, EOFs."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"micromarketing-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        "socket.timeout.ms": 10_000,
    }
    if not verbose:
        conf["log_level"] = 0  # librdkafka's reconnect chatter; errors still reach us as errors
    return conf


def check_reachable(bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise TopicReplayError unless one HOST:PORT of `bootstrap` accepts TCP within `timeout`."""
    try:
        wait_for_bootstrap(bootstrap, timeout)
    except BrokerError as exc:
        raise TopicReplayError(str(exc)) from None


def start_offsets(
    consumer: Consumer,
    topics: dict[str, str],
    since_ms: int,
    timeout: float = METADATA_TIMEOUT,
) -> tuple[list[tuple[TopicPartition, str]], dict[str, int]]:
    """(partition at its start offset, base name) of every partition with records at/after since.

    Also returns the partition count of each topic (missing topics are left out). A partition
    for which the broker knows no record stamped at or after `since` is left out too.
    """
    try:
        md = consumer.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicReplayError(f"cannot read the topic list from the broker: {exc}") from None
    counts: dict[str, int] = {}
    wanted: list[TopicPartition] = []
    for name in topics:
        meta = md.topics.get(name)
        if meta is None or meta.error is not None or not meta.partitions:
            continue
        counts[name] = len(meta.partitions)
        wanted.extend(TopicPartition(name, p, since_ms) for p in sorted(meta.partitions))
    if not wanted:
        return [], counts
    try:
        found = consumer.offsets_for_times(wanted, timeout=timeout)
    except KafkaException as exc:
        raise TopicReplayError(f"offsets for {iso(since_ms / 1000)}: {exc}") from None
    starts: list[tuple[TopicPartition, str]] = []
    for tp in found:
        if tp.error is not None:
            raise TopicReplayError(f"offsets of {tp.topic} [{tp.partition}]: {tp.error}")
        if tp.offset < 0:  # no record stamped at or after `since` (OFFSET_END)
            continue
        starts.append((TopicPartition(tp.topic, tp.partition, tp.offset), topics[tp.topic]))
    return starts, counts


def read_range(
    bootstrap: str,
    since: float,
    until: float,
    topics: dict[str, str] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    buffer_high: int = BUFFER_HIGH,
    buffer_low: int = BUFFER_LOW,
    verbose: bool = False,
) -> tuple[Iterator[TopicRecord], dict[str, int]]:
    """Records of `topics` (real name -> base name) stamped in [since, until), in merge order.

    Returns the iterator (it closes its consumer when exhausted or closed) and the partition
    count of each topic found. Raises TopicReplayError when none of the topics exists.
    """
    topics = input_topic_names() if topics is None else topics
    since_ms, until_ms = to_ms_ceil(since), to_ms_ceil(until)
    check_reachable(bootstrap)
    consumer = Consumer(consumer_config(bootstrap, verbose))
    try:
        starts, counts = start_offsets(consumer, topics, since_ms)
        if not counts:
            raise TopicReplayError(
                f"none of the input topics ({', '.join(topics)}) exists on {bootstrap}"
            )
        missing = [t for t in topics if t not in counts]
        if missing:
            log.warning("topics not found on %s: %s", bootstrap, ", ".join(missing))
        reader = RangeReader(
            consumer, starts, since_ms, until_ms, idle_timeout, buffer_high, buffer_low
        )
    except BaseException:
        consumer.close()
        raise

    def records() -> Iterator[TopicRecord]:
        try:
            yield from reader.merged()
        finally:
            consumer.close()
            log.debug("read %d records, %d outside the range", reader.read, reader.out_of_range)

    return records(), counts


__all__ = [
    "IDLE_TIMEOUT",
    "RangeReader",
    "SortKey",
    "TopicRecord",
    "TopicReplayError",
    "decode_record",
    "read_range",
]
