"""The Faust shell around the engine.

Faust (aiokafka) runs the group: the app subscribes to the `forwards` topic, co-partitioned with
the input topics and with the state table's changelog, so an assignment of forwards partition p
means "this worker owns partition p": Faust recovers the table partition p from its changelog
and an agent consumes forwards for p. The three input topics are high-volume; Faust's per-event
path tops out at a few thousand events/s, so the worker reads input partitions p with a
confluent-kafka consumer assigned (no group) to exactly the owned partitions, starting after the
offsets stored in the state.

The owned partitions run in the partition runtime (`streams.runtime`), as in replay: one
engine per partition, forwards between owned partitions delivered in process as objects, one
stream clock. Events are merged across the input topics and across the owned partitions by
Kafka timestamp (= event time, set by our producers), each topic-partition in offset order,
waiting for a topic-partition that has data not fetched yet (Kafka Streams' stream-time
synchronization); before each is applied, the runtime moves every owned partition to its time
(never past an input partition that still has a backlog). Forwards to partitions of other
workers go to the `forwards` topic, and an input record found on a partition other than its
key's goes to its key's partition the same way. Records are applied as soon as they are
released, their outputs and forwards handed to a confluent producer every `PUSH_EVERY` records
(no await per event); that per-record path is `streams.flow`, compiled with the engine. What
was applied is committed by `streams.checkpoint` (its steps are documented there); the
checkpoint settles the batch in flight before a revocation and when the worker stops
(`App.before_stop` runs before Faust stops the tables, and nothing is applied after it).

The drain loop polls the intake every `poll_interval` when nothing can be applied (idle, or
the merge waits for a fetch), and at once after applying something.

The input offsets in the state are the truth: the intake consumer starts after them, and
redelivered events at or below them are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.broker import topic_partitions
from streams.app import App, Settings, state_table
from streams.catchup import ChangelogReader
from streams.checkpoint import Checkpoint
from streams.contract import CONTROL, INPUT_TOPICS, PROFILES, encode_value, topic_name
from streams.epochs import EpochProducer
from streams.flow import Flow, Rec
from streams.measure.web import route_hook
from streams.runtime import Runtime
from streams.tables import TableStore
from streams.web.meter import Meter, count_members
from streams.web.metrics import exposition, registry_for
from streams.web.profiles import ProfileRoutes, owner_in
from streams.web.server import WorkerWeb

log = logging.getLogger(__name__)

#: Records applied between two hand-overs of their outputs to librdkafka: the produce calls stay
#: back to back (cheap), and an output waits at most ~10 ms of engine time in Python.
PUSH_EVERY = 100
#: Seconds a stop waits for the engines before it gives up settling the batch in flight.
STOP_WAIT = 10.0


class CountingCheckpoint(Checkpoint):
    """The checkpoint, counting its commits and collecting the consumers each one flushes
    (read from the engines' dirty sets just before they are flushed: per commit, not per
    event), for the profile snapshots published on the `profiles` topic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commits = 0
        self.touched: set[str] = set()

    def _stage(self, acks: list[Any]) -> Any:
        self.commits += 1
        for engine in self.runtime.engines.values():
            self.touched.update(engine._dirty)
        return super()._stage(acks)


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
        self.producer = EpochProducer(
            settings.bootstrap, track=[self.changelog], **{"linger.ms": settings.linger_ms}
        )
        self.lock = asyncio.Lock()
        prefix = settings.prefix
        self.control_topic = topic_name(CONTROL, prefix)
        self.rules = _load_rules(settings.rules_path)
        self._rules_mtime = self._mtime()
        self._control: Consumer | None = None
        self.stream: Any = None
        self.owned: set[int] = set()
        #: True from the end of Faust's recovery to the next revocation.
        self.ready = False
        #: Set when the worker stops: no batch is applied from then on.
        self.stopping = False
        self._last_log = time.monotonic()
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
        #: the owned partitions' engines (none until Faust assigns some)
        self.runtime = Runtime(self.rules, settings.partitions, held=())
        #: the per-record path (compiled)
        self.flow = Flow(
            self.intake,
            self.producer,
            self.runtime,
            prefix=prefix,
            partitions=settings.partitions,
            inputs=INPUT_TOPICS,
            max_buffered=settings.max_buffered,
            batch_max=settings.batch_max,
        )
        self.stats = self.flow.stats
        self.forwards_topic = self.flow.forwards_topic
        self.input_topics = self.flow.input_topics
        self.checkpoint = CountingCheckpoint(
            self.runtime,
            self.producer,
            self.changelog,
            self.input_topics,
            intake=self.intake,
            batch_max=settings.batch_max,
            commit_interval=settings.commit_interval,
            catchup_max=settings.catchup_max,
            catchup_interval=settings.catchup_interval,
        )
        #: metrics and recent outputs (`streams.web`): fed per output record, never per event
        self.meter = Meter(
            self.runtime.partition_of, exists=lambda cid: self.runtime.peek(cid) is not None
        )
        self.flow.observe = self.meter.observe
        self.profiles_topic = topic_name(PROFILES, prefix)
        #: the web server (`serve_web`), if the worker has one
        self.web: WorkerWeb | None = None
        self._last_profiles = time.monotonic()

    # ----------------------------------------------------------------- what the web reads
    @property
    def commits(self) -> int:
        return self.checkpoint.commits

    def stores(self) -> dict[int, TableStore]:
        """The stores of the partitions held."""
        return dict(self.checkpoint.stores)

    # ----------------------------------------------------------------- engines
    def _mtime(self) -> float:
        try:
            return self.settings.rules_path.stat().st_mtime
        except OSError:
            return 0.0

    def _store_for(self, partition: int) -> TableStore:
        # faust-streaming has no public accessor for a table partition's RocksDB database (its
        # Store offers `partition_path` only, and RocksDB allows one open handle per path)
        db = self.table.data._db_for_partition(partition)
        return TableStore(db, partition)

    async def engines_for(self, partitions: Iterable[int]) -> None:
        """The engines of `partitions`, created on first use (after Faust's table recovery and
        our changelog catch-up)."""
        missing = sorted({p for p in partitions if not self.runtime.holds(p)})
        if missing:
            from streams.engine.core import Engine

            stores = [self._store_for(p) for p in missing]
            reader = ChangelogReader(
                self.settings.bootstrap, f"{self.settings.app_id}-catchup", self.changelog
            )
            caught = await asyncio.to_thread(reader.catch_up, stores)
            members = await asyncio.to_thread(lambda: [count_members(s) for s in stores])
            for store, sizes in zip(stores, members, strict=True):
                p = store.partition
                self.meter.members[p] = sizes
                for topic in self.input_topics:
                    self.meter.started[(topic, p)] = store.offsets.get(topic, -1)
                self.runtime.add(p, Engine(self.rules, store, partition=p), store.offsets)
                self.checkpoint.add(p, store)
                log.info(
                    "partition %d: engine ready (%d changelog records caught up, offsets %s)",
                    p,
                    caught.get(p, 0),
                    store.offsets,
                )

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.checkpoint.drop(p)
            self.meter.release(p)
            if self.runtime.drop(p) is not None:
                log.info("partition %d: engine dropped", p)

    # ----------------------------------------------------------------- commits
    async def commit(self) -> None:
        """End a batch (see `streams.checkpoint`)."""
        await self.checkpoint.commit()

    async def settle(self) -> None:
        """Make everything applied durable (before partitions are revoked, and on stop)."""
        await self.checkpoint.settle()

    # ----------------------------------------------------------------- intake
    def add_forward(self, event: Any) -> None:
        """Buffer a forward read by the Faust agent (acked after the batch is committed)."""
        msg = event.message
        self.flow.add(
            Rec(msg.topic, msg.partition, msg.offset, msg.timestamp or 0.0, msg.value, event)
        )

    def _assign_intake(self) -> None:
        """Read the input partitions of the engines we have, after their stored offsets."""
        want = set(self.runtime.engines)
        if want == self._assigned:
            return
        tps = []
        for p in sorted(want):
            for topic in self.input_topics:
                off = self.runtime.applied(topic, p)
                tps.append(TopicPartition(topic, p, OFFSET_BEGINNING if off < 0 else off + 1))
        self.intake.assign(tps)
        self._assigned = want
        self.flow.assigned = bool(want)
        # every input partition restarts after its stored offset: drop what was buffered
        self.flow.drop_inputs()
        log.info("intake assigned partitions %s", sorted(want))

    # ----------------------------------------------------------------- batches
    async def drain(self, force: bool = False) -> int:
        """Apply the releasable buffered records, then commit if due. Returns the number of
        records applied."""
        if self.stopping:
            return 0
        flow = self.flow
        flow.fetch()
        async with self.lock:
            if self.stopping:
                return 0
            recs: list[Rec] = []
            if flow.buffered and self.runtime.engines:
                force = (
                    force
                    or flow.buffered >= self.settings.max_buffered
                    or time.monotonic() - flow.oldest > self.settings.max_idle
                )
                if force:
                    flow.count("forced_releases")
                    log.info("forced release, waiting for %s", flow.blocking())
                recs = flow.release(force)
            if recs:
                flow.oldest = time.monotonic()
                for i in range(0, len(recs), PUSH_EVERY):
                    flow.apply(recs[i : i + PUSH_EVERY])
                    self.producer.push()  # the outputs go out now, not at the commit
                flow.count("events", len(recs))
                self.checkpoint.applied(
                    len(recs), [rec.event for rec in recs if rec.event is not None]
                )
            await self.checkpoint.poll(backlog=len(recs) >= flow.batch_max)
            return len(recs)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop buffered records and engines of revoked partitions; stop reading their inputs."""
        parts = set(partitions)
        self.flow.drop_inputs(parts)
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
        if now_m - self._last_log >= self.settings.log_every and self.stats.get("events"):
            self._last_log = now_m
            log.info(
                "stats: %s (buffered %d, re-routed %d)",
                dict(self.stats),
                self.flow.buffered,
                self.runtime.rerouted,
            )
        await self.activate()
        if not self.settings.wall_clock or not self.ready:
            return
        async with self.lock:
            if self.stopping:
                return
            self.flow.event_ts = -1.0  # (no input record causes these outputs)
            self.flow.emit(self.runtime.tick(time.time()))
            self.checkpoint.changed()
            await self.commit()

    # ----------------------------------------------------------------- profiles topic
    async def publish_profiles(self) -> int:
        """Every `profile_interval` seconds, snapshots (`streams.engine.snapshot`) of the
        consumers changed since their last one go to the `profiles` topic, for at most
        `profile_budget` seconds (the rest wait for the next round). Returns how many."""
        if time.monotonic() - self._last_profiles < self.settings.profile_interval:
            return 0
        self._last_profiles = time.monotonic()
        touched = self.checkpoint.touched
        if not touched:
            return 0
        n = 0
        async with self.lock:
            if self.stopping:
                return 0
            runtime = self.runtime
            stop = time.perf_counter() + self.settings.profile_budget
            while touched and time.perf_counter() < stop:
                cid = touched.pop()
                state = runtime.peek(cid)
                if state is None:  # erased (its empty profile went out), or no longer ours
                    continue
                snap = runtime.snapshot(state)
                record = {
                    "consumer_id": cid,
                    "email": snap["email"],
                    "consented": snap["consented"],
                    "at": snap["at"],
                    "features": snap["features"],
                    "segments": snap["segments"],
                }
                self.producer.produce(
                    self.profiles_topic, cid, encode_value(PROFILES, record)
                )
                n += 1
            self.producer.push()
        self.meter.profile_snapshots += n
        return n

    def set_rules(self, rules: Any, origin: str) -> None:
        self.rules = rules
        self.runtime.set_rules(rules)
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


def register(app: App, settings: Settings, web_socket: socket.socket | None = None) -> Pipeline:
    """Declare the forwards agent, the background loops, the rebalance hooks and the stop hook
    on `app`; with `web_socket` (bound), the worker's web server on it (`streams.web`)."""
    pipeline = Pipeline(app, settings)
    app.before_stop.append(pipeline.stop)
    if web_socket is not None:
        serve_web(app, pipeline, web_socket)
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
        pipeline.checkpoint.ack = stream.ack
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
            await pipeline.publish_profiles()

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
        pipeline.meter.rebalances += 1
        async with pipeline.lock:
            await pipeline.settle()  # before any engine it wrote to is dropped
            pipeline.owned = keep
            pipeline.forget_partitions([p for p in pipeline.runtime.engines if p not in keep])

    async def on_rebalance_complete(sender: Any, **_: Any) -> None:
        pipeline.ready = True
        await pipeline.activate()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    app.on_rebalance_complete.connect(on_rebalance_complete)  # type: ignore[arg-type]
    return pipeline


