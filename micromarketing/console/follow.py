"""Follows the output topics from their beginning into a `ConsoleState`, in a thread.

The consumer joins no group (it assigns every partition itself and commits nothing), so it
never disturbs the workers; topics that do not exist yet are looked for again every
`REFRESH` seconds and read from their beginning once they appear.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from micromarketing.console.state import ConsoleState
from streams.contract import (
    CONTROL,
    CONVERSIONS,
    SEGMENT_CHANGES,
    SUPPRESSED,
    TRIGGER_TOPICS,
    CodecError,
    decode_value,
    topic_name,
)

log = logging.getLogger(__name__)

#: Base names of the topics the console reads.
FOLLOWED: tuple[str, ...] = (SEGMENT_CHANGES, *TRIGGER_TOPICS, SUPPRESSED, CONVERSIONS, CONTROL)
REFRESH = 5.0
BATCH = 500


class Follower(threading.Thread):
    """Reads `topics` (base names, under `prefix`) into `state`, holding `lock` per batch."""

    def __init__(
        self,
        bootstrap: str,
        state: ConsoleState,
        lock: threading.Lock,
        prefix: str | None = None,
        topics: Iterable[str] = FOLLOWED,
    ) -> None:
        super().__init__(name="console-follower", daemon=True)
        self.state = state
        self.lock = lock
        self.names = {topic_name(base, prefix): base for base in topics}
        self.assigned: set[str] = set()
        self.connected = False
        self._halt = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"micromarketing-console-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "allow.auto.create.topics": False,
                "enable.partition.eof": False,
                "log_level": 0,
            }
        )

    def stop(self) -> None:
        self._halt.set()

    def _refresh(self) -> None:
        """Assign, from the beginning, every partition of a followed topic not assigned yet."""
        try:
            meta = self.consumer.list_topics(timeout=5)
        except KafkaException as exc:
            self.connected = False
            log.warning("broker metadata: %s", exc)
            return
        self.connected = True
        new = [
            TopicPartition(name, p, OFFSET_BEGINNING)
            for name, tmeta in meta.topics.items()
            if name in self.names and name not in self.assigned and tmeta.error is None
            for p in tmeta.partitions
        ]
        if new:
            self.consumer.incremental_assign(new)
            self.assigned.update(tp.topic for tp in new)

    def run(self) -> None:
        next_refresh = 0.0
        try:
            while not self._halt.is_set():
                if time.monotonic() >= next_refresh:
                    self._refresh()
                    next_refresh = time.monotonic() + REFRESH
                if not self.assigned:
                    self._halt.wait(0.5)
                    continue
                msgs = self.consumer.consume(BATCH, 0.25)
                if msgs:
                    self._apply(msgs)
        finally:
            self.consumer.close()

    def _apply(self, msgs: list[Message]) -> None:
        now = time.time()
        with self.lock:
            for msg in msgs:
                if msg.error() is not None:
                    continue
                topic, value = msg.topic() or "", msg.value()
                base = self.names.get(topic)
                if base is None or value is None:
                    continue
                try:
                    record = (
                        orjson.loads(value) if base == CONTROL else decode_value(topic, value)
                    )
                except (CodecError, orjson.JSONDecodeError, ValueError):
                    self.state.undecodable += 1
                    continue
                if isinstance(record, dict):
                    self.state.apply(base, record, now)
                else:
                    self.state.undecodable += 1
