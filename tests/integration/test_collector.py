"""The collector against the real broker: a real Segment client, raw HTTP, limits, auth, rejects."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.broker import EmbeddedBroker, free_port
from connectors.collector.config import CollectorConfig
from connectors.collector.server import create_app, make_runner
from streams.contract import CLICKSTREAM, DEAD_LETTERS, IDENTITIES, PURCHASES
from streams.engine.events import parse_time

pytestmark = pytest.mark.integration

KEY = "test-write-key"


class Collector:
    """A `micromarketing collector` subprocess on a free port."""

    def __init__(self, bootstrap: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "micromarketing", "collector", "--port", str(self.port)]
        cmd += ["--broker", bootstrap, "--write-key", KEY]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        ready = threading.Event()
        self.lines: list[str] = []

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if "collector listening on" in line:
                    ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(20):
            self.stop()
            raise RuntimeError(f"collector did not start: {self.lines}")

    def stop(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._pump.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


@pytest.fixture(scope="module")
def collector(broker: EmbeddedBroker) -> Iterator[Collector]:
    c = Collector(broker.bootstrap)
    yield c
    assert c.stop() == 0  # SIGTERM: a clean stop
    assert c.lines == [f"collector listening on {c.url}\n"]


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post(
    url: str,
    body: bytes | dict[str, Any] | list[Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST with urllib; (status, JSON body, headers)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, headers=hdrs, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read()), dict(err.headers)


def read_back(
    bootstrap: str,
    topics: list[str],
    match: Callable[[dict[str, Any]], bool],
    count: int,
    timeout: float = 20.0,
    stamps: dict[str, int] | None = None,
) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    """The first `count` records of `topics` (all partitions, from the beginning) that match;
    `stamps`, if given, gets each found record's Kafka timestamp (ms) by its messageId."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"collector-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    found: list[tuple[str, bytes | None, dict[str, Any]]] = []
    try:
        md = consumer.list_topics(timeout=10)
        consumer.assign(
            [
                TopicPartition(t, p, OFFSET_BEGINNING)
                for t in topics
                for p in md.topics[t].partitions
            ]
        )
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is not None:
                    continue
                topic, raw = msg.topic(), msg.value()
                assert topic is not None and raw is not None
                value = orjson.loads(raw)
                if match(value):
                    found.append((topic, msg.key(), value))
                    if stamps is not None:
                        stamps[value.get("messageId", "")] = msg.timestamp()[1]
    finally:
        consumer.close()
    return found


