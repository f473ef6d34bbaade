"""The worker's per-record path without a broker: merge order, hold-back, apply and emit.

The engines are real (bike-shop rules, RocksDB stores); the intake is a stand-in for the
confluent consumer (its high watermarks decide what is caught up), and the epoch producer is
real but never pushes: the test reads the records it queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import TopicPartition
from rocksdict import Options, Rdict

from streams.contract import INPUT_TOPICS
from streams.engine.core import Engine
from streams.engine.outputs import EventForward, Outputs, decode_forward
from streams.engine.partitioning import partition_for
from streams.engine.rules import load_rules
from streams.epochs import EpochProducer
from streams.flow import Flow, Rec
from streams.runtime import Runtime
from streams.tables import TableStore

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "t."


class Intake:
    """What Flow asks of a confluent Consumer: prefetched messages and high watermarks."""

    def __init__(self) -> None:
        self.high: dict[tuple[str, int], int] = {}

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return []

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, self.high.get((tp.topic, tp.partition), 0)


@pytest.fixture
def flow(tmp_path: Path) -> Iterator[Flow]:
    rules = load_rules(ROOT / "examples" / "bike-shop" / "rules.yaml")
    producer = EpochProducer("127.0.0.1:9")  # nothing is pushed: no broker needed
    runtime = Runtime(rules, 2, held=())
    f = Flow(
        Intake(),
        producer,
        runtime,
        prefix=PREFIX,
        partitions=2,
        inputs=INPUT_TOPICS,
        max_buffered=1000,
        batch_max=1000,
    )
    dbs = []
    for p in (0, 1):
        db = Rdict(str(tmp_path / f"p{p}"), Options(raw_mode=True))
        dbs.append(db)
        store = TableStore(db, p)
        runtime.add(p, Engine(rules, store, partition=p), store.offsets)
    yield f
    producer._queued.clear()
    producer.close(0.1)
    for db in dbs:
        db.close()


def queued(flow: Flow) -> list[tuple[str, Any, Any]]:
    """(topic, key, value) of what the flow queued on its producer."""
    return [
        (topic, key, orjson.loads(value or b"null"))
        for topic, value, key, _ in flow.producer._queued
    ]


def rec(topic: str, partition: int, offset: int, ts: float, value: Any = None) -> Rec:
    data = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return Rec(PREFIX + topic, partition, offset, ts, data)


def caught_up(flow: Flow) -> None:
    """Every input partition has been read to its end."""
    intake = flow.intake
    assert isinstance(intake, Intake)
    for (topic, p), off in flow.received.items():
        intake.high[(topic, p)] = off + 1


def test_forwards_first_then_the_inputs_merged_by_time(flow: Flow) -> None:
    for r in (
        rec("clickstream", 0, 0, 3.0),
        rec("clickstream", 0, 1, 1.0),  # offset order within a partition wins over time
        rec("purchases", 0, 0, 2.0),
        rec("clickstream", 1, 0, 0.5),
        rec("forwards", 1, 0, 9.0),
    ):
        flow.add(r)
    caught_up(flow)
    order = [(r.topic, r.partition, r.offset) for r in flow.release(force=False)]
    assert order == [
        ("t.forwards", 1, 0),
        ("t.clickstream", 1, 0),
        ("t.purchases", 0, 0),
        ("t.clickstream", 0, 0),
        ("t.clickstream", 0, 1),
    ]
    assert flow.buffered == 0


def test_a_topic_with_unread_data_holds_the_merge_back_unless_forced(flow: Flow) -> None:
    flow.add(rec("clickstream", 0, 0, 1.0))
    flow.add(rec("forwards", 0, 0, 1.0))
    caught_up(flow)
    intake = flow.intake
    assert isinstance(intake, Intake)
    intake.high[(PREFIX + "identities", 0)] = 5  # written, not fetched yet
    assert [r.topic for r in flow.release(force=False)] == ["t.forwards"]
    assert flow.buffered == 1
    assert flow.blocking() == [("t.identities", 0, 0)]
    assert [r.topic for r in flow.release(force=True)] == ["t.clickstream"]
    assert flow.buffered == 0


def test_a_redelivered_record_is_buffered_once(flow: Flow) -> None:
    flow.add(rec("clickstream", 0, 4, 1.0))
    flow.add(rec("clickstream", 0, 4, 1.0))
    assert flow.buffered == 1 and flow.stats == {"redelivered": 1}


def view(user: str, n: int, price: float) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": f"2026-01-05T10:00:0{n}Z",
        "properties": {"category": "road", "price": price, "product_id": "r1"},
    }


def test_apply_queues_outputs_and_dead_letters_and_skips_what_the_state_has(flow: Flow) -> None:
    recs = [
        rec("clickstream", 0, 0, 1.0, view("u1", 1, 800.0)),
        rec("clickstream", 0, 1, 2.0, b"{not json"),
        rec("clickstream", 0, 2, 3.0, b"\x00\x00\x00\x00\x01garbage"),
    ]
    flow.apply(recs)
    out = queued(flow)
    changes = [v for t, _, v in out if t == "t.segment-changes"]
    assert [(c["consumer_id"], c["segment"], c["change"]) for c in changes] == [
        ("u1", "road-amateur", "entered")
    ]
    dead = {v["offset"]: v["reason"] for t, _, v in out if t == "t.dead-letters"}
    assert dead.keys() == {"clickstream:0:1", "clickstream:0:2"}
    assert dead["clickstream:0:1"] == "invalid_json"
    assert dead["clickstream:0:2"] == "invalid_json"  # undecodable value: ...
    assert flow.runtime.offsets(0) == {"t.clickstream": 2}
    flow.apply(recs[:1])  # redelivered after a crash: already in the state
    assert len(queued(flow)) == len(out) and flow.stats["skipped"] == 1


def test_a_record_found_on_another_partition_is_applied_on_its_key_partition(flow: Flow) -> None:
    assert partition_for("u5", 2) == 1
    flow.apply([rec("clickstream", 0, 0, 1.0, view("u5", 1, 800.0))])
    runtime = flow.runtime
    assert runtime.engines[1].consumer("u5") is not None
    assert runtime.engines[0].consumer("u5") is None
    assert runtime.rerouted == 1
    assert runtime.offsets(0) == {"t.clickstream": 0}  # applied as read: partition 0's offset


def test_a_record_whose_key_partition_another_worker_owns_goes_to_the_forwards_topic(
    flow: Flow,
) -> None:
    runtime = flow.runtime
    runtime.drop(1)  # another worker's now
    event = view("u5", 1, 800.0)
    flow.apply([rec("clickstream", 0, 7, 1.0, event)])
    [(topic, value, key, partition)] = flow.producer._queued
    assert (topic, key, partition) == ("t.forwards", "u5", 1)
    assert value is not None
    assert decode_forward(value) == EventForward("u5", event, ("clickstream", "clickstream:0:7"))
    assert runtime.engines[0].consumer("u5") is None
    assert flow.stats == {"forwards": 1}


def test_a_forced_release_bounds_the_clock_by_the_position_of_a_backlogged_partition(
    flow: Flow,
) -> None:
    flow.add(rec("identities", 0, 0, 5.0))
    caught_up(flow)
    flow.release(force=False)
    flow.add(rec("clickstream", 0, 0, 50.0))
    caught_up(flow)
    intake = flow.intake
    assert isinstance(intake, Intake)
    intake.high[(PREFIX + "identities", 0)] = 9  # more identities written, not fetched yet
    assert flow.release(force=False) == []
    assert [r.offset for r in flow.release(force=True)] == [0]
    assert flow.runtime.bound == 5.0  # the identities read so far reach t=5
    intake.high[(PREFIX + "identities", 0)] = 1  # all fetched after all
    flow.add(rec("clickstream", 0, 1, 60.0))
    flow.release(force=False)
    assert flow.runtime.bound == float("inf")


def test_emit_queues_conversions_and_feeds_the_workers_campaign_results(flow: Flow) -> None:
    trigger = {"trigger_id": "t1", "kind": "retargeting", "campaign": "cart", "consumer_id": "u1",
               "fired_at": "2026-01-05T10:00:00.000Z", "due_at": "2026-01-05T10:00:00.000Z",
               "offer": "x", "products": [], "segments": [], "holdout": False, "reason": None,
               "attribution_until": "2026-01-12T10:00:00.000Z", "rules_version": "v"}
    conversion = {"trigger_id": "t1", "campaign": "cart", "kind": "retargeting", "offer": "x",
                  "consumer_id": "u1", "holdout": False, "fired_at": "2026-01-05T10:00:00.000Z",
                  "converted_at": "2026-01-06T10:00:00.000Z", "order_id": "o1", "revenue": 9.5}
    out = Outputs()
    out.conversions.append(conversion)
    flow.emit(out)
    assert [(t, v) for t, _, v in queued(flow)] == [("t.conversions", conversion)]
    out = Outputs()
    out.triggers.append(trigger)
    flow.emit(out)
    figures = flow.results.report()["cart"]
    assert (figures["treated"], figures["converted_treated"]) == (1, 1)
    assert figures["revenue_per_trigger_treated"] == 9.5


def test_the_workers_campaign_results_equal_replays_on_the_example_file(
    flow: Flow, tmp_path: Path
) -> None:
    from streams.contract import input_topic, partition_of, record_key
    from streams.replay import OutputFiles, read_lines, replay

    events = ROOT / "examples" / "bike-shop" / "events.jsonl"
    recs: list[Rec] = []
    offsets: dict[tuple[str, int], int] = {}
    for no, line in read_lines(str(events)):
        try:
            obj = orjson.loads(line)
            base = input_topic(obj)
            key = record_key(obj)
        except (orjson.JSONDecodeError, AttributeError):
            base, key = "clickstream", None
        p = partition_of(key.decode() if key else None, 2)
        offsets[(base, p)] = offset = offsets.get((base, p), -1) + 1
        recs.append(rec(base, p, offset, float(no), line))
    flow.apply(recs)
    runtime = Runtime(flow.runtime.rules, 2)
    with OutputFiles(tmp_path / "replay") as files:
        report = replay((("f", str(no), line) for no, line in read_lines(str(events))),
                        runtime, files)
    assert runtime.clock == flow.runtime.clock
    end = datetime.fromtimestamp(runtime.clock, UTC)
    assert report["campaigns"] and flow.results.report(end) == report["campaigns"]
