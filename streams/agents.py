"""The Faust shell around the engine.

Faust (aiokafka) runs the group: the app subscribes to the `forwards` topic, co-partitioned with
the input topics and with the state table's changelog, so an assignment of forwards partition p
means "this worker owns partition p": Faust recovers the table partition p from its changelog
and an agent consumes forwards for p. The three input topics are high-volume; Faust's per-event
path tops out at a few thousand events/s, so the worker reads input partitions p with a
confluent-kafka consumer assigned (no group) to exactly the owned partitions, starting after the
offsets stored in the state.

One `Engine` per owned partition (population statistics, watermark and timers are per
partition, as in replay). Events are merged across the input topics and across the owned
partitions by Kafka timestamp (= event time, set by our producers), each topic-partition in
offset order, waiting for a topic-partition that has data not fetched yet (Kafka Streams'
stream-time synchronization); forwards to a partition of this worker are delivered in process at
once (as replay does), others go to the `forwards` topic. Records are applied as soon as they
are released, their outputs and forwards handed to a confluent producer every `PUSH_EVERY`
records (no await per event). What was applied is committed as one batch every
`commit_interval` seconds (or `batch_max` records), as Kafka Streams commits:

1. `engine.flush()` stages each dirty key once, plus the input offsets applied;
2. the staged writes go to the table's changelog (explicit partition = input partition);
3. the batch's epoch of records is sealed, and the engine goes on while they are acknowledged
   (`streams.epochs`);
4. once every record of the batch is acknowledged, one atomic RocksDB WriteBatch stores state
   + input offsets + the changelog offset (batches in order; at the first drain that finds the
   batch acknowledged, else at the next commit, before a revocation, and when the worker stops:
   `App.before_stop` runs before Faust stops the tables, and nothing is applied after it);
5. forwards consumed through Faust are acked (Faust commits them later).

The drain loop polls the intake every `poll_interval` when nothing can be applied (idle, or
the merge waits for a fetch), and at once after applying something.

A crash before 4 replays the batch from the last durable state: the same outputs with the same
ids come out again (at-least-once records, exactly-once ids). The input offsets in the state are
the truth: the intake consumer starts after them, and redelivered events at or below them are
skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import faust
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.broker import topic_partitions
from connectors.topics import CONTROL, DEAD_LETTERS, FORWARDS, INPUT_TOPICS
from streams.app import App, Settings, state_table
from streams.catchup import ChangelogReader
from streams.engine.partitioning import partition_for
from streams.epochs import Epoch, EpochProducer
from streams.live_io import decode_input, encode_value, topic_name
from streams.tables import TableStore

log = logging.getLogger(__name__)

#: Records applied between two hand-overs of their outputs to librdkafka: the produce calls stay
#: back to back (cheap), and an output waits at most ~10 ms of engine time in Python.
PUSH_EVERY = 100
#: Seconds a stop waits for the engines before it gives up settling the batch in flight.
STOP_WAIT = 10.0


class Rec(NamedTuple):
    """One buffered input or forward record, whichever client read it."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds
    value: bytes | None
    event: Any  # the Faust event of a forward (acked after commit), else None


@dataclass
class PartitionEngine:
    """The engine of one assigned partition, with its store."""

    partition: int
    engine: Any
    store: TableStore


@dataclass
class Inflight:
    """A committed batch not yet durable: its epoch of records, its staged RocksDB writes, the
    input offsets it reached and the Faust events to ack."""

    epoch: Epoch
    staged: list[tuple[PartitionEngine, dict[bytes, bytes | None]]]
    acks: list[Any]
    offsets: list[TopicPartition]


def _load_rules(path: Path) -> Any:
    from streams.engine.rules import load_rules

    return load_rules(path)


def _loads_rules(text: str) -> Any:
    from streams.engine.rules import loads_rules

    return loads_rules(text)