def serve_web(app: App, pipeline: Pipeline, sock: socket.socket) -> WorkerWeb:
    """The worker's web server on `sock`: `/metrics`, `/v1/profiles/{id}`,
    `GET /v1/campaigns` (streams.measure.web), and the routes of
    `pipeline.web.route_hooks` (append yours before the app starts). It starts with the app,
    before the group is joined, and stops after the pipeline has settled."""
    from prometheus_client import CONTENT_TYPE_LATEST

    web = pipeline.web = WorkerWeb(sock)
    registry = registry_for(pipeline, pipeline.settings.prefix)

    async def metrics(_request: Any) -> Any:
        from aiohttp import web as aioweb

        return aioweb.Response(
            body=exposition(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def owner_of(partition: int) -> str | None:
        assignor: Any = app.assignor
        return owner_in(assignor.changelog_distribution, pipeline.changelog, partition)

    profiles = ProfileRoutes(pipeline, owner_of, web.url)

    def add_metrics(a: Any) -> None:
        a.router.add_get("/metrics", metrics)

    web.route_hooks[:0] = [add_metrics, profiles.add_to, route_hook(pipeline.flow.results)]

    app.after_start.append(web.start)  # (metrics answer during the table recovery too)
    app.before_stop.append(web.stop)
    return web
