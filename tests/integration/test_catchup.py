"""The changelog catch-up against the embedded broker: records past the persisted offset are
applied, and a local state ahead of its changelog (the broker lost the log) is wiped and
restored instead of waiting for records that never come."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from rocksdict import Options, Rdict

from connectors.broker import EmbeddedBroker, ensure_topics
from streams.catchup import ChangelogReader
from streams.tables import TableStore

pytestmark = pytest.mark.integration


def _changelog(bootstrap: str, topic: str, partition: int, n: int) -> None:
    ensure_topics(bootstrap, [topic], 2)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        producer.produce(topic, key=f"c/{i}".encode(), value=f"v{i}".encode(), partition=partition)
    assert producer.flush(10) == 0


def _store(path: Path, partition: int) -> TableStore:
    return TableStore(Rdict(str(path), Options(raw_mode=True)), partition)


def test_records_past_the_persisted_offset_are_applied(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    topic = f"{unique}-changelog"
    _changelog(broker.bootstrap, topic, 1, 5)
    store = _store(tmp_path / "p1", 1)
    store.put("c/0", b"v0")
    store.put("c/1", b"v1")
    store.write(store.drain(), 1)  # Faust recovered offsets 0-1
    caught = ChangelogReader(broker.bootstrap, unique, topic).catch_up([store])
    assert caught == {1: 3}
    assert dict(store.items()) == {f"c/{i}": f"v{i}".encode() for i in range(5)}
    assert store.persisted_changelog_offset() == 4
    store.db.close()


def test_a_state_ahead_of_its_changelog_is_wiped_and_restored(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    topic = f"{unique}-changelog"
    _changelog(broker.bootstrap, topic, 0, 3)  # the broker holds offsets 0-2 only
    ahead = _store(tmp_path / "p0", 0)
    ahead.put("c/stale", b"from a log the broker no longer has")
    ahead.stage_offsets({"clickstream": 500})
    ahead.write(ahead.drain(), 9)
    fresh = _store(tmp_path / "p1", 1)  # no changelog record on partition 1: nothing to do
    started = time.monotonic()
    caught = ChangelogReader(broker.bootstrap, unique, topic, timeout=30).catch_up([ahead, fresh])
    assert time.monotonic() - started < 15  # not the timeout: the end was recognised
    assert caught == {0: 3, 1: 0}
    assert dict(ahead.items()) == {"c/0": b"v0", "c/1": b"v1", "c/2": b"v2"}
    assert ahead.offsets == {}  # the inputs are read again from the beginning
    assert ahead.persisted_changelog_offset() == 2
    assert dict(fresh.items()) == {} and fresh.persisted_changelog_offset() is None
    ahead.db.close()
    fresh.db.close()
