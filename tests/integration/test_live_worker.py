"""The live shell on the embedded broker: workers as subprocesses, compared with replay.

Each test isolates itself with a unique topic prefix (MICROMARKETING_TOPIC_PREFIX) and app id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.broker import EmbeddedBroker, ensure_topics
from streams.app import TABLE_NAME
from streams.contract import (
    ALL_TOPICS,
    DEAD_LETTERS,
    PROFILES,
    SEGMENT_CHANGES,
    TRIGGER_TOPICS,
)
from streams.engine.events import iso, parse_event
from streams.engine.partitioning import partition_for
from streams.live_io import BatchProducer, produce_events
from streams.tables import FAUST_OFFSET_KEY, OFFSETS_KEY

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"
PARTITIONS = 4


# ------------------------------------------------------------------------------------ helpers
def synthetic(n_consumers: int, n_events: int, seed: int, merges: bool = True) -> list[dict]:
    from connectors.sources.synthetic import generate_events

    events = list(generate_events(n_consumers, n_events, seed=seed))
    if not merges:
        events = [e for e in events if e.get("type") not in ("identify", "alias")]
    return events


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def replay(events_file: Path, out: Path) -> tuple[set[str], Counter[str]]:
    """Trigger ids and segment changes of `micromarketing replay` over the same file."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "micromarketing",
            "replay",
            str(events_file),
            "--rules",
            str(RULES),
            "--out",
            str(out),
            "--no-progress",
            "--partitions",
            str(PARTITIONS),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    triggers = {r["trigger_id"] for r in read_jsonl(out / "triggers.jsonl")}
    changes = Counter(canon(r) for r in read_jsonl(out / "segment_changes.jsonl"))
    return triggers, changes


def key_partition(ev: dict[str, Any]) -> int:
    from streams.engine.events import consumer_key

    return partition_for(consumer_key(ev) or "", PARTITIONS)


def event_time(ev: dict[str, Any]) -> float:
    return parse_event(ev).timestamp


def sparse(events: list[dict], solo: str) -> list[dict]:
    """`events` without those touching partition 3 (their key's or a merged id's), plus one
    `Product Added` of `solo` (a key of partition 3) a minute into the stream: partition 3
    holds one consumer, whose cart reminder is due when other partitions' events pass 30 min."""
    assert partition_for(solo, PARTITIONS) == 3

    def touches_3(ev: dict[str, Any]) -> bool:
        ids = (ev.get("userId"), ev.get("anonymousId"), ev.get("previousId"))
        return any(isinstance(i, str) and partition_for(i, PARTITIONS) == 3 for i in ids)

    kept = [e for e in events if not touches_3(e)]
    t0 = event_time(kept[0])
    added = {
        "type": "track",
        "event": "Product Added",
        "userId": solo,
        "messageId": f"{solo}-added",
        "timestamp": iso(t0 + 60),
        "properties": {"product_id": "p-solo", "price": 99.0, "category": "road"},
    }
    out = [*kept, added]
    out.sort(key=event_time)
    assert event_time(out[-1]) > t0 + 3600, "the stream must pass the reminder's due time"
    return out


def replay_files(out: Path) -> dict[str, list[bytes]]:
    """The output records of a replay, per topic, byte for byte (not profiles: replay's
    profiles.jsonl holds each consumer's features at the end, the topic snapshots as they go;
    their features are compared in test_worker_web)."""
    files = {
        "segment-changes": "segment_changes.jsonl",
        "dead-letters": "dead_letters.jsonl",
    }
    got = {base: (out / name).read_bytes().splitlines() for base, name in files.items()}
    for line in (out / "triggers.jsonl").read_bytes().splitlines():
        got.setdefault(f"triggers.{orjson.loads(line)['kind']}", []).append(line)
    return {k: v for k, v in got.items() if v}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def canon(record: dict[str, Any]) -> str:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


