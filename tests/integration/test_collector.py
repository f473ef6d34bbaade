"""The collector against the real broker: a real Segment client, raw HTTP, limits, auth, rejects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
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
from connectors.collector.server import create_app, make_runner, start_site
from streams.contract import CLICKSTREAM, DEAD_LETTERS, IDENTITIES, PURCHASES
from streams.engine.events import parse_time

pytestmark = pytest.mark.integration

KEY = "test-write-key"


class Collector:
    """A `micromarketing collector` subprocess on a free port."""

    def __init__(self, bootstrap: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "micromarketing", "collector", "--port", str(self.port)]
        cmd += ["--broker", bootstrap, "--write-key", KEY, *extra]
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
        assert letter["reason"] == "missing_field"
        assert letter["message"] == "track event without an event name"
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


# --- malformed input: always a 4xx {code, message}, never a 500 ----------------------------


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


MALFORMED_EVENTS: dict[str, dict[str, Any]] = {
    "event-object": {"type": "track", "event": {"name": "Product Viewed"}},
    "type-list": {"type": ["track"], "event": "Product Viewed"},
    "deep-300": {"type": "track", "event": "x", "properties": _deep(300)},
    "sent-at-year-1": {
        "type": "page",
        "timestamp": "2024-05-01T00:00:00Z",
        "sentAt": "0001-01-01T00:00:00Z",
    },
    "sent-at-year-9999": {
        "type": "page",
        "timestamp": "2024-05-01T00:00:00Z",
        "sentAt": "9999-12-31T23:59:59-14:00",
    },
    "sent-at-unparsable": {"type": "page", "timestamp": "2024-05-01T00:00:00Z", "sentAt": "x"},
    "timestamp-year-9999": {"type": "page", "timestamp": "9999-12-31T23:59:59-14:00"},
    "timestamp-unparsable": {"type": "page", "timestamp": "2026-13-45T99:00:00Z"},
}


@pytest.mark.parametrize("name", sorted(MALFORMED_EVENTS))
def test_a_malformed_event_answers_400_alone_and_is_a_dead_letter_in_a_batch(
    collector: Collector, broker: EmbeddedBroker, unique: str, name: str
) -> None:
    auth = {"Authorization": basic(KEY)}
    user = f"bad-{name}-{unique}"
    event = {**MALFORMED_EVENTS[name], "userId": user, "messageId": f"{unique}-{name}"}
    status, resp, _ = post(f"{collector.url}/v1/track", event, auth)
    assert (status, resp["code"]) == (400, "invalid_event")
    assert resp["message"]
    ok = {"type": "page", "userId": user, "messageId": f"{unique}-ok"}
    status, resp, _ = post(f"{collector.url}/v1/batch", {"batch": [event, ok]}, auth)
    assert (status, resp) == (200, {"success": True})
    good = read_back(broker.bootstrap, [CLICKSTREAM], by_user(user), 1)
    assert [v["messageId"] for _, _, v in good] == [f"{unique}-ok"]
    dead = read_back(
        broker.bootstrap, [DEAD_LETTERS], lambda v: f"{unique}-{name}" in v.get("raw", ""), 2
    )
    assert len(dead) == 2 and all(v["reason"] for _, _, v in dead)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"userId": "u", "event": "\xff\xfe"}', {}, 400, "invalid_json"),
        (b'{"userId": "u", "event": "x", "a": "\xc3"}', {}, 400, "invalid_json"),
        (b'{"userId": "u", "event": "x", "n": 1e400}', {}, 400, "invalid_json"),
        (b'{"userId": "u", "event": "x", "n": NaN}', {}, 400, "invalid_json"),
        (b'{"userId": "u", "event": "x", "n": -Infinity}', {}, 400, "invalid_json"),
        (b"[" * 2000 + b"]" * 2000, {}, 400, "invalid_json"),
        (b"[" * 300 + b"]" * 300, {}, 400, "invalid_event"),
        (
            b"userId=u&event=x",
            {"Content-Type": "application/x-www-form-urlencoded"},
            400,
            "invalid_json",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="e"\r\n\r\nx\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
            400,
            "invalid_json",
        ),
        (b"\x00\x01\x02", {"Content-Type": "application/octet-stream"}, 400, "invalid_json"),
        (b'{"userId": "u"}', {"Content-Encoding": "br"}, 415, "unsupported_encoding"),
        (gzip.compress(b" " * 5_000_000), {"Content-Encoding": "gzip"}, 400, "too_large"),
        (
            gzip.compress(b'{"userId": "u", "event": "x"}', mtime=0)[:-12],  # one test id
            {"Content-Encoding": "gzip"},
            400,
            "invalid_body",
        ),
    ],
)
def test_a_malformed_body_answers_4xx_with_a_code(
    collector: Collector, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    got, resp, _ = post(f"{collector.url}/v1/track", body, {"Authorization": basic(KEY), **headers})
    assert (got, resp["code"]) == (status, code)
    assert resp["message"]


@pytest.fixture(scope="module")
def strict(broker: EmbeddedBroker) -> Iterator[Collector]:
    """A collector with a 1 s read timeout, 20 connections at most and a 1 h clock skew."""
    c = Collector(
        broker.bootstrap,
        *("--read-timeout", "1", "--max-connections", "20", "--max-clock-skew", "1h"),
    )
    yield c
    assert c.stop() == 0


def test_a_body_sent_at_one_byte_a_second_is_cut_off_with_408(strict: Collector) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        head = (
            "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {basic(KEY)}\r\nContent-Length: 100\r\n\r\n"
        )
        sock.sendall(head.encode())
        answer = b""
        with contextlib.suppress(OSError):
            for byte in b'{"userId": "u", "event": "x"}':
                sock.sendall(bytes([byte]))
                answer += _recv_ready(sock, 1.0)
                if answer:
                    break
        answer += _recv_until_closed(sock, 5.0)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"timeout"' in answer
    assert elapsed < 5


def test_the_command_bounds_connections_and_closes_unfinished_headers(strict: Collector) -> None:
    socks = [socket.create_connection(("127.0.0.1", strict.port), timeout=5) for _ in range(40)]
    try:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answers = [_recv_until_closed(sock, 4.0) for sock in socks]
        elapsed = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    refused = sum(1 for a in answers if a.startswith(b"HTTP/1.1 503"))
    assert 20 <= refused < 40  # 20 held at most; the others told to come back
    assert all(a == b"" or a.startswith(b"HTTP/1.1 503") for a in answers)
    assert elapsed < 4.0  # every held connection was closed at the 1 s header timeout
    status, _, _ = post(
        f"{strict.url}/v1/page", {"anonymousId": "a"}, {"Authorization": basic(KEY)}
    )
    assert status == 200  # and the slots are free again


def test_the_command_refuses_events_beyond_its_clock_skew(strict: Collector) -> None:
    auth = {"Authorization": basic(KEY)}
    ahead = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7200))
    near = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    status, resp, _ = post(f"{strict.url}/v1/page", {"anonymousId": "a", "timestamp": ahead}, auth)
    assert (status, resp["code"]) == (400, "invalid_event")
    assert "ahead of the server clock" in resp["message"]
    status, _, _ = post(f"{strict.url}/v1/page", {"anonymousId": "a", "timestamp": near}, auth)
    assert status == 200


def _recv_ready(sock: socket.socket, timeout: float) -> bytes:
    """What the server sent within `timeout` seconds (b"" if nothing)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


