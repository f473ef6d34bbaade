"""The commit protocol of a live worker: what was applied becomes durable in numbered steps.

What was applied since the last commit is committed as one batch every `commit_interval`
seconds (or `batch_max` records), as Kafka Streams commits; while the worker works through a
backlog (each drain applies a full release), every `catchup_interval` seconds (or `catchup_max`
records) instead: a consumer whose events fall in several small batches is written once per
commit, so a catch-up writes a fraction of the states, changelog records and index entries it
would at the interval of a live stream (on bench/live.py's events, the engine and its RocksDB
writes take a tenth fewer instructions per event at 50,000 records a commit than at 5,000). A
crash then replays at most that much (the same outputs, with the same ids):

1. each engine is flushed (every dirty key staged once) with the input offsets the runtime
   applied on its partition (staged only when they moved);
2. the staged writes go to the table's changelog (explicit partition = the input partition),
   but for the due-time index, which RocksDB alone keeps (`streams.tables`);
3. the batch's epoch of records is sealed (`streams.epochs`), and the engine goes on while
   they are acknowledged;
4. once every record of the batch is acknowledged, one atomic RocksDB WriteBatch per partition
   stores state + input offsets + the changelog offset (batches in order: at the first poll that
   finds the batch acknowledged, else at the next commit, before a revocation, and when the
   worker stops); a partition whose batch holds an erasure (`micromarketing forget`) then has
   the deleted keys compacted out of its files (`TableStore.compact_erased`, in a thread: one
   compaction per batch however many erasures it holds, never on the per-event path);
5. the input offsets are committed to the intake's group (for lag tools only: the state holds
   the truth), and the forwards consumed through Faust are acked (Faust commits them later).

A crash before 4 replays the batch from the last durable state: the same outputs with the same
ids come out again (at-least-once records, exactly-once ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from confluent_kafka import TopicPartition

from streams.epochs import Epoch, EpochProducer
from streams.runtime import Runtime
from streams.tables import TableStore, shared

Ack = Callable[[Any], Awaitable[Any]]


class Batch:
    """A committed batch not yet durable: its epoch of records, its staged RocksDB writes, the
    input offsets it reached and the Faust events to ack."""

    __slots__ = ("acks", "epoch", "erased", "offsets", "staged")

    def __init__(
        self,
        epoch: Epoch,
        staged: list[tuple[TableStore, dict[bytes, bytes | None]]],
        acks: list[Any],
        offsets: list[TopicPartition],
        erased: frozenset[int] = frozenset(),
    ) -> None:
        self.epoch = epoch
        self.staged = staged
        self.acks = acks
        self.offsets = offsets
        #: partitions whose staged writes hold erasures
        self.erased = erased


class Checkpoint:
    """Batches of applied records, made durable in order (steps 1-5 above)."""

    def __init__(
        self,
        runtime: Runtime,
        producer: EpochProducer,
        changelog: str,
        input_topics: Sequence[str],
        *,
        intake: Any,
        batch_max: int,
        commit_interval: float,
        catchup_max: int | None = None,
        catchup_interval: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.producer = producer
        self.changelog = changelog
        self.input_topics = frozenset(input_topics)
        self.intake = intake
        self.batch_max = batch_max
        self.commit_interval = commit_interval
        self.catchup_max = batch_max if catchup_max is None else catchup_max
        self.catchup_interval = commit_interval if catchup_interval is None else catchup_interval
        #: the stores of the partitions held (their RocksDB partition databases)
        self.stores: dict[int, TableStore] = {}
        #: acks the Faust events of forwards once their batch is durable (set by the shell)
        self.ack: Ack | None = None
        self._inflight: Batch | None = None
        self._uncommitted = 0
        self._acks: list[Any] = []
        self._dirty = False
        self._staged_offsets: dict[int, dict[str, int]] = {}
        self._erasures: dict[int, int] = {}  # each engine's erasure count at its last stage
        self._last_commit = time.monotonic()

    # ----------------------------------------------------------------- partitions
    def add(self, partition: int, store: TableStore) -> None:
        self.stores[partition] = store
        self._staged_offsets[partition] = dict(store.offsets)
        engine = self.runtime.engines.get(partition)
        self._erasures[partition] = engine.erasures if engine is not None else 0

    def drop(self, partition: int) -> None:
        """Forget a partition (after `settle`: nothing of it is pending)."""
        self.stores.pop(partition, None)
        self._staged_offsets.pop(partition, None)
        self._erasures.pop(partition, None)

    # ----------------------------------------------------------------- applied
    def applied(self, records: int, acks: Sequence[Any] = ()) -> None:
        """`records` were applied (their forwards' Faust events in `acks`)."""
        self._uncommitted += records
        self._acks.extend(acks)
        self._dirty = True

    def changed(self) -> None:
        """The engines changed without a record (wall-clock timers): commit them too."""
        self._dirty = True

    @property
    def pending(self) -> bool:
        """Anything applied and not yet committed."""
        return self._dirty or bool(self._uncommitted or self._acks)

    # ----------------------------------------------------------------- the protocol
    async def commit(self) -> None:
        """Steps 1-3 for what was applied since the last commit, then 4-5 for the batch before
        it (acknowledged by now, as a rule)."""
        acks, self._acks = self._acks, []
        self._uncommitted = 0
        self._dirty = False
        self._last_commit = time.monotonic()
        previous = self._inflight
        self._inflight = self._stage(acks)
        if previous is not None:
            await self._settle(previous)

    async def settle(self) -> None:
        """Make everything applied durable (before partitions are revoked, and on stop)."""
        if self.pending:
            await self.commit()
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await self._settle(inflight)

    async def poll(self, backlog: bool = False) -> None:
        """Settle the batch in flight once it is acknowledged (no wait), and commit what was
        applied when `commit_interval` has passed or `batch_max` records wait (`backlog`: the
        last drain applied a full release, more is waiting: `catchup_interval`, `catchup_max`)."""
        inflight = self._inflight
        future = inflight.epoch.future if inflight is not None else None
        if inflight is not None and future is not None and future.done():
            self._inflight = None
            await self._settle(inflight)
        if not self.pending:
            return
        most, interval = (
            (self.catchup_max, self.catchup_interval)
            if backlog
            else (self.batch_max, self.commit_interval)
        )
        if self._uncommitted >= most or time.monotonic() - self._last_commit >= interval:
            await self.commit()

    def _stage(self, acks: list[Any]) -> Batch:
        """Steps 1-3."""
        staged: list[tuple[TableStore, dict[bytes, bytes | None]]] = []
        offsets: list[TopicPartition] = []
        erased: set[int] = set()
        for p in sorted(self.stores):
            store = self.stores[p]
            engine = self.runtime.engines.get(p)
            if engine is None:
                continue
            engine.flush()  # 1
            applied = self.runtime.offsets(p)
            if applied != self._staged_offsets.get(p):
                store.stage_offsets(applied)
                self._staged_offsets[p] = applied
            offsets.extend(
                TopicPartition(topic, p, off + 1)
                for topic, off in applied.items()
                if topic in self.input_topics
            )
            writes = store.drain()
            if not writes:
                continue
            if engine.erasures != self._erasures.get(p, 0):
                self._erasures[p] = engine.erasures
                erased.add(p)
            for key, value in shared(writes):  # 2
                self.producer.produce(self.changelog, key, value, partition=p)
            staged.append((store, writes))
        return Batch(self.producer.seal(), staged, acks, offsets, frozenset(erased))  # 3

    async def _settle(self, batch: Batch) -> None:
        """Steps 4-5."""
        epoch = batch.epoch
        await epoch.acknowledged()
        for store, writes in batch.staged:  # 4
            store.write(writes, epoch.offsets.get((self.changelog, store.partition)))
        for store, writes in batch.staged:
            if store.partition in batch.erased:
                await asyncio.to_thread(store.compact_erased, writes)
        if batch.offsets:  # 5
            with contextlib.suppress(Exception):
                self.intake.commit(offsets=batch.offsets, asynchronous=True)
        if batch.acks and self.ack is not None:
            for event in batch.acks:
                await self.ack(event)
