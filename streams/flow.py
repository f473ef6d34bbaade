"""The Kafka intake of a live worker, compiled with the engine (`streams.compiled`).

Input records are buffered per topic-partition, released merged by timestamp (Kafka Streams'
stream-time synchronization), applied through the partition runtime (`streams.runtime`, as
replay applies a file), and their outputs queued on the epoch producer; forwards to partitions
another worker owns go to the `forwards` topic (the only place they become bytes).
`streams.agents` (Faust, rebalances, rules) and `streams.checkpoint` (commits) drive it: nothing
here awaits or knows about Faust, apart from holding the Faust event of a forward.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import TopicPartition

from streams.contract import (
    DEAD_LETTERS,
    FORWARDS,
    dead_letter,
    decode_input,
    encode_value,
    undecodable,
    where,
)
from streams.engine.events import INTERNAL_ERROR
from streams.engine.outputs import Outputs, decode_forward, encode_forward
from streams.epochs import EpochProducer
from streams.measure.results import CampaignResults, feed
from streams.runtime import Runtime

log = logging.getLogger(__name__)

_PARTITION_EOF = -191  # librdkafka's KafkaError._PARTITION_EOF
_INF = float("inf")


class Rec:
    """One buffered input or forward record, whichever client read it."""

    __slots__ = ("event", "offset", "partition", "timestamp", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: float,
        value: bytes | None,
        event: Any = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp  # seconds
        self.value = value
        self.event = event  # the Faust event of a forward (acked after commit), else None


class Flow:
    """Buffer, merge and apply the records of the partitions one worker owns (those `runtime`
    holds); `stats` counts records by kind."""

    def __init__(
        self,
        intake: Any,
        producer: EpochProducer,
        runtime: Runtime,
        *,
        prefix: str,
        partitions: int,
        inputs: Sequence[str],
        max_buffered: int,
        batch_max: int,
    ) -> None:
        self.intake = intake  # a confluent-kafka Consumer, assigned to the owned partitions
        self.producer = producer
        self.prefix = prefix
        self.partitions = partitions
        #: real topic name -> base name (what dead letters and stats say)
        self.base_of: dict[str, str] = {prefix + b: b for b in (*inputs, FORWARDS)}
        self.input_topics = [prefix + b for b in inputs]
        self.forwards_topic = prefix + FORWARDS
        self.max_buffered = max_buffered
        self.batch_max = batch_max
        self.runtime = runtime
        #: the campaign figures of this worker's own outputs since it started (GET /v1/campaigns)
        self.results = CampaignResults()
        self.pending: dict[tuple[str, int], deque[Rec]] = {}
        self.received: dict[tuple[str, int], int] = {}
        self.buffered = 0
        self.oldest = 0.0
        #: event time of the last record released per input topic-partition (its position)
        self.position: dict[tuple[str, int], float] = {}
        self.stats: dict[str, int] = {}
        self.assigned = False
        self._names: dict[str, str] = {}
        #: called with (base topic, key, record, event_ts, its bytes or None) for every output
        #: record queued, where event_ts is the Kafka timestamp (s) of the input record that
        #: caused it, or -1 (the wall clock's timers): the worker's metrics and recent outputs
        #: (`streams.web.meter`)
        self.observe: Callable[[str, Any, dict[str, Any], float, bytes | None], None] | None = None
        self.event_ts = -1.0

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    def topic(self, base: str) -> str:
        """The real name of output topic `base` (prefixed)."""
        name = self._names.get(base)
        if name is None:
            name = self._names[base] = self.prefix + base
        return name

    # ------------------------------------------------------------------ intake
    def add(self, rec: Rec) -> None:
        """Buffer one record (a redelivered one, at or below what was received, is dropped)."""
        key = (rec.topic, rec.partition)
        if rec.offset <= self.received.get(key, -1):
            self.count("redelivered")
            return
        self.received[key] = rec.offset
        queue = self.pending.get(key)
        if queue is None:
            queue = self.pending[key] = deque()
        queue.append(rec)
        if not self.buffered:
            self.oldest = time.monotonic()
        self.buffered += 1

    def fetch(self) -> int:
        """Move what the intake consumer has prefetched into the buffer (never blocks)."""
        if not self.assigned:
            return 0
        n = 0
        while self.buffered < self.max_buffered:
            msgs = self.intake.consume(10000, timeout=0)
            if not msgs:
                break
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() != _PARTITION_EOF:
                        log.warning("intake: %s", err)
                    continue
                ts: int = m.timestamp()[1]
                self.add(
                    Rec(
                        m.topic() or "",
                        m.partition() or 0,
                        m.offset() or 0,
                        ts / 1000.0 if ts > 0 else 0.0,
                        m.value(),
                    )
                )
            n += len(msgs)
        return n

    def caught_up(self, topic: str, partition: int) -> bool:
        """No more records of topic/partition are available right now (fetch high watermark)."""
        if topic == self.forwards_topic:
            return True
        try:
            _, hw = self.intake.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        except Exception:
            return False
        if hw is None or hw < 0:
            return False
        pos = self.received.get((topic, partition), -1) + 1
        pos = max(pos, self.runtime.applied(topic, partition) + 1)
        return bool(pos >= hw)

    def blocking(self) -> list[tuple[str, int, int]]:
        """(topic, partition, position) of the queues holding the merge back."""
        return [
            (t, p, self.received.get((t, p), -1) + 1)
            for p in sorted(self.runtime.engines)
            for t in self.input_topics
            if not self.pending.get((t, p)) and not self.caught_up(t, p)
        ]

    def release(self, force: bool) -> list[Rec]:
        """Buffered records ready to apply, in order: forwards from other workers first, then
        the input topics of all our partitions merged by timestamp, each topic-partition in
        offset order. An empty topic-partition that has data not fetched yet holds the merge
        back, unless `force` (idle too long or buffer full): then the stream clock is bounded
        by the position of every input partition that still has a backlog (`Runtime.bound`)."""
        out: list[Rec] = []
        queues: list[deque[Rec]] = []
        bound = _INF
        for p in sorted(self.runtime.engines):
            fwd = self.pending.get((self.forwards_topic, p))
            if fwd:
                out.extend(fwd)
                fwd.clear()
            for topic in self.input_topics:
                q = self.pending.get((topic, p))
                if q:
                    queues.append(q)
                elif not self.caught_up(topic, p):
                    if not force:
                        self.buffered -= len(out)
                        return out
                    bound = min(bound, self.position.get((topic, p), -_INF))
        heap = [(q[0].timestamp, i) for i, q in enumerate(queues)]
        heapq.heapify(heap)
        limit = self.batch_max
        while heap and len(out) < limit:
            i = heap[0][1]
            q = queues[i]
            rec = q.popleft()
            out.append(rec)
            if q:
                heapq.heapreplace(heap, (q[0].timestamp, i))
            else:
                heapq.heappop(heap)
                self.position[(rec.topic, rec.partition)] = rec.timestamp
                if not self.caught_up(rec.topic, rec.partition):
                    if not force:
                        break
                    bound = min(bound, rec.timestamp)
        self.buffered -= len(out)
        self.runtime.bound = bound
        return out

    def drop_inputs(self, partitions: set[int] | None = None) -> None:
        """Forget what was buffered and received of the input topics (of `partitions`, or all
        of them when None), and forwards too for `partitions`."""
        inputs = set(self.input_topics)
        for key in [k for k in self.pending if _dropped(k, inputs, partitions)]:
            self.buffered -= len(self.pending.pop(key))
        for key in [k for k in self.received if _dropped(k, inputs, partitions)]:
            del self.received[key]

    # ------------------------------------------------------------------ apply
    def apply(self, recs: list[Rec]) -> None:
        """Apply records in order (those of partitions no longer ours are skipped: their next
        owner reads them again), queueing their outputs on the producer."""
        runtime = self.runtime  # (its methods called on it, not as bound locals: native calls)
        for rec in recs:
            topic, partition = rec.topic, rec.partition
            if not runtime.holds(partition):
                continue
            if not runtime.applies(topic, partition, rec.offset):
                self.count("skipped")  # already in the state (redelivered after a crash)
                continue
            base = self.base_of.get(topic, topic)
            value = rec.value or b""
            self.event_ts = rec.timestamp
            if base == FORWARDS:
                try:
                    out = runtime.receive(decode_forward(value))
                except Exception as exc:  # a forward we cannot read or apply: never fatal
                    self.dead_letter(
                        base, where(base, partition, rec.offset), rec.value, INTERNAL_ERROR,
                        f"bad forward: {exc}",
                    )
                    continue
            else:
                try:
                    raw = decode_input(value)
                except Exception as exc:  # undecodable Avro: a dead letter, never fatal
                    self.queue_dead_letter(undecodable(base, partition, rec.offset, value, exc))
                    continue
                out = runtime.process(raw, base, where(base, partition, rec.offset), partition)
            self.emit(out)

    def emit(self, out: Outputs) -> None:
        """Queue the records of one runtime call, and its forwards: those left are for
        partitions another worker owns, sent on the `forwards` topic, partition of the key."""
        if (
            out.segment_changes
            or out.triggers
            or out.suppressed
            or out.profiles
            or out.dead_letters
            or out.conversions
        ):  # most events change nothing: skip the generator
            produce = self.producer.produce
            observe = self.observe
            for base, key, value in out.records():
                data = encode_value(base, value)
                produce(self.topic(base), key, data)
                self.count(base)
                if observe is not None:
                    observe(base, key, value, self.event_ts, data)
        if out.forwards:
            partition_of = self.runtime.partition_of
            for fwd in out.forwards:
                self.producer.produce(
                    self.forwards_topic, fwd.key, encode_forward(fwd), partition_of(fwd.key)
                )
                self.count(FORWARDS)
        if out.triggers or out.conversions:
            feed(self.results, out)

    def dead_letter(
        self, source: str, offset: str, raw: bytes | None, reason: str, message: str
    ) -> None:
        self.queue_dead_letter(dead_letter(source, offset, raw or b"", reason, message=message))

    def queue_dead_letter(self, value: dict[str, Any]) -> None:
        self.producer.produce(
            self.topic(DEAD_LETTERS), value["source"], encode_value(DEAD_LETTERS, value)
        )
        self.count(DEAD_LETTERS)
        if self.observe is not None:
            self.observe(DEAD_LETTERS, value["source"], value, self.event_ts, None)


def _dropped(key: tuple[str, int], inputs: set[str], partitions: set[int] | None) -> bool:
    if partitions is None:
        return key[0] in inputs
    return key[1] in partitions