class Pipeline:
    """Engines per partition, the producer, the changelog, timers and hot reload of one worker."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.table = state_table(app, settings.partitions)
        self.changelog = self.table.changelog_topic.get_topic_name()
        self.producer = EpochProducer(settings.bootstrap, track=[self.changelog])
        self._inflight: Inflight | None = None
        #: Applied since the last commit: records, and the Faust events to ack once durable.
        self._uncommitted = 0
        self._acks: list[Any] = []
        self._last_commit = time.monotonic()
        self.lock = asyncio.Lock()
        self.engines: dict[int, PartitionEngine] = {}
        prefix = settings.prefix
        self.base_of = {topic_name(t, prefix): t for t in (*INPUT_TOPICS, FORWARDS)}
        self.forwards_topic = topic_name(FORWARDS, prefix)
        self.control_topic = topic_name(CONTROL, prefix)
        self.rules = _load_rules(settings.rules_path)
        self._rules_mtime = self._mtime()
        self._control: Consumer | None = None
        self.stream: Any = None
        self.pending: dict[tuple[str, int], deque[Any]] = {}
        self.owned: set[int] = set()
        #: True from the end of Faust's recovery to the next revocation.
        self.ready = False
        #: Set when the worker stops: no batch is applied from then on.
        self.stopping = False
        self._last_log = time.monotonic()
        self._touched: set[int] = set()
        self.input_topics = [topic_name(t, prefix) for t in INPUT_TOPICS]
        self._received: dict[tuple[str, int], int] = {}
        self.buffered = 0
        self._oldest = 0.0
        self.stats: Counter[str] = Counter()
        self.intake = Consumer(
            {
                "bootstrap.servers": settings.bootstrap,
                "group.id": f"{settings.app_id}-inputs",  # offsets committed only for lag views
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # past retention: go on from the oldest record kept (librdkafka's default skips
                # to the end, losing what arrived since)
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 20,
                "queued.max.messages.kbytes": 65536,
                "log.connection.close": False,
            }
        )
        self._assigned: set[int] = set()

    # ----------------------------------------------------------------- engines
    def _mtime(self) -> float:
        try:
            return self.settings.rules_path.stat().st_mtime
        except OSError:
            return 0.0

    def _store_for(self, partition: int) -> TableStore:
        db = self.table.data._db_for_partition(partition)
        return TableStore(db, partition)

    async def engines_for(self, partitions: Iterable[int]) -> list[PartitionEngine]:
        """The engines of `partitions`, created on first use (after Faust's table recovery and
        our changelog catch-up)."""
        missing = sorted({p for p in partitions if p not in self.engines})
        if missing:
            from streams.engine.core import Engine

            stores = [self._store_for(p) for p in missing]
            reader = ChangelogReader(
                self.settings.bootstrap, f"{self.settings.app_id}-catchup", self.changelog
            )
            caught = await asyncio.to_thread(reader.catch_up, stores)
            for store in stores:
                p = store.partition
                engine = Engine(self.rules, store, partition=p)
                self.engines[p] = PartitionEngine(p, engine, store)
                log.info(
                    "partition %d: engine ready (%d changelog records caught up, offsets %s)",
                    p,
                    caught.get(p, 0),
                    store.offsets,
                )
        return [self.engines[p] for p in partitions]

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            if self.engines.pop(p, None) is not None:
                log.info("partition %d: engine dropped", p)

    # ----------------------------------------------------------------- outputs
    def emit(self, out: Any) -> None:
        """Queue the records of one engine call and route its forwards: to the engine in this
        process when we own the target partition (settled at once, as replay does), else to
        the `forwards` topic, partition of the key."""
        local: deque[Any] | None = None
        while True:
            if out.segment_changes or out.triggers or out.suppressed or out.profiles or (
                out.dead_letters
            ):  # most events change nothing: skip the generator
                prefix, produce, stats = self.settings.prefix, self.producer.produce, self.stats
                for base, key, value in out.records():
                    produce(topic_name(base, prefix), key, encode_value(base, value))
                    stats[base] += 1
            for fwd in out.forwards:
                target = partition_for(fwd.key, self.settings.partitions)
                pe = self.engines.get(target)
                if pe is not None:
                    if local is None:
                        local = deque()
                    local.append((pe, fwd.payload))
                    self.stats["forwards:local"] += 1
                else:
                    self.producer.produce(
                        self.forwards_topic, fwd.key, fwd.payload, partition=target
                    )
                    self.stats[FORWARDS] += 1
            if not local:
                return
            pe, payload = local.popleft()
            self._touched.add(pe.partition)
            out = pe.engine.receive(payload)

    def dead_letter(self, source: str, offset: str, raw: bytes | None, reason: str) -> None:
        value = {
            "source": source,
            "offset": offset,
            "raw": (raw or b"").decode("utf-8", "replace"),
            "reason": reason,
            "at": None,
        }
        self.producer.produce(
            topic_name(DEAD_LETTERS, self.settings.prefix),
            source,
            encode_value(DEAD_LETTERS, value),
        )
        self.stats[DEAD_LETTERS] += 1

    async def commit(self) -> None:
        """End a batch: stage what was applied since the last commit on the changelog and seal
        its epoch of records, then settle the batch before it (acknowledged by now, as a
        rule)."""
        acks, self._acks = self._acks, []
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        previous = self._inflight
        self._inflight = self._stage(acks)
        if previous is not None:
            await self._settle(previous)

    async def settle(self) -> None:
        """Make everything applied durable (before partitions are revoked, and on stop)."""
        if self._uncommitted or self._touched or self._acks:
            await self.commit()
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await self._settle(inflight)

    async def _commit_if_due(self) -> None:
        """Settle the batch in flight once it is acknowledged (no wait), and commit what was
        applied when `commit_interval` has passed or `batch_max` records wait."""
        inflight = self._inflight
        future = inflight.epoch.future if inflight is not None else None
        if inflight is not None and future is not None and future.done():
            self._inflight = None
            await self._settle(inflight)
        if not (self._uncommitted or self._touched or self._acks):
            return
        if (
            self._uncommitted >= self.settings.batch_max
            or time.monotonic() - self._last_commit >= self.settings.commit_interval
        ):
            await self.commit()

    def _stage(self, acks: list[Any]) -> Inflight:
        staged: list[tuple[PartitionEngine, dict[bytes, bytes | None]]] = []
        for p in sorted(self._touched):
            pe = self.engines.get(p)
            if pe is None:
                continue
            pe.engine.flush()
            writes = pe.store.drain()
            if not writes:
                continue
            for key, value in writes.items():
                self.producer.produce(self.changelog, key, value, partition=pe.partition)
            staged.append((pe, writes))
        self._touched.clear()
        offsets = [
            TopicPartition(topic, p, off + 1)
            for p, pe in self.engines.items()
            for topic, off in pe.store.offsets.items()
            if topic in self.input_topics
        ]
        return Inflight(self.producer.seal(), staged, acks, offsets)

    async def _settle(self, inflight: Inflight) -> None:
        """Every record of the batch acknowledged, then one RocksDB batch per partition, then
        the input offsets (for lag tools only) and the acks of its forwards."""
        epoch = inflight.epoch
        await epoch.acknowledged()
        for pe, writes in inflight.staged:
            pe.store.write(writes, epoch.offsets.get((self.changelog, pe.partition)))
        if inflight.offsets:
            with contextlib.suppress(Exception):
                self.intake.commit(offsets=inflight.offsets, asynchronous=True)
        if inflight.acks and self.stream is not None:
            ack = self.stream.ack
            for event in inflight.acks:
                await ack(event)

    # ----------------------------------------------------------------- intake
    def add_forward(self, event: Any) -> None:
        """Buffer a forward read by the Faust agent (acked after the batch is committed)."""
        msg = event.message
        self._add(Rec(msg.topic, msg.partition, msg.offset, msg.timestamp or 0.0, msg.value, event))

    def _add(self, rec: Rec) -> None:
        key = (rec.topic, rec.partition)
        if rec.offset <= self._received.get(key, -1):
            self.stats["redelivered"] += 1
            return
        self._received[key] = rec.offset
        queue = self.pending.get(key)
        if queue is None:
            queue = self.pending[key] = deque()
        queue.append(rec)
        if not self.buffered:
            self._oldest = time.monotonic()
        self.buffered += 1

    def fetch(self) -> int:
        """Move what the intake consumer has prefetched into the buffer (never blocks)."""
        if not self._assigned:
            return 0
        n = 0
        limit = self.settings.max_buffered
        while self.buffered < limit:
            msgs = self.intake.consume(10000, timeout=0)
            if not msgs:
                break
            add = self._add
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() != -191:  # _PARTITION_EOF
                        log.warning("intake: %s", err)
                    continue
                ts = m.timestamp()[1]
                add(
                    Rec(
                        m.topic() or "",
                        m.partition() or 0,
                        m.offset() or 0,
                        ts / 1000.0 if ts > 0 else 0.0,
                        m.value(),
                        None,
                    )
                )
            n += len(msgs)
        return n

    def _assign_intake(self) -> None:
        """Read the input partitions of the engines we have, after their stored offsets."""
        want = set(self.engines)
        if want == self._assigned:
            return
        tps = []
        for p in sorted(want):
            offsets = self.engines[p].store.offsets
            for topic in self.input_topics:
                off = offsets.get(topic)
                tps.append(TopicPartition(topic, p, OFFSET_BEGINNING if off is None else off + 1))
        self.intake.assign(tps)
        self._assigned = want
        # every input partition restarts after its stored offset: drop what was buffered
        inputs = set(self.input_topics)
        for key in [k for k in self.pending if k[0] in inputs]:
            self.buffered -= len(self.pending.pop(key))
        for key in [k for k in self._received if k[0] in inputs]:
            del self._received[key]
        log.info("intake assigned partitions %s", sorted(want))

    def _caught_up(self, topic: str, partition: int) -> bool:
        """No more records of topic/partition are available right now (fetch high watermark)."""
        if topic == self.forwards_topic:
            return True
        try:
            _, hw = self.intake.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        except Exception:
            return False
        if hw is None or hw < 0:
            return False
        pos = self._received.get((topic, partition), -1) + 1
        pe = self.engines.get(partition)
        if pe is not None:
            pos = max(pos, pe.store.offsets.get(topic, -1) + 1)
        return pos >= hw

    def _blocking(self) -> list[tuple[str, int, int]]:
        """(topic, partition, position) of the queues holding the merge back."""
        return [
            (t, p, self._received.get((t, p), -1) + 1)
            for p in sorted(self.engines)
            for t in self.input_topics
            if not self.pending.get((t, p)) and not self._caught_up(t, p)
        ]

    # ----------------------------------------------------------------- batches
    def _release(self, force: bool) -> list[Rec]:
        """Buffered records ready to apply, in order: forwards from other workers first, then
        the input topics of all our partitions merged by timestamp, each topic-partition in
        offset order. An empty topic-partition that has data not fetched yet holds the merge
        back, unless `force` (idle too long or buffer full)."""
        out: list[Rec] = []
        queues: list[deque[Rec]] = []
        for p in sorted(self.engines):
            fwd = self.pending.get((self.forwards_topic, p))
            if fwd:
                out.extend(fwd)
                fwd.clear()
            for topic in self.input_topics:
                q = self.pending.get((topic, p))
                if q:
                    queues.append(q)
                elif not force and not self._caught_up(topic, p):
                    return out
        heap = [(q[0].timestamp, i) for i, q in enumerate(queues)]
        heapq.heapify(heap)
        limit = self.settings.batch_max
        while heap and len(out) < limit:
            i = heap[0][1]
            q = queues[i]
            rec = q.popleft()
            out.append(rec)
            if q:
                heapq.heapreplace(heap, (q[0].timestamp, i))
            else:
                heapq.heappop(heap)
                if not force and not self._caught_up(rec.topic, rec.partition):
                    break
        return out

    async def drain(self, force: bool = False) -> int:
        """Apply the releasable buffered records, then commit if due. Returns the number of
        records applied."""
        if self.stopping:
            return 0
        self.fetch()
        async with self.lock:
            if self.stopping:
                return 0
            recs: list[Rec] = []
            if self.buffered and self.engines:
                force = (
                    force
                    or self.buffered >= self.settings.max_buffered
                    or time.monotonic() - self._oldest > self.settings.max_idle
                )
                if force:
                    self.stats["forced_releases"] += 1
                    log.info("forced release, waiting for %s", self._blocking())
                recs = self._release(force)
            if recs:
                self.buffered -= len(recs)
                self._oldest = time.monotonic()
                for i in range(0, len(recs), PUSH_EVERY):
                    self._apply(recs[i : i + PUSH_EVERY])
                    self.producer.push()  # the outputs go out now, not at the commit
                self.stats["events"] += len(recs)
                self._uncommitted += len(recs)
                self._acks.extend(rec.event for rec in recs if rec.event is not None)
            await self._commit_if_due()
            return len(recs)

    def _apply(self, recs: list[Rec]) -> None:
        engines, emit, touched = self.engines, self.emit, self._touched
        staged: set[int] = set()
        for rec in recs:
            topic, partition = rec.topic, rec.partition
            pe = engines.get(partition)
            if pe is None:  # revoked meanwhile: the next owner reads it again
                continue
            offsets = pe.store.offsets
            if rec.offset <= offsets.get(topic, -1):
                self.stats["skipped"] += 1  # already in the state (redelivered after a crash)
                continue
            offsets[topic] = rec.offset
            staged.add(partition)
            touched.add(partition)
            base = self.base_of.get(topic, topic)
            where = f"{base}:{partition}:{rec.offset}"
            if base == FORWARDS:
                try:
                    out = pe.engine.receive(rec.value)
                except Exception as exc:  # a forward we cannot read: never fatal
                    self.dead_letter(base, where, rec.value, f"bad forward: {exc}")
                    continue
            else:
                try:
                    raw = decode_input(rec.value or b"")
                except Exception as exc:  # undecodable Avro: a dead letter, never fatal
                    self.dead_letter(base, where, rec.value, f"undecodable value: {exc}")
                    continue
                out = pe.engine.process(raw, source=base, offset=where)
            emit(out)
        for p in staged:
            engines[p].store.stage_offsets()

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop buffered records and engines of revoked partitions; stop reading their inputs."""
        parts = set(partitions)
        for key in [k for k in self.pending if k[1] in parts]:
            self.buffered -= len(self.pending.pop(key))
        for key in [k for k in self._received if k[1] in parts]:
            del self._received[key]
        self.drop(parts)
        self._assign_intake()

    # ----------------------------------------------------------------- time and rules
    async def activate(self) -> None:
        """Engines for the owned partitions (after Faust's recovery), then the intake."""
        if not self.ready or self.stopping:
            return
        async with self.lock:
            if not self.ready or self.stopping:
                return
            await self.engines_for(self.owned)
            self._assign_intake()

    async def tick(self) -> None:
        """Every second: hot reload, stats, wall-clock timers."""
        self.poll_rules()
        now_m = time.monotonic()
        if now_m - self._last_log >= self.settings.log_every and self.stats["events"]:
            self._last_log = now_m
            log.info("stats: %s (buffered %d)", dict(self.stats), self.buffered)
        await self.activate()
        if not self.settings.wall_clock or not self.ready:
            return
        async with self.lock:
            if self.stopping:
                return
            now = time.time()
            for pe in list(self.engines.values()):
                self._touched.add(pe.partition)
                self.emit(pe.engine.advance(now))
            await self.commit()

    def set_rules(self, rules: Any, origin: str) -> None:
        self.rules = rules
        for pe in self.engines.values():
            pe.engine.set_rules(rules)
        log.info("rules %s loaded from %s", getattr(rules, "version", "?"), origin)

    def poll_rules(self) -> None:
        """A changed rules file or a `{"type": "rules", "yaml": ...}` control message."""
        mtime = self._mtime()
        if mtime != self._rules_mtime:
            self._rules_mtime = mtime
            try:
                self.set_rules(_load_rules(self.settings.rules_path), str(self.settings.rules_path))
            except Exception as exc:
                log.error("rules file not reloaded, keeping the current rules: %s", exc)
        for msg in self._control_messages():
            try:
                obj = orjson.loads(msg)
            except orjson.JSONDecodeError:
                log.error("control message is not JSON: %r", msg[:200])
                continue
            if isinstance(obj, dict) and obj.get("type") == "rules":
                try:
                    self.set_rules(_loads_rules(str(obj.get("yaml", ""))), "control topic")
                except Exception as exc:
                    log.error("control rules not loaded, keeping the current rules: %s", exc)

    def _control_messages(self) -> list[bytes]:
        if self._control is None:
            n = topic_partitions(self.settings.bootstrap, self.control_topic)
            if n == 0:
                return []
            self._control = Consumer(
                {
                    "bootstrap.servers": self.settings.bootstrap,
                    "group.id": f"{self.settings.app_id}-control-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                }
            )
            self._control.assign(
                [TopicPartition(self.control_topic, p, OFFSET_BEGINNING) for p in range(n)]
            )
        msgs = self._control.consume(100, timeout=0)
        return [v for m in msgs if m.error() is None and (v := m.value())]

    async def stop(self) -> None:
        """Apply nothing more and make everything applied durable (while Faust's tables and our
        producer are still open)."""
        self.stopping = True
        try:  # the lock may be held by a changelog catch-up that waits for the broker
            await asyncio.wait_for(self.lock.acquire(), STOP_WAIT)
        except TimeoutError:
            log.warning("stopping without settling: busy for %.0f s (a restart re-applies "
                        "the batch in flight from the inputs, with the same ids)", STOP_WAIT)
            return
        try:
            await self.settle()
        finally:
            self.lock.release()
        log.info("stopping: nothing more is applied, everything applied is durable")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.intake.close()
        if self._control is not None:
            self._control.close()
            self._control = None
        try:
            self.producer.close(10)
        except Exception as exc:
            log.warning("producer not flushed on close: %s", exc)


def register(app: App, settings: Settings) -> Pipeline:
    """Declare the forwards agent, the background loops, the rebalance hooks and the stop hook
    on `app`."""
    pipeline = Pipeline(app, settings)
    app.before_stop.append(pipeline.stop)
    source = app.topic(
        pipeline.forwards_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    async def forwards_agent(stream: Any) -> None:
        stream = stream.noack()
        pipeline.stream = stream
        async for event in stream.events():
            pipeline.add_forward(event)

    app.agent(source, name="forwards")(forwards_agent)

    async def drain_loop() -> None:
        while True:
            applied = await pipeline.drain()
            await asyncio.sleep(0 if applied else settings.poll_interval)

    async def tick_loop() -> None:
        while True:
            await asyncio.sleep(settings.tick_interval)
            await pipeline.tick()

    app.task(drain_loop)
    app.task(tick_loop)

    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        parts = {tp.partition for tp in revoked if tp.topic == pipeline.forwards_topic}
        pipeline.ready = False
        async with pipeline.lock:
            await pipeline.settle()
            pipeline.owned -= parts
            pipeline.forget_partitions(parts)

    async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        keep = {tp.partition for tp in assigned if tp.topic == pipeline.forwards_topic}
        async with pipeline.lock:
            await pipeline.settle()  # before any engine it wrote to is dropped
            pipeline.owned = keep
            pipeline.forget_partitions([p for p in pipeline.engines if p not in keep])

    async def on_rebalance_complete(sender: Any, **_: Any) -> None:
        pipeline.ready = True
        await pipeline.activate()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    app.on_rebalance_complete.connect(on_rebalance_complete)  # type: ignore[arg-type]
    return pipeline
