"""The contract table of tests/unit/test_contract.py through the real broker: the collector
(a real aiohttp server) and a schema-aware producer write the odd events; the worker's Flow, the
topic replay and the file replay read them; `deliver` reads the Avro triggers the worker writes.
One mock Schema Registry serves the whole process, as MICROMARKETING_SCHEMA_REGISTRY would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import orjson
import pytest
from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from connectors.broker import EmbeddedBroker, ensure_topics, free_port
from connectors.collector.config import CollectorConfig
from connectors.collector.server import create_app, make_runner
from connectors.deliver.loop import Deliverer, DeliverTopics
from connectors.sources.topics import read_range
from streams import contract
from streams.contract import (
    ALL_TOPICS,
    DEAD_LETTERS,
    PREFIX_ENV,
    SCHEMA_REGISTRY_ENV,
    input_topic_names,
    partition_of,
    record_key,
    timestamp_ms,
    topic_name,
)
from streams.engine.outputs import Outputs
from streams.engine.rules import RuleSet, load_rules
from streams.flow import Rec
from streams.replay import OutputFiles, replay
from streams.replay_topics import Feed
from streams.runtime import Runtime
from tests.conftest import EXAMPLES
from tests.unit.test_contract import (
    BAD_AVRO,
    PARTITIONS,
    PREFIX,
    ROWS,
    TIME,
    _engine_observed,
    _lines,
    _Recorder,
    applies,
    check,
    close_flow,
    make_flow,
)

pytestmark = pytest.mark.integration

#: the rows a real producer can write (a record on the wrong partition: the unit table)
TABLE = [r for r in ROWS if r.partition is None]
BY_COLLECTOR = [r for r in TABLE if applies("collector", r)]
BY_PRODUCER = [r for r in TABLE if not applies("collector", r)]


class Msg(NamedTuple):
    base: str
    partition: int
    offset: int
    key: bytes | None
    ms: int
    value: bytes


async def _post(config: CollectorConfig, body: dict[str, Any]) -> int:
    runner = make_runner(create_app(config), config)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/v1/batch", json=body) as resp,
        ):
            return resp.status
    finally:
        await runner.cleanup()


def read_all(bootstrap: str, bases: list[str], count: int, timeout: float = 20.0) -> list[Msg]:
    """`count` records of the (prefixed) topics `bases`, from the beginning."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "contract-reader"})
    consumer.assign(
        [TopicPartition(topic_name(b), p, OFFSET_BEGINNING) for b in bases for p in range(4)]
    )
    base_of = {topic_name(b): b for b in bases}
    found: list[Msg] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            for m in consumer.consume(100, 0.5):
                if m.error() is None:
                    found.append(
                        Msg(
                            base_of[m.topic() or ""], m.partition() or 0, m.offset() or 0,
                            m.key(), m.timestamp()[1], m.value() or b"",
                        )
                    )
    finally:
        consumer.close()
    assert len(found) == count, found
    return sorted(found, key=lambda m: (m.ms, m.base, m.partition, m.offset))


@pytest.fixture
def rules() -> RuleSet:
    return load_rules(EXAMPLES / "rules.yaml")