class Live:
    """Topics of one test (by prefix), workers as subprocesses and an output reader."""

    def __init__(self, broker: EmbeddedBroker, unique: str, tmp: Path) -> None:
        self.bootstrap = broker.bootstrap
        self.prefix = f"t{unique}."
        self.app_id = f"mm-{unique}"
        self.tmp = tmp
        self.env = dict(os.environ, MICROMARKETING_TOPIC_PREFIX=self.prefix)
        ensure_topics(self.bootstrap, [self.prefix + t for t in ALL_TOPICS], PARTITIONS)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.outputs: dict[str, list[dict]] = {}
        self.raw: dict[str, list[bytes]] = {}  # the values as produced, byte for byte
        self._consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "reader", "enable.auto.commit": False}
        )
        topics = [SEGMENT_CHANGES, *TRIGGER_TOPICS, DEAD_LETTERS, PROFILES]
        self._consumer.assign(
            [TopicPartition(self.prefix + t, p, 0) for t in topics for p in range(PARTITIONS)]
        )

    def produce(self, events: list[dict]) -> None:
        producer = BatchProducer(self.bootstrap)
        produce_events(producer, events, self.prefix)
        producer.flush_blocking()

    def produce_raw(
        self,
        base_topic: str,
        key: str,
        value: bytes,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        producer = BatchProducer(self.bootstrap)
        producer.produce(
            self.prefix + base_topic, key, value, partition=partition, timestamp_ms=timestamp_ms
        )
        producer.flush_blocking()

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "micromarketing",
                    "worker",
                    "--rules",
                    str(RULES),
                    "--app-id",
                    self.app_id,
                    "--data-dir",
                    str(self.tmp / name),
                    "--broker",
                    self.bootstrap,
                    "--no-wall-clock",
                    *extra,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            for msg in self._consumer.consume(1000, min(left, 0.2)):
                if msg.error() is not None:
                    continue
                topic, raw = msg.topic(), msg.value()
                assert topic is not None and raw is not None
                base = topic[len(self.prefix) :]
                self.outputs.setdefault(base, []).append(orjson.loads(raw))
                self.raw.setdefault(base, []).append(raw)

    def wait_for(
        self, done: Callable[[], bool], timeout: float, what: str, step: float = 0.5
    ) -> None:
        """Read outputs until `done()`, checking it every `step` seconds."""
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                for p in self.workers:
                    assert p.poll() is None, f"a worker exited with {p.returncode}"
                pytest.fail(f"timed out waiting for {what}; got {self.summary()}")
            self.poll(step)

    def records(self, base: str) -> list[dict]:
        return self.outputs.get(base, [])

    def trigger_ids(self) -> list[str]:
        return [r["trigger_id"] for t in TRIGGER_TOPICS for r in self.records(t)]

    def changes(self) -> Counter[str]:
        return Counter(canon(r) for r in self.records(SEGMENT_CHANGES))

    def summary(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.outputs.items()}

    def stop(self) -> None:
        for p in self.workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.workers:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._consumer.close()


@pytest.fixture
def live(broker: EmbeddedBroker, unique: str, tmp_path: Path) -> Iterator[Live]:
    lv = Live(broker, unique, tmp_path)
    try:
        yield lv
    finally:
        lv.stop()


# ------------------------------------------------------------------------------------ tests
def test_replay_equivalence_dead_letters_and_forget(live: Live, tmp_path: Path) -> None:
    """One worker: the same trigger ids and segment changes as replay (identity merges
    included); malformed messages become dead letters; `forget` erases a consumer."""
    events = synthetic(300, 4000, seed=11)
    rep_triggers, rep_changes = replay(
        write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay"
    )
    assert rep_triggers and rep_changes
    live.produce(events)
    live.produce_raw("clickstream", "bad-1", b"{not json")
    live.produce_raw("purchases", "bad-2", b'{"type": "track", "event": "Order Completed"}')
    live.start_worker("w1")
    live.wait_for(
        lambda: (
            len(set(live.trigger_ids())) >= len(rep_triggers)
            and sum(live.changes().values()) >= sum(rep_changes.values())
            and len(live.records(DEAD_LETTERS)) >= 2
        ),
        timeout=120,
        what="the outputs of replay",
    )
    live.poll(2.0)  # nothing more may come
    assert set(live.trigger_ids()) == rep_triggers
    assert len(live.trigger_ids()) == len(rep_triggers)
    assert live.changes() == rep_changes
    reasons = [r["reason"] for r in live.records(DEAD_LETTERS)]
    assert len(reasons) == 2, reasons

    # erasure: an identified consumer (a merge target, never merged away) gets an empty profile
    profiles = read_jsonl(tmp_path / "replay" / "profiles.jsonl")
    victim = next(p["consumer_id"] for p in reversed(profiles) if p.get("email"))
    before = len(live.records(PROFILES))
    out = subprocess.run(
        [sys.executable, "-m", "micromarketing", "forget", victim, "--broker", live.bootstrap],
        cwd=ROOT,
        env=live.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert victim in out.stdout
    live.wait_for(
        lambda: any(
            p["consumer_id"] == victim and p["email"] is None
            for p in live.records(PROFILES)[before:]
        ),
        timeout=30,
        what="the erasure profile",
    )

    def left_every_segment() -> bool:  # the exits may be read after the profile
        ours = [r["change"] for r in live.records(SEGMENT_CHANGES) if r["consumer_id"] == victim]
        return ours.count("entered") == ours.count("exited")

    live.wait_for(left_every_segment, timeout=30, what="the victim's segment exits")


def test_two_workers_share_partitions(live: Live, tmp_path: Path) -> None:
    """Two workers split the partitions and together give replay's outputs."""
    events = synthetic(300, 3000, seed=12, merges=False)
    rep_triggers, rep_changes = replay(
        write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay"
    )
    # The whole input is in the topics before either worker reads: a worker merging the three
    # input topics cannot tell a topic that is still being written from one that is idle, so
    # events still in flight would be (legitimately) late and the order would differ from
    # the file's.
    live.produce(events)
    live.start_worker("w1")
    live.start_worker("w2")
    live.wait_for(
        lambda: "engine ready" in live.log("w1") and "engine ready" in live.log("w2"),
        timeout=60,
        what="both workers to own partitions",
    )
    live.wait_for(
        lambda: (
            len(set(live.trigger_ids())) >= len(rep_triggers)
            and sum(live.changes().values()) >= sum(rep_changes.values())
        ),
        timeout=120,
        what="the outputs of replay",
    )
    live.poll(2.0)
    assert set(live.trigger_ids()) == rep_triggers
    assert live.changes() == rep_changes


def test_one_worker_gives_replays_output_bytes_on_a_sparse_partition(
    live: Live, tmp_path: Path
) -> None:
    """Partition 3 holds ONE consumer: its cart reminder fires when the other partitions'
    events pass its due time, in replay and live alike, and every output record of the worker
    is byte for byte one of replay's (identity merges included)."""
    solo = next(u for i in range(100) if partition_for(u := f"solo-{i}", PARTITIONS) == 3)
    events = sparse(synthetic(300, 3000, seed=14), solo)
    replay(write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay")
    expected = replay_files(tmp_path / "replay")
    assert any(orjson.loads(r)["consumer_id"] == solo for r in expected["triggers.retargeting"])
    live.produce(events)
    live.start_worker("w1")
    live.wait_for(
        lambda: all(len(live.raw.get(b, [])) >= len(v) for b, v in expected.items()),
        timeout=120,
        what="the outputs of replay",
    )
    live.poll(2.0)  # nothing more may come
    assert {b: sorted(v) for b, v in live.raw.items() if b != PROFILES} == {
        b: sorted(v) for b, v in expected.items()
    }


def test_two_workers_share_a_sparse_partition(live: Live, tmp_path: Path) -> None:
    """Two workers split the partitions, one of which holds a single consumer: together they
    give replay's records once each worker's stream has passed the reminder (a closing event
    on every partition: a worker's clock moves with the partitions it owns)."""
    solo = next(u for i in range(100) if partition_for(u := f"solo-{i}", PARTITIONS) == 3)
    events = sparse(synthetic(300, 3000, seed=15, merges=False), solo)
    end = event_time(events[-1]) + 60
    closers = [
        next(u for i in range(100) if partition_for(u := f"closer-{i}", PARTITIONS) == p)
        for p in range(PARTITIONS)
    ]
    events += [
        {"type": "page", "userId": u, "messageId": f"{u}-end", "timestamp": iso(end)}
        for u in closers
    ]
    replay(write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay")
    expected = replay_files(tmp_path / "replay")
    assert any(orjson.loads(r)["consumer_id"] == solo for r in expected["triggers.retargeting"])
    live.produce(events)
    live.start_worker("w1")
    live.start_worker("w2")
    live.wait_for(
        lambda: all(len(live.raw.get(b, [])) >= len(v) for b, v in expected.items()),
        timeout=120,
        what="the outputs of replay",
    )
    live.poll(2.0)
    assert {b: sorted(set(v)) for b, v in live.raw.items() if b != PROFILES} == {
        b: sorted(set(v)) for b, v in expected.items()
    }


def owned_by(live: Live, name: str) -> set[int]:
    """The partitions worker `name` last logged as its intake's."""
    lines = [ln for ln in live.log(name).splitlines() if "intake assigned partitions" in ln]
    return set(json.loads(lines[-1].rsplit("partitions ", 1)[1])) if lines else set()


def test_a_record_on_another_partition_than_its_keys_is_applied_on_its_keys(
    live: Live, tmp_path: Path
) -> None:
    """A producer put an `Order Completed` on a partition another worker owns (librdkafka's
    default partitioner does that): it goes through the forwards topic to the key's partition
    and disarms the cart reminder armed there; applied on the wrong engine, it would not."""
    live.start_worker("w1")
    live.wait_for(lambda: len(owned_by(live, "w1")) == PARTITIONS, 60, "w1 to own everything")
    live.start_worker("w2")
    live.wait_for(
        lambda: bool(owned_by(live, "w1") and owned_by(live, "w2"))
        and len(owned_by(live, "w1") | owned_by(live, "w2")) == PARTITIONS
        and not owned_by(live, "w1") & owned_by(live, "w2"),
        60,
        "the two workers to split the partitions",
    )
    mine, theirs = sorted(owned_by(live, "w1")), sorted(owned_by(live, "w2"))
    buyer = next(u for i in range(200) if partition_for(u := f"buyer-{i}", PARTITIONS) == mine[0])
    idle = next(u for i in range(200) if partition_for(u := f"idle-{i}", PARTITIONS) == mine[0])
    t0 = 1_767_225_600.0
    added = [
        {"type": "track", "event": "Product Added", "userId": u, "messageId": f"{u}-add",
         "timestamp": iso(t0), "properties": {"product_id": "p1", "price": 50.0}}
        for u in (buyer, idle)
    ]
    live.produce(added)
    order = {"type": "track", "event": "Order Completed", "userId": buyer,
             "messageId": f"{buyer}-order", "timestamp": iso(t0 + 300),
             "properties": {"order_id": "o1", "revenue": 800.0, "products": [
                 {"product_id": "r1", "category": "road", "price": 800.0}]}}
    live.produce_raw("purchases", buyer, orjson.dumps(order), partition=theirs[0],
                     timestamp_ms=int((t0 + 300) * 1000))
    # the order crosses to w1 through the forwards topic: the stream must not pass the due time
    # before it arrives (w1's clock knows nothing of w2's records)
    live.wait_for(
        lambda: any(
            r["consumer_id"] == buyer and r["at"] == iso(t0 + 300)
            for r in live.records(SEGMENT_CHANGES)
        ),
        timeout=60,
        what="the order's segment change",
    )
    closers = [
        next(u for i in range(200) if partition_for(u := f"closer-{i}", PARTITIONS) == p)
        for p in range(PARTITIONS)
    ]
    live.produce([{"type": "page", "userId": u, "messageId": f"{u}-end",
                   "timestamp": iso(t0 + 7200)} for u in closers])
    live.wait_for(
        lambda: any(r["consumer_id"] == idle for r in live.records("triggers.retargeting")),
        timeout=60,
        what="the idle shopper's cart reminder",
    )
    live.poll(2.0)
    reminded = {r["consumer_id"] for r in live.records("triggers.retargeting")}
    assert buyer not in reminded


def test_sigkill_mid_stream_loses_and_duplicates_no_trigger(live: Live, tmp_path: Path) -> None:
    """A worker killed with SIGKILL mid-stream and restarted on its data dir: the distinct
    trigger ids are exactly replay's (re-produced records carry the same id).

    The stream is long enough (seconds of work for the compiled engine) and the outputs are
    checked often enough that the kill lands mid-stream; a kill after the last trigger fails
    the test rather than passing without meaning."""
    events = synthetic(1500, 80000, seed=13)
    rep_triggers, rep_changes = replay(
        write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay"
    )
    live.produce(events)
    w1 = live.start_worker("w1")
    live.wait_for(
        lambda: len(set(live.trigger_ids())) >= len(rep_triggers) // 4,
        timeout=90,
        what="a quarter of the triggers",
        step=0.05,
    )
    w1.send_signal(signal.SIGKILL)
    w1.wait(10)
    seen_at_kill = len(set(live.trigger_ids()))
    assert seen_at_kill < len(rep_triggers), "killed too late to mean anything"
    live.start_worker("w1")
    live.wait_for(
        lambda: set(live.trigger_ids()) >= rep_triggers and set(live.changes()) >= set(rep_changes),
        timeout=150,
        what="the outputs of replay after the restart",
    )
    live.poll(2.0)
    ids = live.trigger_ids()
    assert set(ids) == rep_triggers
    assert set(live.changes()) == set(rep_changes)
    # at-least-once records, exactly-once ids: report what was re-produced
    print(
        f"killed after {seen_at_kill} of {len(rep_triggers)} triggers;"
        f" re-produced after SIGKILL: {len(ids) - len(set(ids))} trigger records"
    )


def test_state_moves_to_a_fresh_worker_through_the_changelog(live: Live, tmp_path: Path) -> None:
    """A worker with an empty data dir takes over from a stopped one: Faust recovers the table
    from the changelog (plus our catch-up past Tansu's short end offsets) and the outputs of
    both halves together are replay's."""
    events = synthetic(300, 6000, seed=14)
    rep_triggers, rep_changes = replay(
        write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay"
    )
    half = len(events) // 2
    live.produce(events[:half])
    w1 = live.start_worker("w1")
    live.wait_for(
        lambda: "'events': " + str(half) in live.log("w1"), timeout=90, what="w1 to apply half"
    )
    w1.send_signal(signal.SIGTERM)
    assert w1.wait(30) == 0
    live.start_worker("w2")  # its own, empty data dir
    live.produce(events[half:])
    live.wait_for(
        lambda: (
            len(set(live.trigger_ids())) >= len(rep_triggers)
            and sum(live.changes().values()) >= sum(rep_changes.values())
        ),
        timeout=120,
        what="the outputs of replay",
    )
    live.poll(2.0)
    assert set(live.trigger_ids()) == rep_triggers
    assert live.changes() == rep_changes
    assert "changelog records caught up" in live.log("w2")


@dataclass
class Durable:
    """What one partition's state reflects: input offsets and the changelog offset."""

    offsets: dict[str, int]
    changelog_offset: int | None


def from_changelog(live: Live) -> dict[int, Durable]:
    """Per partition, the last input offsets staged on the changelog and its last offset, read
    to the end (Fetch high watermark: Tansu's ListOffsets may under-report it)."""
    topic = f"{live.app_id}-{TABLE_NAME}-changelog"
    consumer = Consumer(
        {
            "bootstrap.servers": live.bootstrap,
            "group.id": "changelog-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    found = {p: Durable({}, None) for p in range(PARTITIONS)}
    pending = set(found)
    try:
        while pending:
            msg = consumer.poll(10.0)
            assert msg is not None, f"no end of the changelog seen for partitions {pending}"
            p, err = msg.partition() or 0, msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                pending.discard(p)
                continue
            found[p].changelog_offset = msg.offset()
            if msg.key() == OFFSETS_KEY:
                found[p].offsets = orjson.loads(msg.value() or b"{}")
    finally:
        consumer.close()
    return found


def from_rocksdb(data_dir: Path) -> dict[int, Durable]:
    """Per partition, the input offsets and changelog offset in a stopped worker's RocksDB."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[int, Durable] = {}
    for path in sorted(data_dir.rglob(f"{TABLE_NAME}-*.db")):
        partition = int(path.name.removesuffix(".db").rsplit("-", 1)[1])
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            raw, offset = db.get(OFFSETS_KEY), db.get(FAUST_OFFSET_KEY)
        finally:
            db.close()
        found[partition] = Durable(
            orjson.loads(raw) if raw else {}, int(offset) if offset is not None else None
        )
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_makes_the_batch_in_flight_durable(
    live: Live,
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    events = synthetic(2000, 60000, seed=15)
    rep_triggers, rep_changes = replay(
        write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "replay"
    )
    live.produce(events)
    w1 = live.start_worker("w1")
    live.wait_for(
        lambda: bool(live.records("segment-changes")), timeout=90, what="outputs", step=0.05
    )
    w1.send_signal(sig)
    assert w1.wait(30) == 0, live.log("w1")[-3000:]
    assert "everything applied is durable" in live.log("w1")

    staged = from_changelog(live)
    assert staged == from_rocksdb(tmp_path / "w1")
    applied = sum(off + 1 for d in staged.values() for off in d.offsets.values())
    assert 0 < applied < len(events), "stopped too late to mean anything"

    live.start_worker("w1")  # same data dir: resumes after the durable offsets
    live.wait_for(
        lambda: (
            len(set(live.trigger_ids())) >= len(rep_triggers)
            and sum(live.changes().values()) >= sum(rep_changes.values())
        ),
        timeout=150,
        what="the outputs of replay after the restart",
    )
    live.poll(2.0)
    assert sorted(live.trigger_ids()) == sorted(rep_triggers)  # none re-emitted
    assert live.changes() == rep_changes
