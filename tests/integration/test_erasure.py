"""Erasure on local disk: after `forget`, a raw byte search of the worker's data directory finds
neither the consumer's id, its alias nor its traits, and the changelog holds tombstones.

The state goes through the worker's own code paths: the runtime, the checkpoint's commit
protocol with a real epoch producer on the embedded broker, and TableStore on a RocksDB opened
by Faust's RocksDBOptions as the worker's table opens it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from faust.stores.rocksdb import RocksDBOptions

from connectors.broker import EmbeddedBroker, ensure_topics
from streams.checkpoint import Checkpoint
from streams.engine.core import Engine
from streams.engine.outputs import Forget
from streams.epochs import EpochProducer
from streams.runtime import Runtime
from streams.tables import TableStore, erasable
from tests.unit.engine.helpers import MIN, T0, identify, rules, track

RULES = """
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    offer: x
"""
# SST blocks are Snappy-compressed: a string sharing 4 bytes with earlier data of its block may be
# stored as a back-reference, so the needles share no 4 bytes with anything else written.
SECRET_ID = "Zq8vXw3Kp0Lm"
SECRET_ALIAS = "Hy5tRb7Nc2Jd"
SECRET_EMAIL = "Uf4gWs9Qe6Ta@Vk1oPx.invalid"
KEPT_ID = "Bm3cGj8Ld5Ri"


def _open(path: Path) -> Any:
    options = RocksDBOptions(use_rocksdict=True)
    erasable(options)
    return options.open(path)


def _found(data_dir: Path, needle: str) -> list[str]:
    raw = needle.encode()
    return sorted(f.name for f in data_dir.rglob("*") if f.is_file() and raw in f.read_bytes())


def _events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        identify(KEPT_ID, T0, email="kept@shop.example"),
        track(KEPT_ID, "Product Added", T0 + 1, product_id="p"),
    ]
    for i in range(300):
        events.append(identify(f"filler-{i:04d}", T0 + i, email=f"filler-{i}@shop.example"))
    events.append(identify(None, T0 + 400, anon=SECRET_ALIAS))
    events.append(identify(SECRET_ID, T0 + 401, anon=SECRET_ALIAS, email=SECRET_EMAIL))
    events.append(track(SECRET_ID, "Product Added", T0 + 402, product_id="p"))
    return events


def _changelog(bootstrap: str, topic: str, group: str) -> dict[bytes, bytes | None]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    last: dict[bytes, bytes | None] = {}
    idle = 0
    while idle < 5:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            continue
        if msg.error() is None:
            idle = 0
            last[msg.key() or b""] = msg.value()
    consumer.close()
    return last


def test_forget_leaves_no_id_alias_or_trait_in_the_data_dir(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    changelog = f"{unique}.state-changelog"
    ensure_topics(broker.bootstrap, [changelog], 1)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = TableStore(_open(data_dir / "state-0.db"), 0)
    runtime = Runtime(rules(RULES), partitions=1)
    runtime.add(0, Engine(rules(RULES), store, 0))
    producer = EpochProducer(broker.bootstrap, track=[changelog])
    checkpoint = Checkpoint(runtime, producer, changelog, (), intake=None, batch_max=10**6,
                            commit_interval=3600.0)
    checkpoint.add(0, store)

    async def scenario() -> None:
        events = _events()
        for n, ev in enumerate(events):
            runtime.process(ev)
            checkpoint.applied(1)
            if n % 100 == 99:  # several commits, some memtables written to SST files
                await checkpoint.settle()
                store.db.flush(True)
        runtime.advance(T0 + 10 * MIN)  # a later event time: the consumers' timers are kept
        await checkpoint.settle()
        store.db.flush(True)  # (SST files, not only the write-ahead log)
        for needle in (SECRET_ID, SECRET_ALIAS, SECRET_EMAIL, KEPT_ID):
            assert _found(data_dir, needle), needle  # the search finds what is there
        runtime.receive(Forget(SECRET_ID))
        checkpoint.applied(1)
        await checkpoint.settle()

    try:
        asyncio.run(scenario())
        assert store.get("c/" + SECRET_ID) is None and store.get("a/" + SECRET_ALIAS) is None
        for needle in (SECRET_ID, SECRET_ALIAS, SECRET_EMAIL):
            assert _found(data_dir, needle) == [], needle
        assert _found(data_dir, KEPT_ID)
        assert store.get("c/" + KEPT_ID) is not None
        assert [k for k, _ in store.scan("t/", "t0", 10) if KEPT_ID in k]
        # the changelog: the latest record of each erased key is a tombstone (null value)
        last = _changelog(broker.bootstrap, changelog, unique)
        assert ("c/" + SECRET_ID).encode() in last and last[("c/" + SECRET_ID).encode()] is None
        assert last[("a/" + SECRET_ALIAS).encode()] is None
        assert last[("c/" + KEPT_ID).encode()] is not None
    finally:
        producer.close()
        store.db.close()
