"""The delivery decision for one trigger, without Kafka: skips, retries, giving up, stopping."""

from __future__ import annotations

import random
import threading
from typing import Any

import orjson
import pytest

from connectors.deliver.codec import DecodeError, decode_record
from connectors.deliver.loop import Deliverer, Outcome, failure_record
from connectors.deliver.metrics import DeliverMetrics
from connectors.deliver.profiles import ProfileView
from connectors.deliver.retry import RetryPolicy
from connectors.deliver.sender import DeliveryError, Profile, Sender, Trigger


class FakeSender:
    """Fails with the queued errors, then succeeds; records every try."""

    name = "fake"

    def __init__(self, errors: list[DeliveryError] | None = None, requires_email: bool = False):
        self.errors = list(errors or [])
        self.requires_email = requires_email
        self.tries: list[tuple[str, Profile | None]] = []
        self.on_try: Any = None

    def send(self, trigger: Trigger, profile: Profile | None) -> None:
        self.tries.append((trigger["trigger_id"], profile))
        if self.on_try is not None:
            self.on_try()
        if self.errors:
            raise self.errors.pop(0)

    def close(self) -> None:
        pass


class ListSink:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def publish(self, key: str, record: dict[str, Any]) -> None:
        self.records.append((key, record))

    def close(self) -> None:
        pass


def make(sender: FakeSender, max_tries: int = 3) -> tuple[Deliverer, ListSink]:
    sink = ListSink()
    deliverer = Deliverer(
        "unused:0",
        sender,
        group="g",
        retry=RetryPolicy(max_tries=max_tries, base=0.001, cap=0.002, rng=random.Random(0)),
        failures=sink,
        clock=lambda: "2024-05-01T00:00:00.000Z",
    )
    return deliverer, sink


def trigger(**extra: Any) -> Trigger:
    return {"trigger_id": "t1", "consumer_id": "c1", "campaign": "cart", "offer": "x", **extra}


def retryable() -> DeliveryError:
    return DeliveryError("HTTP 503", retryable=True)


def test_fake_sender_is_a_sender() -> None:
    assert isinstance(FakeSender(), Sender)


def test_delivers_after_retries() -> None:
    sender = FakeSender([retryable(), retryable()])
    deliverer, sink = make(sender)
    assert deliverer.deliver(trigger()) is Outcome.DELIVERED
    assert len(sender.tries) == 3
    assert sink.records == []
    snap = deliverer.metrics.snapshot()
    assert (snap["delivered"], snap["retries"], snap["failed"]) == (1, 2, 0)


def test_gives_up_after_max_tries_with_a_failure_record() -> None:
    sender = FakeSender([retryable()] * 5)
    deliverer, sink = make(sender, max_tries=3)
    assert deliverer.deliver(trigger()) is Outcome.FAILED
    assert len(sender.tries) == 3
    assert sink.records == [
        ("c1", {**trigger(), "error": "HTTP 503", "tries": 3,
                "failed_at": "2024-05-01T00:00:00.000Z"}),
    ]  # fmt: skip
    snap = deliverer.metrics.snapshot()
    assert (snap["delivered"], snap["retries"], snap["failed"]) == (0, 2, 1)


def test_permanent_error_gives_up_at_once() -> None:
    sender = FakeSender([DeliveryError("HTTP 404", retryable=False)])
    deliverer, sink = make(sender, max_tries=5)
    assert deliverer.deliver(trigger()) is Outcome.FAILED
    assert len(sender.tries) == 1
    assert sink.records[0][1]["tries"] == 1


def test_holdout_is_never_delivered() -> None:
    sender = FakeSender()
    deliverer, _ = make(sender)
    assert deliverer.deliver(trigger(holdout=True)) is Outcome.SKIPPED
    assert sender.tries == []
    assert deliverer.metrics.snapshot()["skipped_holdout"] == 1


def test_no_consent_is_never_delivered() -> None:
    sender = FakeSender()
    deliverer, _ = make(sender)
    deliverer.profiles.apply({"consumer_id": "c1", "email": "a@b.c", "consented": False})
    assert deliverer.deliver(trigger()) is Outcome.SKIPPED
    assert sender.tries == []
    assert deliverer.metrics.snapshot()["skipped_consent"] == 1


