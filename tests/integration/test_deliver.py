"""`micromarketing deliver` against real parts: the Tansu broker, an aiohttp webhook receiver
on 127.0.0.1 and an aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from connectors.broker import EmbeddedBroker, ensure_topics, free_port
from connectors.deliver.dedupe import KafkaDedupe
from connectors.deliver.loop import Deliverer, DeliverTopics
from connectors.deliver.retry import RetryPolicy
from connectors.deliver.sender import Sender
from connectors.deliver.smtp import SmtpSender
from connectors.deliver.webhook import WebhookSender, verify
from tests.integration.conftest import Inbox

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
PARTITIONS = 2


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    """An aiohttp server in a thread; `respond(trigger_id, n)` picks the status of call n."""

    respond: Callable[[str, int], int]
    port: int = field(default_factory=free_port)
    calls: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/triggers"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append(Received(dict(request.headers), body))
        trigger_id = request.headers.get("Idempotency-Key", "")
        n = sum(1 for c in self.calls if c.headers.get("Idempotency-Key") == trigger_id)
        return web.Response(status=self.respond(trigger_id, n))

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hooks/triggers", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def for_trigger(self, trigger_id: str) -> list[Received]:
        return [c for c in self.calls if c.headers.get("Idempotency-Key") == trigger_id]


@pytest.fixture
def topics(broker: EmbeddedBroker, unique: str) -> DeliverTopics:
    t = DeliverTopics(
        triggers=(f"triggers.retargeting.{unique}", f"triggers.winback.{unique}"),
        profiles=f"profiles.{unique}",
        failures=f"delivery-failures.{unique}",
        deliveries=f"deliveries.{unique}",
    )
    ensure_topics(broker.bootstrap, [*t.triggers, t.profiles, t.failures, t.deliveries], PARTITIONS)
    return t


def produce(bootstrap: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic, value in records:
        producer.produce(topic, key=value["consumer_id"], value=orjson.dumps(value))
    assert producer.flush(10) == 0


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                value = msg.value()
                if msg.error() is None and value is not None:
                    out.append(orjson.loads(value))
    finally:
        consumer.close()
    return out


def trigger(unique: str, n: int, consumer_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "trigger_id": f"t-{unique}-{n}",
        "kind": "retargeting",
        "campaign": "cart-abandonment",
        "consumer_id": consumer_id,
        "fired_at": "2024-05-01T12:30:00.000Z",
        "due_at": "2024-05-01T12:30:00.000Z",
        "offer": "free-shipping",
        "products": ["road-bike-900", "helmet-42"],
        "segments": ["road-amateur-women"],
        "holdout": False,
        "rules_version": "test",
        **extra,
    }


def deliverer(
    bootstrap: str, sender: Sender, topics: DeliverTopics, group: str, max_tries: int = 5
) -> Deliverer:
    retry = RetryPolicy(max_tries=max_tries, base=0.02, cap=0.1, rng=random.Random(3))
    return Deliverer(bootstrap, sender, group=group, topics=topics, retry=retry)


def run(d: Deliverer, **kwargs: Any) -> int:
    """run_until with a safety stop so a hang fails the test instead of blocking it."""
    stop = threading.Event()
    timer = threading.Timer(30, stop.set)
    timer.start()
    try:
        return d.run_until(stop, **kwargs)
    finally:
        timer.cancel()


def test_webhook_retries_signs_commits_and_skips(
    broker: EmbeddedBroker, topics: DeliverTopics, unique: str
) -> None:
    ok, no_consent = f"c-ok-{unique}", f"c-no-{unique}"
    retargeting, winback = topics.triggers
    produce(
        broker.bootstrap,
        [
            (topics.profiles, {"consumer_id": ok, "email": None, "consented": True, "at": "x"}),
            (topics.profiles, {"consumer_id": no_consent, "email": "n@x.y", "consented": True}),
            (topics.profiles, {"consumer_id": no_consent, "email": "n@x.y", "consented": False}),
        ],
    )
    t_ok = trigger(unique, 1, ok)
    t_holdout = trigger(unique, 2, ok, kind="winback", campaign="winback-60d", holdout=True)
    t_no_consent = trigger(unique, 3, no_consent)
    produce(
        broker.bootstrap,
        [(retargeting, t_ok), (winback, t_holdout), (retargeting, t_no_consent)],
    )

    group = f"deliver-{unique}"
    with WebhookServer(lambda _tid, n: 500 if n <= 2 else 204) as server:
        first = deliverer(broker.bootstrap, WebhookSender(server.url, SECRET), topics, group)
        assert run(first, max_messages=3) == 3

        calls = server.for_trigger(t_ok["trigger_id"])
        assert len(calls) == 3  # 500, 500, then accepted
        assert len(server.calls) == 3  # nothing for the holdout or the withdrawn consent
        for call in calls:
            assert orjson.loads(call.body) == t_ok
            assert verify(SECRET.encode(), call.body, call.headers["X-Micromarketing-Signature"])
            assert call.headers["Idempotency-Key"] == t_ok["trigger_id"]
            assert call.headers["X-Micromarketing-Timestamp"].isdigit()
        snap = first.metrics.snapshot()
        assert snap["delivered"] == 1
        assert snap["retries"] == 2
        assert snap["skipped_holdout"] == 1
        assert snap["skipped_consent"] == 1
        assert snap["failed"] == 0

        # offsets were committed: the same group does not deliver anything again
        second = deliverer(broker.bootstrap, WebhookSender(server.url, SECRET), topics, group)
        assert run(second, idle_timeout=1.5) == 0
        assert len(server.calls) == 3


def test_webhook_gives_up_into_delivery_failures(
    broker: EmbeddedBroker, topics: DeliverTopics, unique: str
) -> None:
    consumer = f"c-{unique}"
    t_down = trigger(unique, 1, consumer)
    t_rejected = trigger(unique, 2, consumer)
    produce(broker.bootstrap, [(topics.triggers[0], t_down), (topics.triggers[0], t_rejected)])

    def respond(trigger_id: str, _n: int) -> int:
        return 503 if trigger_id == t_down["trigger_id"] else 422

    with WebhookServer(respond) as server:
        sender = WebhookSender(server.url, SECRET)
        d = deliverer(broker.bootstrap, sender, topics, f"deliver-{unique}", max_tries=3)
        assert run(d, max_messages=2) == 2
        assert len(server.for_trigger(t_down["trigger_id"])) == 3
        assert len(server.for_trigger(t_rejected["trigger_id"])) == 1  # 4xx: no retry

    failures = {f["trigger_id"]: f for f in read_all(broker.bootstrap, topics.failures, 2)}
    assert set(failures) == {t_down["trigger_id"], t_rejected["trigger_id"]}
    down = failures[t_down["trigger_id"]]
    assert down["tries"] == 3 and "503" in down["error"] and down["failed_at"].endswith("Z")
    assert {k: down[k] for k in t_down} == t_down
    assert failures[t_rejected["trigger_id"]]["tries"] == 1
    snap = d.metrics.snapshot()
    assert (snap["failed"], snap["retries"], snap["delivered"]) == (2, 2, 0)


def test_smtp_sends_rendered_email_to_profile_address(
    broker: EmbeddedBroker,
    topics: DeliverTopics,
    unique: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    ann, no_email, unknown = f"c-ann-{unique}", f"c-noemail-{unique}", f"c-unknown-{unique}"
    address = f"ann-{unique}@example.com"
    produce(
        broker.bootstrap,
        [
            (topics.profiles, {"consumer_id": ann, "email": address, "consented": True}),
            (topics.profiles, {"consumer_id": no_email, "email": None, "consented": True}),
        ],
    )
    t_ann = trigger(unique, 1, ann)
    produce(
        broker.bootstrap,
        [
            (topics.triggers[0], t_ann),
            (topics.triggers[0], trigger(unique, 2, no_email)),
            (topics.triggers[1], trigger(unique, 3, unknown, kind="winback")),
        ],
    )
    sender = SmtpSender("127.0.0.1", port, sender="Bike Shop <offers@bikeshop.example>")
    d = deliverer(broker.bootstrap, sender, topics, f"deliver-{unique}")
    assert run(d, max_messages=3) == 3

    assert len(inbox.messages) == 1
    rcpts, msg = inbox.messages[0]
    assert rcpts == [address]
    assert msg["To"] == address
    assert msg["X-Trigger-Id"] == t_ann["trigger_id"]
    assert msg["Message-ID"] == f"<{t_ann['trigger_id']}@bikeshop.example>"
    assert "Free shipping" in msg["Subject"]
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    for body in (text.get_content(), html.get_content()):
        assert "Free shipping" in body
        assert "road-bike-900" in body and "helmet-42" in body
    snap = d.metrics.snapshot()
    assert snap["delivered"] == 1
    assert snap["skipped_no_email"] == 2


# --- one email per trigger id ----------------------------------------------------------------


class CrashBeforeCommit(Deliverer):
    """A deliverer that dies after recording each delivery but before committing its offset."""

    @staticmethod
    def _commit(consumer: Consumer, msg: Any) -> None:
        pass


def test_a_re_emitted_trigger_id_gets_one_email_across_deliver_restarts(
    broker: EmbeddedBroker,
    topics: DeliverTopics,
    unique: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    ann, bob = f"c-ann-{unique}", f"c-bob-{unique}"
    produce(
        broker.bootstrap,
        [
            (
                topics.profiles,
                {"consumer_id": ann, "email": f"ann-{unique}@x.y", "consented": True},
            ),
            (
                topics.profiles,
                {"consumer_id": bob, "email": f"bob-{unique}@x.y", "consented": True},
            ),
        ],
    )
    t1, t2 = trigger(unique, 1, ann), trigger(unique, 2, bob, kind="winback")
    retargeting, winback = topics.triggers
    produce(broker.bootstrap, [(retargeting, t1), (winback, t2)])
    group = f"deliver-smtp-{unique}"

    def smtp() -> SmtpSender:
        return SmtpSender("127.0.0.1", port, sender="offers@bikeshop.example")

    first = deliverer(broker.bootstrap, smtp(), topics, group)
    assert run(first, max_messages=2) == 2
    assert inbox.by_trigger() == {t1["trigger_id"]: 1, t2["trigger_id"]: 1}

    # a worker restarted after a crash emits both again, with the same ids, then a new one
    t3 = trigger(unique, 3, ann)
    produce(broker.bootstrap, [(retargeting, t1), (winback, t2), (retargeting, t3)])
    second = deliverer(broker.bootstrap, smtp(), topics, group)
    assert run(second, idle_timeout=2.0) == 3
    assert inbox.by_trigger() == {
        tid: 1 for tid in (t1["trigger_id"], t2["trigger_id"], t3["trigger_id"])
    }
    snap = second.metrics.snapshot()
    assert (snap["delivered"], snap["skipped_duplicate"]) == (1, 2)


def test_a_deliverer_dying_between_the_record_and_the_commit_sends_no_second_email(
    broker: EmbeddedBroker,
    topics: DeliverTopics,
    unique: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    ann = f"c-ann-{unique}"
    produce(
        broker.bootstrap,
        [(topics.profiles, {"consumer_id": ann, "email": f"ann-{unique}@x.y", "consented": True})],
    )
    triggers = [trigger(unique, n, ann) for n in range(3)]
    produce(broker.bootstrap, [(topics.triggers[0], t) for t in triggers])
    group = f"deliver-smtp-{unique}"
    retry = RetryPolicy(max_tries=2, base=0.02, cap=0.1, rng=random.Random(3))

    def smtp() -> SmtpSender:
        return SmtpSender("127.0.0.1", port, sender="offers@bikeshop.example")

    crashing = CrashBeforeCommit(broker.bootstrap, smtp(), group=group, topics=topics, retry=retry)
    assert run(crashing, max_messages=3) == 3
    # nothing was committed: the next instance of the group reads all three again
    again = deliverer(broker.bootstrap, smtp(), topics, group)
    assert run(again, idle_timeout=2.0) == 3
    assert inbox.by_trigger() == {t["trigger_id"]: 1 for t in triggers}
    assert again.metrics.snapshot()["skipped_duplicate"] == 3

    # another group (say a second email service) has deliveries of its own
    other = deliverer(broker.bootstrap, smtp(), topics, f"{group}-other")
    assert run(other, idle_timeout=2.0) == 3
    assert inbox.by_trigger() == {t["trigger_id"]: 2 for t in triggers}


def test_the_deliveries_store_reads_back_only_its_group_within_the_window(
    broker: EmbeddedBroker, topics: DeliverTopics, unique: str
) -> None:
    now = time.time()
    day = 86400.0
    group = f"g-{unique}"

    def store(at: float, of: str = group) -> KafkaDedupe:
        return KafkaDedupe(
            broker.bootstrap, topics.deliveries, of, window=7 * day, clock=lambda: at
        )

    writer = store(now - 8 * day)
    writer.record(1, b"c1", "old")  # delivered 8 days ago: out of the window
    writer.close()
    writer = store(now - day)
    writer.record(1, b"c1", "recent")
    writer.record(0, b"c2", "other-partition")
    writer.close()
    stranger = store(now, of=f"{group}-other")
    stranger.record(1, b"c1", "not-ours")
    stranger.close()

    reader = store(now)
    try:
        assert reader.partition_count() == PARTITIONS
        reader.assign([1])
        assert reader.delivered(1, "recent")
        assert not reader.delivered(1, "old")
        assert not reader.delivered(1, "not-ours")
        assert not reader.delivered(0, "other-partition")  # partition 0 not assigned yet
        reader.assign([0, 1])  # partition 1 again: read on from where it stopped
        assert reader.delivered(0, "other-partition") and reader.delivered(1, "recent")
    finally:
        reader.close()


def test_partitions_moving_between_two_instances_of_a_group_send_one_email_per_id(
    broker: EmbeddedBroker,
    topics: DeliverTopics,
    unique: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    consumers = [f"c{n}-{unique}" for n in range(8)]
    produce(
        broker.bootstrap,
        [
            (topics.profiles, {"consumer_id": c, "email": f"{c}@x.y", "consented": True})
            for c in consumers
        ],
    )
    first_wave = [trigger(unique, n, c) for n, c in enumerate(consumers)]
    produce(broker.bootstrap, [(topics.triggers[0], t) for t in first_wave])
    group = f"deliver-smtp-{unique}"
    stop = threading.Event()
    timer = threading.Timer(60, stop.set)
    timer.start()

    def start() -> tuple[Deliverer, threading.Thread]:
        sender = SmtpSender("127.0.0.1", port, sender="offers@bikeshop.example")
        d = deliverer(broker.bootstrap, sender, topics, group)
        thread = threading.Thread(target=d.run_until, args=(stop,), daemon=True)
        thread.start()
        return d, thread

    def wait_for(what: Callable[[], bool]) -> None:
        while not what() and not stop.is_set():
            time.sleep(0.1)
        assert what()

    try:
        a, a_thread = start()
        wait_for(lambda: len(inbox.messages) == 8)
        b, b_thread = start()  # the group rebalances: the partitions are split between a and b
        wait_for(lambda: len(b.assigned) > 0 and 0 < len(a.assigned) < 2 * PARTITIONS)
        # a worker re-emits the first wave (same ids), then a second wave follows
        second_wave = [trigger(unique, 10 + n, c) for n, c in enumerate(consumers)]
        produce(broker.bootstrap, [(topics.triggers[0], t) for t in first_wave + second_wave])
        wait_for(lambda: sum(d.metrics.snapshot()["skipped_duplicate"] for d in (a, b)) == 8)
        wait_for(lambda: len(inbox.messages) == 16)
    finally:
        stop.set()
        timer.cancel()
    a_thread.join(15)
    b_thread.join(15)
    expected = {t["trigger_id"]: 1 for t in first_wave + second_wave}
    assert inbox.by_trigger() == expected
    for d in (a, b):  # both instances did part of the work
        snap = d.metrics.snapshot()
        assert snap["delivered"] + snap["skipped_duplicate"] > 0