def test_every_path_agrees_on_the_odd_events(
    broker: EmbeddedBroker,
    unique: str,
    tmp_path: Path,
    rules: RuleSet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PREFIX_ENV, f"contract-{unique}-")
    monkeypatch.setenv(SCHEMA_REGISTRY_ENV, f"mock://contract-it-{unique}")
    contract.reset_codec()
    bootstrap = broker.bootstrap
    ensure_topics(bootstrap, [topic_name(t) for t in ALL_TOPICS], partitions=PARTITIONS)

    # writers: the collector over HTTP, and a schema-aware producer for what it cannot send
    config = CollectorConfig(bootstrap=bootstrap)
    assert asyncio.run(_post(config, {"batch": [r.event for r in BY_COLLECTOR]})) == 200
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for row in BY_PRODUCER:
        producer.produce(
            topic_name(row.topic),
            contract.encode_value(row.topic, row.event) if row.avro else orjson.dumps(row.event),
            record_key(row.event),
            timestamp=timestamp_ms(TIME),
        )
    producer.produce(topic_name("clickstream"), BAD_AVRO, b"bad", partition=1,
                     timestamp=timestamp_ms(TIME))
    assert producer.flush(10) == 0

    applied = [r for r in TABLE if r.reason is None]
    refused = [r for r in BY_COLLECTOR if r.reason is not None]
    inputs = read_all(bootstrap, list(contract.INPUT_TOPICS), len(applied) + 1)
    by_key = {m.key.decode(): m for m in inputs if m.key and m.key != b"bad"}
    for row in applied:  # topic, key, Kafka timestamp and partition as the contract says
        assert row.key is not None
        m = by_key[row.key]
        assert (m.base, m.ms, m.partition) == (
            row.topic, timestamp_ms(TIME), partition_of(row.key, PARTITIONS)
        )
    collector_dead = [
        contract.decode_value(DEAD_LETTERS, m.value)
        for m in read_all(bootstrap, [DEAD_LETTERS], len(refused))
    ]
    for row in refused:
        user = row.event["userId"]
        (letter,) = [d for d in collector_dead if orjson.loads(d["raw"])["userId"] == user]
        check({"reason": letter["reason"]}, row)
        assert letter["source"] == "collector"

    # the worker: its per-record path over the records as read
    flow, dbs = make_flow(rules, tmp_path / "flow")
    try:
        flow.apply(
            [Rec(PREFIX + m.base, m.partition, m.offset, m.ms / 1000, m.value) for m in inputs]
        )
        queued = list(flow.producer._queued)
        worker_engines = flow.runtime.engines
        for row in applied:
            check(_engine_observed(row, [], worker_engines), row)
    finally:
        close_flow(flow, dbs)
    worker_dead = [
        contract.decode_value(DEAD_LETTERS, v or b"")
        for t, v, _, _ in queued if t == PREFIX + DEAD_LETTERS
    ]

    # the topic replay: the reader over the time range, the replay loop
    records, counts = read_range(bootstrap, TIME - 1, TIME + 1, input_topic_names())
    router = Runtime(rules, PARTITIONS)
    with OutputFiles(tmp_path / "topics") as files:
        report = replay(Feed(files, None)(records), router, files)
    topic_dead = _lines(tmp_path / "topics" / "dead_letters.jsonl")
    assert counts == dict.fromkeys(input_topic_names(), PARTITIONS)
    assert report["events"] == len(applied)
    for row in applied:
        check(_engine_observed(row, [], router.engines), row)
    same = ("source", "offset", "raw", "reason", "message")
    assert [{k: d[k] for k in same} for d in topic_dead] == [
        {k: d[k] for k in same} for d in worker_dead
    ]
    (bad,) = worker_dead
    assert (bad["source"], bad["reason"]) == ("clickstream", "invalid_json")
    assert bad["message"].startswith("undecodable value")

    # the file replay of the same events as JSON lines
    file_router = Runtime(rules, PARTITIONS)
    with OutputFiles(tmp_path / "file") as files:
        lines = [("events.jsonl", str(i), orjson.dumps(r.event)) for i, r in enumerate(TABLE)]
        replay(lines, file_router, files)
    file_dead = _lines(tmp_path / "file" / "dead_letters.jsonl")
    for row in applied:
        check(_engine_observed(row, [], file_router.engines), row)
    assert sorted(d["reason"] for d in file_dead) == sorted(
        d["reason"] for d in collector_dead
    )

    # deliver: an Avro trigger as the worker writes it, through the real broker
    trigger = {
        "trigger_id": f"t-{unique}", "kind": "retargeting", "campaign": "cart-abandonment",
        "consumer_id": "0", "fired_at": "2024-05-01T12:30:00.000Z",
        "due_at": "2024-05-01T12:30:00.000Z", "offer": "free-shipping",
        "products": ["road-bike-900"], "segments": [], "holdout": False, "reason": None,
        "attribution_until": "2024-05-08T12:30:00.000Z", "rules_version": "v",
    }
    out = Outputs()
    out.triggers.append(trigger)
    flow, dbs = make_flow(rules, tmp_path / "flow2")
    try:
        flow.emit(out)
        ((topic, value, key, _),) = flow.producer._queued
    finally:
        close_flow(flow, dbs)
    assert value is not None and contract.is_confluent_avro(value)
    producer.produce(topic_name(topic.removeprefix(PREFIX)), value, key)
    assert producer.flush(10) == 0
    sender = _Recorder()
    deliverer = Deliverer(bootstrap, sender, group=f"contract-{unique}",
                          topics=DeliverTopics.prefixed())
    stop = threading.Event()
    timer = threading.Timer(30, stop.set)
    timer.start()
    try:
        assert deliverer.run_until(stop, max_messages=1, idle_timeout=15) == 1
    finally:
        timer.cancel()
    assert sender.sent == [trigger]
    contract.reset_codec()

