"""`micromarketing tail` against the embedded broker, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from connectors.broker import EmbeddedBroker, ensure_topics, free_port
from connectors.tail import near_miss
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    for rec in records:
        producer.produce(topic, key=str(rec["consumer_id"]).encode(), value=orjson.dumps(rec))
    assert producer.flush(10) == 0


def _tail(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", "tail", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def _records(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"consumer_id": f"u-{tag}-{i}", "segment": "champions", "change": "entered",
         "at": f"2024-05-01T11:30:0{i}.000Z", "event": "Audience Entered", "rules_version": None}
        for i in range(n)
    ]


def _lines(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def _by_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: str(r["consumer_id"]))


def test_tail_from_beginning_prints_json_lines(broker: EmbeddedBroker, unique: str) -> None:
    topic = f"tail-{unique}"
    ensure_topics(broker.bootstrap, [topic], partitions=2)
    records = _records(5, "a")
    _produce(broker.bootstrap, topic, records)
    proc = _tail(topic, "--from-beginning", "--max", "3", "--broker", broker.bootstrap)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = _lines(proc.stdout)
    assert len(lines) == 3
    assert all(line in records for line in lines)


def test_tail_stops_after_idle_timeout(broker: EmbeddedBroker, unique: str) -> None:
    topic = f"tail-idle-{unique}"
    ensure_topics(broker.bootstrap, [topic], partitions=3)
    records = _records(4, "b")
    _produce(broker.bootstrap, topic, records)
    proc = _tail(topic, "--from-beginning", "--timeout", "2", "--broker", broker.bootstrap)
    assert proc.returncode == 0, proc.stderr.decode()
    assert _by_id(_lines(proc.stdout)) == _by_id(records)


def test_tail_without_from_beginning_prints_only_new_records(
    broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"tail-new-{unique}"
    ensure_topics(broker.bootstrap, [topic], partitions=2)
    old, new = _records(6, "old"), _records(3, "new")
    _produce(broker.bootstrap, topic, old)
    time.sleep(0.05)  # message timestamps are in ms: keep the old ones strictly before the start
    proc = subprocess.Popen(
        [sys.executable, "-m", "micromarketing", "tail", topic, "--max", "3", "--timeout", "30",
         "--broker", broker.bootstrap],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline().decode()
        assert "tailing" in banner and "from now" in banner, banner
        _produce(broker.bootstrap, topic, new)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert _by_id(_lines(out)) == _by_id(new)


def test_tail_without_a_broker_fails_clearly() -> None:
    port = free_port()
    proc = _tail("segment-changes", "--broker", f"127.0.0.1:{port}")
    assert proc.returncode == 1
    assert f"no Kafka broker answers on 127.0.0.1:{port}" in proc.stderr.decode()
    assert proc.stdout == b""


def test_tail_of_a_missing_topic_fails_clearly(broker: EmbeddedBroker, unique: str) -> None:
    proc = _tail(f"missing-{unique}", "--broker", broker.bootstrap, "--timeout", "1")
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr.decode()


def test_tail_of_a_misspelt_topic_suggests_the_nearest_one(broker: EmbeddedBroker) -> None:
    ensure_topics(broker.bootstrap, ["segment-changes"])
    proc = _tail("segment-chnages", "--broker", broker.bootstrap, "--timeout", "1")
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == [
        "micromarketing tail: topic 'segment-chnages' does not exist; "
        "did you mean 'segment-changes'?"
    ]


def test_near_miss_prefers_a_case_slip_then_the_closest_name() -> None:
    known = ["segment-changes", "triggers.winback", "triggers.retargeting", "dead-letters"]
    assert near_miss("Dead-Letters", known) == "dead-letters"
    assert near_miss("trigers.winback", known) == "triggers.winback"
    assert near_miss("orders", known) is None


def test_tail_of_one_of_our_topics_not_created_yet_says_who_creates_it(
    broker: EmbeddedBroker, unique: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "micromarketing", "tail", "segment-changes", "--timeout", "1",
         "--broker", broker.bootstrap],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "MICROMARKETING_TOPIC_PREFIX": f"tl-{unique}-"},
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == [
        f"micromarketing tail: topic 'tl-{unique}-segment-changes' does not exist yet (a worker "
        "or `micromarketing broker` creates our topics when it starts)"
    ]