def test_consent_withdrawn_during_retries_stops_delivery() -> None:
    sender = FakeSender([retryable()] * 5)
    deliverer, sink = make(sender, max_tries=5)
    sender.on_try = lambda: deliverer.profiles.apply({"consumer_id": "c1", "consented": False})
    assert deliverer.deliver(trigger()) is Outcome.SKIPPED
    assert len(sender.tries) == 1
    assert sink.records == []


def test_email_senders_skip_consumers_without_email() -> None:
    sender = FakeSender(requires_email=True)
    deliverer, _ = make(sender)
    assert deliverer.deliver(trigger()) is Outcome.SKIPPED  # no profile at all
    deliverer.profiles.apply({"consumer_id": "c1", "email": None, "consented": True})
    assert deliverer.deliver(trigger()) is Outcome.SKIPPED
    deliverer.profiles.apply({"consumer_id": "c1", "email": "a@b.c"})
    assert deliverer.deliver(trigger()) is Outcome.DELIVERED
    assert sender.tries == [("t1", Profile(email="a@b.c", consented=True))]
    assert deliverer.metrics.snapshot()["skipped_no_email"] == 2


def test_stop_while_waiting_to_retry_aborts_without_giving_up() -> None:
    sender = FakeSender([retryable()] * 5)
    deliverer, sink = make(sender, max_tries=5)
    deliverer.retry = RetryPolicy(max_tries=5, base=30, cap=30)
    stop = threading.Event()
    deliverer._stop = stop
    sender.on_try = stop.set
    assert deliverer.deliver(trigger()) is Outcome.ABORTED
    assert sink.records == []


def test_handle_skips_malformed_records() -> None:
    deliverer, _ = make(FakeSender())
    assert deliverer.handle("t", b"c1", b"not json") is Outcome.SKIPPED
    assert deliverer.handle("t", b"c1", None) is Outcome.SKIPPED
    assert deliverer.handle("t", b"c1", orjson.dumps({"consumer_id": "c1"})) is Outcome.SKIPPED
    assert deliverer.metrics.snapshot()["skipped_malformed"] == 3
    # consumer_id may come from the key
    assert deliverer.handle("t", b"c1", orjson.dumps({"trigger_id": "t1"})) is Outcome.DELIVERED


def test_decode_record() -> None:
    assert decode_record("t", b'{"a": 1}') == {"a": 1}
    for bad in (b"[1]", b"\x00\x00\x00\x00\x01avro", b"{"):
        with pytest.raises(DecodeError):
            decode_record("t", bad)


def test_profile_view_latest_wins_and_keeps_missing_fields() -> None:
    view = ProfileView()
    view.apply({"consumer_id": "c1", "email": "a@b.c", "consented": True})
    view.apply({"consumer_id": "c1", "consented": False})
    assert view.get("c1") == Profile(email="a@b.c", consented=False)
    view.apply({"consumer_id": "c1", "email": None})
    assert view.get("c1") == Profile(email=None, consented=False)
    view.forget("c1")
    assert view.get("c1") is None
    with pytest.raises(DecodeError):
        view.apply({"email": "x@y.z"})


def test_failure_record_and_summary() -> None:
    rec = failure_record(trigger(), "boom", 2, "2024-01-01T00:00:00.000Z")
    assert rec["error"] == "boom" and rec["tries"] == 2 and rec["trigger_id"] == "t1"
    metrics = DeliverMetrics("webhook")
    metrics.delivered()
    metrics.skipped("holdout")
    assert "delivered=1" in metrics.summary() and "holdout=1" in metrics.summary()


def test_each_kind_of_deliverer_has_its_own_group_by_default():
    """A webhook and an SMTP deliverer started with the defaults must both get every trigger:
    in one group they would split the partitions, each delivering half."""
    from connectors.deliver.command import group_of
    from micromarketing.cli import build_parser

    parse = build_parser().parse_args
    hook = parse(["deliver", "--to", "webhook", "http://127.0.0.1:1/h"])
    smtp = parse(["deliver", "--to", "smtp", "127.0.0.1:2525"])
    assert group_of(hook, "webhook") != group_of(smtp, "smtp")
    assert group_of(hook, "webhook") == "micromarketing-deliver-webhook"
    mine = parse(["deliver", "--to", "smtp", "127.0.0.1:2525", "--group", "mine"])
    assert group_of(mine, "smtp") == "mine"