def by_user(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda v: str(v.get("userId") or v.get("anonymousId") or "").startswith(prefix)


# --- the real segment-analytics-python client ----------------------------------------------


def test_segment_python_client(collector: Collector, broker: EmbeddedBroker, unique: str) -> None:
    import segment.analytics as analytics
    from segment.analytics import request as segment_request
    from segment.analytics.request import APIError

    user = f"py-{unique}"
    analytics.write_key = KEY
    analytics.host = collector.url
    analytics.sync_mode = True
    analytics.gzip = True
    analytics.max_retries = 0
    analytics.default_client = None
    try:
        analytics.track(user, "Product Viewed", {"product_id": "p1", "price": 10})
        analytics.track(user, "Order Completed", {"order_id": "o1", "revenue": 10})
        analytics.identify(user, {"email": "a@b.c"})
        analytics.page(user, "Shop", "Home")
        analytics.screen(user, "App", "Cart")
        analytics.alias(f"anon-{unique}", user)
        analytics.default_client = None
        analytics.write_key = "wrong-key"
        with pytest.raises(APIError) as err:
            analytics.track(user, "Product Viewed")
        assert (err.value.status, err.value.code) == (401, "unauthorized")
    finally:
        analytics.default_client = None
        segment_request._session.close()

    found = read_back(broker.bootstrap, [CLICKSTREAM, PURCHASES, IDENTITIES], by_user(user), 6)
    by_type = {(v["type"], v.get("event")): (topic, key, v) for topic, key, v in found}
    assert by_type[("track", "Product Viewed")][0] == CLICKSTREAM
    assert by_type[("track", "Order Completed")][0] == PURCHASES
    assert by_type[("identify", None)][0] == IDENTITIES
    assert by_type[("alias", None)][0] == IDENTITIES
    assert by_type[("page", None)][0] == CLICKSTREAM
    assert by_type[("screen", None)][0] == CLICKSTREAM
    for _, key, v in found:
        assert key == user.encode()
        assert v["receivedAt"].endswith("Z")
        assert v["messageId"]
        assert v["context"]["library"]["name"] == "analytics-python"
        assert "writeKey" not in v
        assert v["sentAt"]  # from the batch
    assert by_type[("track", "Product Viewed")][2]["properties"]["product_id"] == "p1"


# --- raw HTTP ------------------------------------------------------------------------------


def test_analytics_js_short_paths_text_plain(
    collector: Collector, broker: EmbeddedBroker, unique: str
) -> None:
    user = f"js-{unique}"
    events: dict[str, dict[str, Any]] = {
        "t": {"event": "Product Added", "properties": {"product_id": "p9"}},
        "i": {"traits": {"gender": "female"}},
        "p": {"name": "Home"},
        "s": {"name": "Cart"},
        "a": {"previousId": f"old-{unique}"},
    }
    for path, event in events.items():
        body = {
            **event,
            "userId": user,
            "messageId": f"{unique}-{path}",
            "writeKey": KEY,
            "timestamp": "2024-05-01T10:00:00.000Z",
            "sentAt": "2024-05-01T10:00:01.000Z",
        }
        status, resp, headers = post(
            f"{collector.url}/v1/{path}", body, {"Content-Type": "text/plain"}
        )
        assert (status, resp) == (200, {"success": True})
        assert headers["Access-Control-Allow-Origin"] == "*"
    stamps: dict[str, int] = {}
    found = read_back(broker.bootstrap, [CLICKSTREAM, IDENTITIES], by_user(user), 5, stamps=stamps)
    types = {v["messageId"].rsplit("-", 1)[1]: (topic, v) for topic, _, v in found}
    expected = {"t": "track", "i": "identify", "p": "page", "s": "screen", "a": "alias"}
    assert {p: v["type"] for p, (_, v) in types.items()} == expected
    assert types["t"][0] == CLICKSTREAM and types["i"][0] == IDENTITIES
    # Skew correction: sent 1 s after the event, so timestamp = receivedAt - 1 s.
    _, track = types["t"]
    received = time.mktime(time.strptime(track["receivedAt"][:19], "%Y-%m-%dT%H:%M:%S"))
    corrected = time.mktime(time.strptime(track["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert received - corrected in (0.0, 1.0, 2.0)
    assert track["originalTimestamp"] == "2024-05-01T10:00:00.000Z"
    # the Kafka record carries the (corrected) event time, not the time it was produced
    assert stamps[track["messageId"]] == round(parse_time(track["timestamp"]) * 1000)


def test_gzip_batch_with_rudderstack_auth(
    collector: Collector, broker: EmbeddedBroker, unique: str
) -> None:
    user = f"gz-{unique}"
    batch = {
        "batch": [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": user,
                "messageId": f"{unique}-1",
            },
            {"type": "track", "event": "Order Completed", "userId": user},
        ],
        "context": {"ip": "10.0.0.1"},
    }
    body = gzip.compress(json.dumps(batch).encode())
    headers = {"Content-Encoding": "gzip", "Authorization": basic(KEY, '""')}
    status, resp, _ = post(f"{collector.url}/v1/batch", body, headers)
    assert (status, resp) == (200, {"success": True})
    status, _, _ = post(f"{collector.url}/v1/import", batch, {"Authorization": basic(KEY)})
    assert status == 200
    found = read_back(broker.bootstrap, [CLICKSTREAM, PURCHASES], by_user(user), 4)
    assert sorted(t for t, _, _ in found) == [CLICKSTREAM, CLICKSTREAM, PURCHASES, PURCHASES]
    assert all(v["context"] == {"ip": "10.0.0.1"} for _, _, v in found)
    generated = [v["messageId"] for t, _, v in found if t == PURCHASES]
    assert len(set(generated)) == 2  # a fresh uuid4 per event without one


def test_auth_failures(collector: Collector) -> None:
    event = {"userId": "u", "event": "Product Viewed"}
    url = f"{collector.url}/v1/track"
    for headers in ({}, {"Authorization": basic("nope")}, {"Authorization": "Bearer x"}):
        status, resp, _ = post(url, event, headers)
        assert status == 401
        assert resp["code"] == "unauthorized" and resp["message"]
    status, _, _ = post(url, {**event, "writeKey": "nope"})
    assert status == 401
    status, _, _ = post(url, b"{not json")  # no key: nothing is said about the body
    assert status == 401


def test_limits_and_invalid_json(collector: Collector) -> None:
    auth = {"Authorization": basic(KEY)}
    big = {"userId": "u", "event": "x", "properties": {"blob": "x" * 33_000}}
    status, resp, _ = post(f"{collector.url}/v1/track", big, auth)
    assert (status, resp["code"]) == (400, "too_large")
    huge = {"batch": [{"type": "page", "userId": "u", "p": "x" * 30_000}] * 20}
    status, resp, _ = post(f"{collector.url}/v1/batch", huge, auth)
    assert (status, resp["code"]) == (400, "too_large")
    many = {"batch": [{"type": "page", "userId": "u"}] * 2501}
    status, resp, _ = post(f"{collector.url}/v1/batch", many, auth)
    assert (status, resp["code"]) == (400, "too_many_events")
    bomb = gzip.compress(b" " * 20_000_000)
    status, resp, _ = post(f"{collector.url}/v1/b", bomb, {**auth, "Content-Encoding": "gzip"})
    assert (status, resp["code"]) == (400, "too_large")
    status, resp, _ = post(f"{collector.url}/v1/batch", b'{"batch": [', auth)
    assert (status, resp["code"]) == (400, "invalid_json")
    assert resp["message"].startswith("invalid JSON")
    status, resp, _ = post(f"{collector.url}/v1/batch", {"events": []}, auth)
    assert (status, resp["code"]) == (400, "invalid_batch")


def test_invalid_events_go_to_dead_letters(
    collector: Collector, broker: EmbeddedBroker, unique: str
) -> None:
    user = f"dl-{unique}"
    auth = {"Authorization": basic(KEY)}
    batch = {
        "batch": [
            {"type": "track", "event": "Product Viewed", "userId": user, "messageId": "ok-1"},
            {"type": "track", "userId": user, "messageId": f"{unique}-bad"},
            {"type": "page", "userId": user, "messageId": "ok-2"},
        ]
    }
    status, resp, _ = post(f"{collector.url}/v1/batch", batch, auth)
    assert (status, resp) == (200, {"success": True})
    single = {"anonymousId": user, "event": "", "messageId": f"{unique}-single"}
    status, resp, _ = post(f"{collector.url}/v1/track", single, auth)
    assert (status, resp) == (
        400,
        {"code": "invalid_event", "message": "track event without an event name"},
    )

    good = read_back(broker.bootstrap, [CLICKSTREAM], by_user(user), 2)
    assert sorted(v["messageId"] for _, _, v in good) == ["ok-1", "ok-2"]
    dead = read_back(broker.bootstrap, [DEAD_LETTERS], lambda v: unique in v.get("raw", ""), 2)
    assert len(dead) == 2
    for _, key, letter in dead:
        assert key == user.encode()
        assert letter["source"] == "collector"
        assert letter["offset"] is None
        assert letter["reason"] == "track event without an event name"
        assert letter["at"].endswith("Z")
    raws = sorted(orjson.loads(v["raw"])["messageId"] for _, _, v in dead)
    assert raws == [f"{unique}-bad", f"{unique}-single"]


def test_health_and_metrics(collector: Collector) -> None:
    with urllib.request.urlopen(f"{collector.url}/health", timeout=10) as resp:
        assert resp.status == 200
        health = json.loads(resp.read())
    assert health["status"] == "ok"
    assert health["broker"]["reachable"] is True
    assert health["broker"]["missing_topics"] == []
    status, _, _ = post(
        f"{collector.url}/v1/p",
        {"anonymousId": "m", "writeKey": KEY},
        {"Content-Type": "text/plain"},
    )
    assert status == 200
    assert post(f"{collector.url}/v1/p", {"anonymousId": "m"})[0] == 401
    with urllib.request.urlopen(f"{collector.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'collector_requests_total{path="/v1/p",status="200"}' in text
    assert 'collector_events_accepted_total{topic="clickstream"}' in text
    assert "collector_produce_latency_seconds_bucket" in text
    assert "collector_inflight_requests" in text
    assert 'collector_rejects_total{reason="unauthorized"}' in text


# --- in process: overload and the delivery window ------------------------------------------


async def _post_in_process(
    config: CollectorConfig, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    runner = make_runner(create_app(config), config)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}{path}", json=body) as resp,
        ):
            return resp.status, await resp.json(), dict(resp.headers)
    finally:
        await runner.cleanup()


def test_full_producer_queue_answers_429(broker: EmbeddedBroker) -> None:
    config = CollectorConfig(
        bootstrap=broker.bootstrap, producer_options={"queue.buffering.max.messages": 2}
    )
    batch = {"batch": [{"type": "page", "anonymousId": "q"}] * 5}
    status, resp, headers = asyncio.run(_post_in_process(config, "/v1/batch", batch))
    assert (status, resp["code"]) == (429, "overloaded")
    assert headers["Retry-After"] == "1"


def test_broker_silence_answers_503_after_the_ack_timeout() -> None:
    config = CollectorConfig(
        bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
        ack_timeout=0.5,
        producer_options={"log_level": 0},  # quiet: librdkafka would log every reconnect
    )
    started = time.monotonic()
    status, resp, _ = asyncio.run(
        _post_in_process(config, "/v1/track", {"userId": "u", "event": "x"})
    )
    assert (status, resp["code"]) == (503, "ack_timeout")
    assert time.monotonic() - started < 5
