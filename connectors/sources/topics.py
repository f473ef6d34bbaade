"""`micromarketing replay --from-topics`: the file replay's engine over a time range of the topics.

What is read
    Every partition of the input topics (`clickstream`, `purchases`, `identities`, each name
    prefixed with `MICROMARKETING_TOPIC_PREFIX`, the variable the live worker reads too), from
    the first record stamped at or after `--since` up to `--until` (exclusive). The range is
    about the **Kafka record timestamp** (CreateTime as the producer set it, or LogAppendTime if
    the topic says so), because that is what the broker's time index, `offsets_for_times`, knows.
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
    Events are applied in **event time**: all partitions of the three topics are merged on the
    event's own time (`timestamp`, else `originalTimestamp`, else `receivedAt`, as the engine
    reads it); a record whose value does not decode or carries no valid time sorts by its Kafka
    timestamp. Ties are broken by (Kafka timestamp, topic, partition, offset), so the order is
    deterministic. The merge is a k-way merge (`heapq.merge`) over one iterator per partition,
    so memory stays bounded: at most `buffer_high` decoded records are buffered per partition
    (the partition is paused above it). Within a partition records keep their offset order,
    exactly as a live worker sees them: a late event in a partition is applied at its place in
    the log, just as the file replay applies an unsorted file in file order.

Values
    Plain JSON and Confluent-framed Avro (`streams.codec.decode_input`; Avro needs
    `MICROMARKETING_SCHEMA_REGISTRY`). A value that does not decode is handed to the engine as
    its raw bytes, and the engine writes it as a dead letter with its reason; it is never fatal.

Outputs are the file replay's: the same JSON-lines files and report, with `since`, `until` and
`topics` added to the report. Dead letters name their origin as source `topic` and offset
`"{topic}:{partition}:{offset}"` (base topic name, as the live worker writes it).
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from connectors.topics import INPUT_TOPICS
from streams.codec import CodecError, decode_input
from streams.engine.events import EventError, iso, parse_time
from streams.engine.rules import RuleSet
from streams.replay import OutputFiles, replay, write_report
from streams.runtime import DEFAULT_PARTITIONS, Runtime

log = logging.getLogger(__name__)

#: Prefix put before every input topic name (the live worker reads the same variable).
PREFIX_ENV = "MICROMARKETING_TOPIC_PREFIX"
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
    """The topics cannot be replayed (bad range, no broker, no topic); the message says why."""


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

    @property
    def where(self) -> str:
        """`topic:partition:offset`, with the base topic name (as the live worker writes it)."""
        return f"{self.base_topic}:{self.key.partition}:{self.key.offset}"


def topic_names(prefix: str | None = None) -> dict[str, str]:
    """Real input topic name -> base name; `prefix` defaults to `$MICROMARKETING_TOPIC_PREFIX`."""
    pre = os.environ.get(PREFIX_ENV, "") if prefix is None else prefix
    return {pre + base: base for base in INPUT_TOPICS}


def event_time(obj: dict[str, Any]) -> float | None:
    """The event's time as the engine reads it (epoch seconds), or None when it has none valid."""
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


def decode_record(
    topic: str, base: str, partition: int, offset: int, kafka_ms: int, data: bytes | None
) -> TopicRecord:
    """Decode one value and give it its place in the merge (raw bytes if it does not decode)."""
    raw = data or b""
    value: bytes | dict[str, Any]
    t: float | None = None
    try:
        value = decode_input(raw)
    except CodecError:
        value = raw
    else:
        t = event_time(value)
    key = SortKey(kafka_ms / 1000.0 if t is None else t, kafka_ms, topic, partition, offset)
    return TopicRecord(key, base, value)


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
    topics = topic_names() if topics is None else topics
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


def _time_range(args: argparse.Namespace) -> tuple[float, float]:
    since_text, until_text = getattr(args, "since", None), getattr(args, "until", None)
    if not since_text or not until_text:
        raise TopicReplayError("replay --from-topics needs both --since and --until (ISO-8601)")
    try:
        since = parse_time(since_text, "--since")
        until = parse_time(until_text, "--until")
    except EventError as exc:
        raise TopicReplayError(str(exc)) from None
    if since >= until:
        raise TopicReplayError(
            f"--since ({iso(since)}) must be before --until ({iso(until)})"
        )
    return since, until


def _counted(records: Iterable[TopicRecord], progress: Any) -> Iterator[tuple[str, Any]]:
    for rec in records:
        if progress is not None:
            progress.update(1)
        yield rec.where, rec.value


def _router_partitions(args: argparse.Namespace, counts: dict[str, int]) -> int:
    """`--partitions`, else the input topics' partition count, else the default."""
    if args.partitions:
        return int(args.partitions)
    distinct = set(counts.values())
    if len(distinct) == 1:
        return distinct.pop()
    if distinct:
        log.warning(
            "input topics are not co-partitioned (%s); using %d engine partitions",
            counts, DEFAULT_PARTITIONS,
        )
    return DEFAULT_PARTITIONS


def replay_topics(
    args: argparse.Namespace, rules: RuleSet, out_dir: Path, close_at: float | None
) -> int:
    """Run the engine over [--since, --until) of the input topics; return the exit code."""
    try:
        if getattr(args, "events", None):
            raise TopicReplayError("replay takes EVENTS.jsonl or --from-topics, not both")
        since, until = _time_range(args)
        if not getattr(args, "broker", None):
            raise TopicReplayError(
                "replay --from-topics needs --broker HOST:PORT (an embedded broker would be "
                "empty)"
            )
        topics = topic_names()
        records, counts = read_range(
            args.broker, since, until, topics, verbose=bool(getattr(args, "verbose", False))
        )
    except TopicReplayError as exc:
        print(f"micromarketing replay: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(f"micromarketing replay: broker {args.broker}: {exc}", file=sys.stderr)
        return 2
    router = Runtime(rules, _router_partitions(args, counts))
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit="ev", desc="replay", file=sys.stderr)
    try:
        with OutputFiles(out_dir) as files:
            report = replay(_counted(records, progress), router, files, "topic", close_at)
    except KafkaException as exc:
        print(f"micromarketing replay: reading the topics failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.close()
    report["since"] = iso(since)
    report["until"] = iso(until)
    report["topics"] = list(topics)
    write_report(out_dir, report)
    t = report["timing"]
    print(
        f"replayed {report['input_lines']} records of {', '.join(topics)} from {iso(since)} to "
        f"{iso(until)} in {t['seconds']}s: {sum(report['triggers'].values())} triggers, "
        f"{sum(report['suppressed'].values())} suppressed, {report['dead_letters']} dead "
        f"letters -> {out_dir}",
        file=sys.stderr,
    )
    return 0


__all__ = [
    "IDLE_TIMEOUT",
    "PREFIX_ENV",
    "RangeReader",
    "SortKey",
    "TopicRecord",
    "TopicReplayError",
    "read_range",
    "replay_topics",
    "topic_names",
]