def _recv_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything until the server closes, or `timeout`."""
    deadline = time.monotonic() + timeout
    out = b""
    with contextlib.suppress(OSError):
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


async def _slowloris(config: CollectorConfig, clients: int) -> dict[str, Any]:
    """`clients` connections that never finish their headers, against an in-process collector;
    what the server held and when each connection ended."""
    runner = make_runner(create_app(config), config)
    await runner.setup()
    try:
        site = await start_site(runner, config, "127.0.0.1", 0)
        count = site.connections
        peak = 0
        started = time.monotonic()

        async def client() -> tuple[float, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Typ")
            try:
                data = await asyncio.wait_for(reader.read(), timeout=10)
            except (ConnectionError, TimeoutError):
                data = b""
            finally:
                writer.close()
            return time.monotonic() - started, data

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, count.open)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        ended = await asyncio.gather(*(client() for _ in range(clients)))
        watcher.cancel()
        return {"peak": peak, "ended": ended, "open": count.open, "refused": count.refused}
    finally:
        await runner.cleanup()


def test_connections_with_unfinished_headers_are_bounded_and_closed_at_the_read_timeout() -> None:
    config = CollectorConfig(
        bootstrap=f"127.0.0.1:{free_port()}",  # no broker needed: no request gets that far
        read_timeout=1.0,
        max_connections=50,
        producer_options={"log_level": 0},
    )
    out = asyncio.run(_slowloris(config, 200))
    assert out["peak"] <= 50
    assert out["refused"] >= 150
    refused = [t for t, data in out["ended"] if data.startswith(b"HTTP/1.1 503")]
    timed_out = [t for t, data in out["ended"] if not data.startswith(b"HTTP/1.1 503")]
    assert len(refused) == out["refused"] and len(timed_out) == 200 - out["refused"]
    assert all(t < 1.0 for t in refused)  # at once
    assert all(0.9 <= t < 3.0 for t in timed_out)  # at the header timeout, not later
    assert out["open"] == 0
