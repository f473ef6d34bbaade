"""The worker's Prometheus metrics: a custom collector that reads the worker's plain counters
(`streams.web.meter`, `streams.flow.Flow.stats`, the runtime's applied offsets) when scraped.

Nothing here runs per event. Input records by topic are counted from the applied offsets
(their advance between scrapes, per partition held), lag from the intake's high watermarks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streams.web.meter import Meter, pending_timers

NS = "micromarketing"


class Worker(Protocol):
    """What the collector reads of a worker (`streams.agents.Pipeline`)."""

    runtime: Any  # streams.runtime.Runtime
    flow: Any  # streams.flow.Flow
    intake: Any  # the confluent-kafka Consumer of the input partitions
    meter: Meter
    input_topics: list[str]

    @property
    def commits(self) -> int: ...

    def stores(self) -> dict[int, Any]: ...


class WorkerCollector(Collector):
    """Collects the metrics of one worker at scrape time (runs on the worker's event loop)."""

    def __init__(self, worker: Worker, prefix: str) -> None:
        self.worker = worker
        self.prefix = prefix
        #: input topic (base name) -> records applied, summed over the partitions ever held
        self._applied: dict[str, int] = {}
        #: (topic, partition) -> offset at the last scrape
        self._seen: dict[tuple[str, int], int] = {}

    def _base(self, topic: str) -> str:
        return topic[len(self.prefix):] if topic.startswith(self.prefix) else topic

    def _inputs(self) -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        w = self.worker
        records = CounterMetricFamily(
            f"{NS}_input_records", "Input records applied, by input topic (rate = events/s)",
            labels=["topic"],
        )
        lag = GaugeMetricFamily(
            f"{NS}_consumer_lag", "Input records not yet applied, per input partition held",
            labels=["topic", "partition"],
        )
        seen: dict[tuple[str, int], int] = {}  # (partitions no longer held are forgotten)
        for p in sorted(w.runtime.engines):
            for topic in w.input_topics:
                applied = w.runtime.applied(topic, p)
                key = (topic, p)
                last = self._seen.get(key, w.meter.started.get(key, -1))
                if applied > last:
                    base = self._base(topic)
                    self._applied[base] = self._applied.get(base, 0) + applied - last
                seen[key] = applied
                hw = _high_watermark(w.intake, topic, p)
                if hw is not None:
                    lag.add_metric([self._base(topic), str(p)], max(0, hw - (applied + 1)))
        self._seen = seen
        for topic in w.input_topics:
            base = self._base(topic)
            records.add_metric([base], self._applied.get(base, 0))
        return records, lag

    def collect(self) -> Iterator[Metric]:
        w, m = self.worker, self.worker.meter
        yield from self._inputs()

        latency = HistogramMetricFamily(
            f"{NS}_event_to_output_latency_seconds",
            "Seconds from an input record's Kafka timestamp (its event time) to its output "
            "records being queued, per output record",
        )
        latency.add_metric([], m.latency.cumulative(), m.latency.sum)
        yield latency

        sizes = GaugeMetricFamily(
            f"{NS}_segment_members", "Consumers in each segment (partitions held)",
            labels=["segment"],
        )
        for seg, n in sorted(m.segment_sizes().items()):
            sizes.add_metric([seg], n)
        yield sizes

        changes = CounterMetricFamily(
            f"{NS}_segment_changes", "Segment entries and exits", labels=["segment", "change"]
        )
        for (seg, change), n in sorted(m.segment_changes.items()):
            changes.add_metric([seg, change], n)
        yield changes

        triggers = CounterMetricFamily(
            f"{NS}_triggers", "Triggers emitted, by campaign and offer (holdout ones too)",
            labels=["campaign", "offer", "kind", "holdout"],
        )
        for labels, n in sorted(m.triggers.items()):
            triggers.add_metric(list(labels), n)
        yield triggers

        suppressed = CounterMetricFamily(
            f"{NS}_suppressions", "Suppressed triggers, by campaign and reason",
            labels=["campaign", "reason"],
        )
        for (campaign, reason), n in sorted(m.suppressions.items()):
            suppressed.add_metric([campaign, reason], n)
        yield suppressed

        dead = CounterMetricFamily(
            f"{NS}_dead_letters", "Dead letters, by reason", labels=["reason"]
        )
        for reason, n in sorted(m.dead_letters.items()):
            dead.add_metric([reason], n)
        yield dead

        outputs = CounterMetricFamily(
            f"{NS}_output_records", "Records produced, by output topic", labels=["topic"]
        )
        for name, n in sorted(w.flow.stats.items()):
            if name not in ("events", "redelivered", "skipped", "forced_releases"):
                outputs.add_metric([name], n)
        yield outputs

        timers = GaugeMetricFamily(
            f"{NS}_pending_timers",
            "Entries of the due-time index (as of the last commit): trigger timers, segment "
            "re-checks, profile_ttl checks",
            labels=["kind"],
        )
        keys = GaugeMetricFamily(
            f"{NS}_state_keys", "Keys in the partition's state (RocksDB estimate)",
            labels=["partition"],
        )
        size = GaugeMetricFamily(
            f"{NS}_state_bytes", "Bytes of the partition's state (SST files and memtables)",
            labels=["partition"],
        )
        counts = {"trigger": 0, "recheck": 0, "profile_ttl": 0}
        for p, store in sorted(w.stores().items()):
            for kind, n in pending_timers(store).items():
                counts[kind] += n
            db = getattr(store, "db", None)
            if db is not None:
                keys.add_metric([str(p)], _prop(db, "rocksdb.estimate-num-keys"))
                size.add_metric(
                    [str(p)],
                    _prop(db, "rocksdb.total-sst-files-size")
                    + _prop(db, "rocksdb.cur-size-all-mem-tables"),
                )
        for kind, n in counts.items():
            timers.add_metric([kind], n)
        yield timers
        yield keys
        yield size

        yield GaugeMetricFamily(
            f"{NS}_partitions", "Partitions this worker holds", value=len(w.runtime.engines)
        )
        yield CounterMetricFamily(
            f"{NS}_commits", "Checkpoint commits (batches made durable)", value=w.commits
        )
        yield CounterMetricFamily(
            f"{NS}_profile_snapshots",
            "Consumer snapshots published on the profiles topic",
            value=m.profile_snapshots,
        )
        yield CounterMetricFamily(
            f"{NS}_rebalances", "Partition assignments received", value=m.rebalances
        )


def _high_watermark(intake: Any, topic: str, partition: int) -> int | None:
    from confluent_kafka import TopicPartition

    try:
        _, hw = intake.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    except Exception:
        return None
    return int(hw) if hw is not None and hw >= 0 else None


def _prop(db: Any, name: str) -> int:
    try:
        return int(db.property_int_value(name) or 0)
    except Exception:
        return 0


def registry_for(worker: Worker, prefix: str) -> CollectorRegistry:
    """A registry of the worker's metrics and its process' (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker, prefix))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format of `registry`."""
    return generate_latest(registry)
