"""The profile view: consumer_id -> {email, consented}, read from the `profiles` topic.

The reader uses assign() (no group, nothing committed) and always starts from the beginning, so
every deliverer rebuilds the full view. The loop drains it before each delivery try.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from connectors.deliver.codec import DecodeError, Decoder, Record, decode_record
from connectors.deliver.sender import Profile

log = logging.getLogger(__name__)


class ProfileView:
    """Latest known email and consent per consumer (last record wins, per key order)."""

    def __init__(self) -> None:
        self._profiles: dict[str, Profile] = {}

    def __len__(self) -> int:
        return len(self._profiles)

    def get(self, consumer_id: str) -> Profile | None:
        return self._profiles.get(consumer_id)

    def apply(self, record: Record) -> None:
        """Apply one profile record; fields it lacks keep their previous value."""
        cid = record.get("consumer_id")
        if not isinstance(cid, str) or not cid:
            raise DecodeError("profile record without consumer_id")
        prev = self._profiles.get(cid, Profile())
        email = record.get("email", prev.email)
        consented = record.get("consented", prev.consented)
        self._profiles[cid] = Profile(
            email=email if isinstance(email, str) and email else None,
            consented=bool(consented),
        )

    def forget(self, consumer_id: str) -> None:
        """Drop a consumer (a tombstone on the topic: erasure)."""
        self._profiles.pop(consumer_id, None)


class ProfileReader:
    """Keeps a `ProfileView` up to date from the profiles topic."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        decode: Decoder = decode_record,
        view: ProfileView | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.view = view if view is not None else ProfileView()
        self._decode = decode
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            # Required by librdkafka, never joined: we only assign() and never commit.
            "group.id": f"micromarketing-deliver-profiles-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            **(extra_config or {}),
        }
        self._consumer = Consumer(config)
        md = self._consumer.list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        partitions = sorted(meta.partitions) if meta is not None and meta.error is None else []
        if not partitions:
            log.warning("profiles topic %r not found: no consent or email known", topic)
        self._pending_eof = set(partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    @property
    def caught_up(self) -> bool:
        """Every partition has been read to its end at least once."""
        return not self._pending_eof

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._pending_eof.discard(msg.partition())
            else:
                log.warning("profiles consumer: %s", err)
            return
        value = msg.value()
        if value is None:
            key = msg.key()
            if key:
                self.view.forget(key.decode() if isinstance(key, bytes) else str(key))
            return
        try:
            self.view.apply(self._decode(self.topic, value))
        except DecodeError as exc:
            log.warning(
                "skipping bad profile record at %s/%s: %s", msg.partition(), msg.offset(), exc
            )

    def poll(self, timeout: float = 0.0, batch: int = 500) -> int:
        """Apply what is available now (waiting up to `timeout` for the first batch)."""
        n = 0
        while True:
            msgs = self._consumer.consume(batch, timeout if n == 0 else 0.0)
            for msg in msgs:
                self._handle(msg)
            n += len(msgs)
            if len(msgs) < batch:
                return n

    def catch_up(self, timeout: float = 10.0, stop: threading.Event | None = None) -> bool:
        """Read until every partition reached its end once, or `timeout`; return caught_up."""
        deadline = time.monotonic() + timeout
        while not self.caught_up and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            self.poll(timeout=0.2)
        if not self.caught_up:
            log.warning("profiles not caught up after %.1fs; going on", timeout)
        return self.caught_up

    def close(self) -> None:
        self._consumer.close()
