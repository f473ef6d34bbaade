"""One delivery per trigger id, without Kafka: the id store and the loop's use of it."""

from __future__ import annotations

import random

import orjson
import pytest

from connectors.deliver.command import UsageError, dedupe_window
from connectors.deliver.dedupe import (
    DedupeError,
    DeliveredIds,
    MemoryDedupe,
    delivery_value,
    parse_delivery,
)
from connectors.deliver.loop import Deliverer, Outcome
from connectors.deliver.retry import RetryPolicy
from connectors.deliver.sender import DeliveryError
from micromarketing.cli import build_parser
from tests.unit.connectors.test_deliver_loop import FakeSender, ListSink

DAY = 86400.0


def test_an_id_is_seen_on_its_partition_from_its_delivery_until_the_window_ends() -> None:
    ids = DeliveredIds(window=7 * DAY)
    assert not ids.seen(0, "t1", 1000.0)
    ids.add(0, "t1", 1000.0)
    assert ids.seen(0, "t1", 1000.0)
    assert ids.seen(0, "t1", 1000.0 + 7 * DAY - 1)
    assert not ids.seen(0, "t1", 1000.0 + 7 * DAY)
    assert not ids.seen(1, "t1", 1000.0)  # a re-emitted trigger comes on the same partition


def test_the_earliest_delivery_of_an_id_counts() -> None:
    ids = DeliveredIds(window=10.0)
    ids.add(0, "t1", 100.0)
    ids.add(0, "t1", 105.0)  # its record read back later, or a second record
    assert not ids.seen(0, "t1", 110.0)


def test_expire_forgets_only_deliveries_older_than_the_window() -> None:
    ids = DeliveredIds(window=10.0)
    for n, at in enumerate([100.0, 101.0, 105.0, 112.0]):
        ids.add(n % 2, f"t{n}", at)
    assert ids.expire(112.0) == 2  # 100 and 101 are more than 10 s old
    assert len(ids) == 2
    assert ids.seen(0, "t2", 112.0) and ids.seen(1, "t3", 112.0)


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DeliveredIds(window=0)


def test_a_deliveries_record_round_trips_and_junk_is_not_one() -> None:
    value = delivery_value("t1", "deliver-smtp", "smtp", 1700000000.1234)
    assert parse_delivery(value) == ("t1", "deliver-smtp", 1700000000.123)
    assert orjson.loads(value)["sink"] == "smtp"
    for junk in [
        None,
        b"",
        b"not json",
        b"[1]",
        b'{"trigger_id": 1, "group": "g"}',
        b'{"trigger_id": "t", "group": "g", "delivered_at": true}',
    ]:
        assert parse_delivery(junk) is None


def make(sender: FakeSender, dedupe: MemoryDedupe) -> Deliverer:
    return Deliverer(
        "unused:0",
        sender,
        group="g",
        retry=RetryPolicy(max_tries=2, base=0.001, cap=0.002, rng=random.Random(0)),
        failures=ListSink(),
        dedupe=dedupe,
        clock=lambda: "2024-05-01T00:00:00.000Z",
    )


def record(trigger_id: str) -> bytes:
    return orjson.dumps({"trigger_id": trigger_id, "consumer_id": "c1", "campaign": "cart"})


def test_a_trigger_id_delivered_once_is_skipped_as_a_duplicate_within_the_window() -> None:
    now = [1000.0]
    sender = FakeSender()
    deliverer = make(sender, MemoryDedupe(window=DAY, clock=lambda: now[0]))
    assert deliverer.handle("t", b"c1", record("t1"), 3) is Outcome.DELIVERED
    assert deliverer.handle("t", b"c1", record("t1"), 3) is Outcome.SKIPPED
    assert deliverer.handle("t", b"c1", record("t2"), 3) is Outcome.DELIVERED
    assert [tid for tid, _ in sender.tries] == ["t1", "t2"]
    assert deliverer.metrics.snapshot()["skipped_duplicate"] == 1
    now[0] += DAY  # past the window the id is forgotten
    assert deliverer.handle("t", b"c1", record("t1"), 3) is Outcome.DELIVERED


def test_a_trigger_given_up_is_not_recorded_so_its_re_emission_is_tried_again() -> None:
    sender = FakeSender([DeliveryError("HTTP 422", retryable=False)])
    deliverer = make(sender, MemoryDedupe())
    assert deliverer.handle("t", b"c1", record("t1")) is Outcome.FAILED
    assert deliverer.handle("t", b"c1", record("t1")) is Outcome.DELIVERED
    assert len(sender.tries) == 2


def test_a_delivery_that_cannot_be_recorded_stops_the_loop_before_the_commit() -> None:
    class Unrecordable(MemoryDedupe):
        def record(self, partition: int, key: bytes | None, trigger_id: str) -> None:
            raise DedupeError("deliveries: broker down")

    sender = FakeSender()
    deliverer = make(sender, Unrecordable())
    with pytest.raises(DedupeError):
        deliverer.handle("t", b"c1", record("t1"))
    assert len(sender.tries) == 1  # sent once; at least once from here on


def test_the_dedupe_window_option_reads_durations_and_refuses_nonsense() -> None:
    parser = build_parser()
    args = parser.parse_args(["deliver", "--to", "smtp", "127.0.0.1:2525"])
    assert dedupe_window(args) == 7 * DAY
    args = parser.parse_args(["deliver", "--to", "smtp", "h:1", "--dedupe-window", "36h"])
    assert dedupe_window(args) == 36 * 3600
    for bad in ("0", "7x", "-1d", "soon"):
        args = parser.parse_args(["deliver", "--to", "smtp", "h:1", f"--dedupe-window={bad}"])
        with pytest.raises(UsageError, match="--dedupe-window"):
            dedupe_window(args)
