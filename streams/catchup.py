"""Read a partition's changelog past what Faust recovered, and notice a lost changelog.

Faust's recovery stops at the end offset ListOffsets reports; Tansu under-reports it after
multi-record batches. A Fetch reports the true high watermark, so we read on with
`enable.partition.eof` and apply what Faust missed.

A local state can also be *ahead* of its changelog: the broker lost the log (the embedded
broker keeps everything in memory, so a broker restart with the same `--data-dir` does this) or
the topic was recreated. Kafka answers the fetch with OFFSET_OUT_OF_RANGE; Tansu answers with
no records and a high watermark below the offset asked for. Either way the state no longer
matches any log the broker holds, and its input offsets point past the inputs, so the worker
would wait forever for records that will never come. As Kafka Streams does with a corrupted
task, we wipe that partition's local state and restore it from the changelog's beginning.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.tables import TableStore

log = logging.getLogger(__name__)

_EOF = KafkaError._PARTITION_EOF
_RESET = KafkaError._AUTO_OFFSET_RESET
_UNKNOWN = KafkaError.UNKNOWN_TOPIC_OR_PART

Records = list[tuple[bytes, bytes | None, int]]


class ChangelogReader:
    """Reads changelog partitions from each store's persisted offset to the true end."""

    def __init__(self, bootstrap: str, group: str, changelog: str, timeout: float = 60.0) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.changelog = changelog
        self.timeout = timeout

    def catch_up(self, stores: list[TableStore]) -> dict[int, int]:
        """Apply the records past each store's persisted offset (blocking); a store ahead of its
        changelog is wiped and restored from the beginning. Returns records applied per
        partition."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "error",
                "fetch.wait.max.ms": 10,
            }
        )
        by_part = {s.partition: s for s in stores}
        records: dict[int, Records] = {p: [] for p in by_part}
        start: dict[int, int] = {}
        try:
            tps = []
            for s in stores:
                persisted = s.persisted_changelog_offset()
                start[s.partition] = 0 if persisted is None else persisted + 1
                off = OFFSET_BEGINNING if persisted is None else persisted + 1
                tps.append(TopicPartition(self.changelog, s.partition, off))
            consumer.assign(tps)
            pending = set(by_part)
            deadline = time.monotonic() + self.timeout
            while pending and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None:
                    for p in self._ahead(consumer, pending, start):
                        self._restart(consumer, by_part[p], records, start)
                    continue
                err = msg.error()
                part = msg.partition()
                if err is None:
                    if part in records:
                        offset = int(msg.offset() or 0)
                        records[part].append((msg.key() or b"", msg.value(), offset))
                elif err.code() == _EOF:
                    pending.discard(part)
                elif err.code() == _RESET and part in by_part:
                    self._restart(consumer, by_part[part], records, start)
                elif err.code() == _UNKNOWN:
                    pending.clear()  # no changelog yet: nothing to catch up
                else:
                    log.warning("changelog catch-up: %s", err)
            if pending:
                log.warning("changelog catch-up: no end seen for partitions %s", sorted(pending))
        finally:
            consumer.close()
        for p, recs in records.items():
            by_part[p].apply_changelog(recs)
        return {p: len(r) for p, r in records.items()}

    def _ahead(self, consumer: Consumer, pending: set[int], start: dict[int, int]) -> list[int]:
        """Partitions whose last fetch reported a high watermark below our start offset."""
        ahead = []
        for p in sorted(pending):
            if start[p] == 0:
                continue
            try:
                _, hw = consumer.get_watermark_offsets(
                    TopicPartition(self.changelog, p), cached=True
                )
            except Exception:  # no fetch answered yet
                continue
            if hw is not None and 0 <= hw < start[p]:
                ahead.append(p)
        return ahead

    def _restart(
        self,
        consumer: Consumer,
        store: TableStore,
        records: dict[int, Records],
        start: dict[int, int],
    ) -> None:
        p = store.partition
        log.warning(
            "partition %d: the local state is at changelog offset %d but the broker's %s ends "
            "before it (the broker lost its log, e.g. the embedded broker restarted, or the topic "
            "was recreated): wiping the local state of partition %d and restoring it from the "
            "changelog",
            p,
            start[p] - 1,
            self.changelog,
            p,
        )
        store.wipe()
        records[p] = []
        start[p] = 0
        tp = TopicPartition(self.changelog, p)
        consumer.incremental_unassign([tp])
        consumer.incremental_assign([TopicPartition(self.changelog, p, OFFSET_BEGINNING)])
