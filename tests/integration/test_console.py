"""`micromarketing console` against a running stack, in a real headless Chromium.

The stack: the embedded broker, a real worker process (the bike shop rules) and synthetic
events produced on the input topics (stamped in the last ten hours), all under a topic prefix
of this module. Each test starts its own console process; the page must load with no console
error and no request leaving 127.0.0.1. The consumer look-up is checked through a stand-in
worker (a tiny aiohttp server), and through the real worker once it serves /v1/profiles.

`MICROMARKETING_DOCS_SCREENSHOT=1` also writes the dry-run screenshot to docs/console.png.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from connectors.broker import EmbeddedBroker, ensure_topics, free_port
from connectors.sources.synthetic import generate_events
from streams.contract import ALL_TOPICS, CONVERSIONS, event_time
from streams.engine.events import iso
from streams.engine.rules.loader import version_of
from streams.live_io import BatchProducer, produce_events
from tests.browser import ARTIFACTS, ROOT, open_page, screenshot

pytestmark = pytest.mark.integration

RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"
TOKEN = "test-token-123"
PARTITIONS = 4
WIDER = ('affinity("mountain") >= 0.5 and price_band < 500',
         'affinity("mountain") >= 0.5 and price_band < 5000')
STAND_IN = {
    "consumer_id": "user-stand-in",
    "partition": 1,
    "features": {"views": 7, "orders": 2, "price_band": 649.5},
    "traits": {"gender": "female"},
    "segments": {"road-amateur": {"since": "2026-11-29T01:00:00.000Z"}},
    "timers": [{"kind": "trigger", "name": "cart-abandonment",
                "due": "2026-11-29T02:30:00.000Z"}],
    "recent_outputs": [],
}


def recent_events(n_consumers: int, n_events: int) -> list[dict[str, Any]]:
    """Synthetic shop events (about ten hours of them), moved to end a minute ago."""
    events = list(generate_events(n_consumers, n_events, seed=5, time_scale=0.01))
    last = max(t for e in events if (t := event_time(e)) is not None)
    shift = time.time() - 60 - last
    for e in events:
        t = event_time(e)
        if t is not None:
            e["timestamp"] = iso(t + shift)
    return events


@dataclass
class Stack:
    bootstrap: str
    prefix: str
    env: dict[str, str]
    tmp: Path
    web_port: int
    later: list[dict[str, Any]]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def produce(self, events: list[dict[str, Any]]) -> None:
        producer = BatchProducer(self.bootstrap)
        produce_events(producer, events, self.prefix)
        producer.flush_blocking()

    def worker_log(self) -> str:
        return (self.tmp / "worker.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console")
    prefix = f"tc{uuid.uuid4().hex[:8]}."
    topics = dict.fromkeys((*ALL_TOPICS, CONVERSIONS))  # (in ALL_TOPICS once attribution is in)
    ensure_topics(broker.bootstrap, [prefix + t for t in topics], PARTITIONS)
    events = recent_events(60, 3000)
    st = Stack(broker.bootstrap, prefix, dict(os.environ, MICROMARKETING_TOPIC_PREFIX=prefix),
               tmp, free_port(), events[2400:])
    st.produce(events[:2400])
    with open(tmp / "worker.log", "ab") as log:
        st.procs.append(subprocess.Popen(
            [sys.executable, "-m", "micromarketing", "worker", "--rules", str(RULES),
             "--app-id", f"mm-{prefix}", "--data-dir", str(tmp / "w"), "--broker",
             broker.bootstrap, "--web-port", str(st.web_port), "--no-wall-clock"],
            cwd=ROOT, env=st.env, stdout=log, stderr=subprocess.STDOUT,
        ))
    try:
        yield st
    finally:
        for p in st.procs:
            p.send_signal(signal.SIGTERM)
        for p in st.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextmanager
def console(st: Stack, *extra: str) -> Iterator[str]:
    """A console process on the stack; yields its URL (the first line it prints)."""
    log = open(st.tmp / f"console-{uuid.uuid4().hex[:6]}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "micromarketing", "console", "--broker", st.bootstrap,
         "--rules", str(RULES.relative_to(ROOT)), *extra],
        cwd=ROOT, env=st.env, stdout=subprocess.PIPE, stderr=log,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(60), "the console printed nothing in 60 s"
        first = proc.stdout.readline().decode()
        found = re.fullmatch(r"console: (http://127\.0\.0\.1:\d+/)\n", first)
        assert found, f"first line: {first!r}"
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def post(url: str, body: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, orjson.dumps(body), headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def segment_sizes(page: Any) -> dict[str, str]:
    cells = page.query_selector_all("td[data-segment]")
    return {c.get_attribute("data-segment"): c.inner_text() for c in cells}


def test_the_page_loads_clean_and_segment_sizes_appear_and_change(stack: Stack) -> None:
    with console(stack, "--token", TOKEN) as url, open_page() as (page, log):
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-ready='1'] td[data-segment]", timeout=120_000)
        loaded = time.perf_counter() - started
        before = segment_sizes(page)
        assert before and all(re.fullmatch(r"-?[\d,]+", v) for v in before.values())
        screenshot(page, "console-loaded.png")
        stack.produce(stack.later)
        page.wait_for_function(
            "before => JSON.stringify(Object.fromEntries([...document.querySelectorAll("
            "'td[data-segment]')].map(td => [td.dataset.segment, td.innerText]))) !== before",
            arg=orjson.dumps(before).decode(), timeout=120_000,
        )
        # loads with the console caught up: navigation to every panel filled, median of 3
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            page.reload()
            page.wait_for_selector("body[data-ready='1'] td[data-segment]", timeout=30_000)
            loads.append(time.perf_counter() - started)
        warm = sorted(loads)[1]
        assert page.query_selector("#feed-body table") is not None
        campaigns = page.inner_text("#campaigns-body")
        if "not available" not in campaigns:  # with streams.measure (the attribution helper's)
            page.wait_for_selector("#campaigns-body >> text=cart-abandonment", timeout=10_000)
        assert page.query_selector("#rules-version").inner_text() == version_of(RULES.read_text())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "console-load-time.txt").write_text(
        f"first load (the worker and the console both just started): {loaded:.3f} s\n"
        f"load with the console caught up (median of 3): {warm:.3f} s\n"
    )
    assert log.errors == [] and log.external_requests == []


@contextmanager
def stand_in_worker() -> Iterator[str]:
    """A tiny aiohttp server answering /v1/profiles/{id} as the worker does; yields its URL."""
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def profile(request: web.Request) -> web.Response:
        if request.match_info["id"] == STAND_IN["consumer_id"]:
            return web.json_response(STAND_IN)
        return web.json_response({"code": "not_found", "message": "no such consumer"}, status=404)

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/v1/profiles/{id}", profile)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def main() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def only_refusals(errors: list[str], status: int) -> bool:
    """Whether the only console errors are Chromium's notes of the `status` answers a test
    asked for (a look-up of no one, a request without the token)."""
    return all(f"status of {status}" in e for e in errors)


def look_up(page: Any, consumer_id: str) -> None:
    page.fill("#lookup-id", consumer_id)
    page.click("#lookup-form button")


def console_error(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", "console", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )


def test_an_unreachable_broker_is_one_line_and_exit_1() -> None:
    res = console_error("--broker", f"127.0.0.1:{free_port()}")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("micromarketing console: ") and res.stderr.count("\n") == 1


def test_a_port_in_use_is_one_line_and_exit_1(broker: EmbeddedBroker) -> None:
    port = int(broker.bootstrap.rsplit(":", 1)[1])  # the broker holds it
    res = console_error("--broker", broker.bootstrap, "--port", str(port))
    assert res.returncode == 1
    assert res.stderr == f"micromarketing console: port {port} is in use (Address already in " \
        "use); pick another with --port N\n"


def test_rules_that_do_not_load_stop_it_with_file_line_col(broker: EmbeddedBroker,
                                                           tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("segments:\n  - name: x\n    when: orderz > 1\n")
    res = console_error("--broker", broker.bootstrap, "--rules", str(bad))
    assert res.returncode == 1 and f"{bad}:3:11: unknown feature 'orderz'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_consumer_look_up_shows_features_segments_and_timers(stack: Stack) -> None:
    with stand_in_worker() as worker, console(stack, "--worker", worker) as url, \
            open_page() as (page, log):
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        look_up(page, "user-stand-in")
        page.wait_for_selector("#profile", timeout=10_000)
        profile = page.inner_text("#profile")
        assert "cart-abandonment" in profile and "2026-11-29 02:30:00" in profile
        assert "road-amateur" in profile
        assert page.inner_text("[data-feature='price_band']") == "649.500"
        assert log.errors == []
        look_up(page, "nobody")
        page.wait_for_selector("#lookup-body >> text=not_found", timeout=10_000)
    assert only_refusals(log.errors, 404) and log.external_requests == []


def worker_serves_profiles(port: int) -> bool:
    """Whether the worker answers /v1/profiles (the metrics helper's route) with JSON."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/profiles/x", timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        try:
            return "code" in orjson.loads(exc.read())
        except orjson.JSONDecodeError:
            return False
    except OSError:
        return False


def test_a_look_up_through_the_real_worker_shows_features_and_timers(stack: Stack) -> None:
    deadline = time.monotonic() + 20  # the worker has been up for a while by now
    while not worker_serves_profiles(stack.web_port):
        if time.monotonic() > deadline:
            pytest.skip("the worker serves no /v1/profiles/{id} yet (the metrics helper's route)")
        time.sleep(2)
    added = [e for e in stack.later if e.get("event") == "Product Added"]
    who = added[-1].get("userId") or added[-1]["anonymousId"]
    with console(stack, "--worker", f"http://127.0.0.1:{stack.web_port}") as url, \
            open_page() as (page, log):
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        look_up(page, who)
        page.wait_for_selector("#profile", timeout=30_000)
        assert page.query_selector_all("[data-feature]")
        assert "cart-abandonment" in page.inner_text("#profile")
    assert log.errors == [] and log.external_requests == []


def test_the_dry_run_shows_a_difference_and_publishing_needs_the_token(stack: Stack) -> None:
    edited = RULES.read_text().replace(*WIDER)
    with console(stack, "--token", TOKEN) as url:
        status, body = post(url + "v1/rules", {"yaml": edited}, None)
        assert status == 401 and body["code"] == "unauthorized"
        with open_page() as (page, log):
            started = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1'] td[data-segment]", timeout=120_000)
            with open(ARTIFACTS / "console-load-time.txt", "a") as f:
                f.write("load just after the console started, the worker caught up: "
                        f"{time.perf_counter() - started:.3f} s\n")
            page.fill("#dryrun-yaml", edited)
            page.fill("#dryrun-hours", "24")
            assert log.errors == []
            page.click("#dryrun-run")  # no token yet
            page.wait_for_selector("#dryrun-status >> text=unauthorized", timeout=10_000)
            page.fill("#token", TOKEN)
            page.click("#dryrun-run")
            page.wait_for_selector("#dryrun-result", timeout=180_000)
            result = page.inner_text("#dryrun-result")
            assert "the outputs differ" in result
            row = page.inner_text("#dryrun-result tr:has-text('mountain-beginner')")
            assert re.search(r"\+\d+", row), row
            page.fill("#dryrun-yaml", "segments:\n  - name: x\n    when: orderz > 1\n")
            page.click("#dryrun-run")
            page.wait_for_selector(
                "#dryrun-errors li >> text=rules.yaml:3:11: unknown feature 'orderz'",
                timeout=10_000)
            assert len(log.errors) == 2, log.errors  # the two refusals asked for
            assert only_refusals(log.errors[:1], 401) and only_refusals(log.errors[1:], 400)
            log.errors.clear()
            page.fill("#dryrun-yaml", edited)
            page.click("#dryrun-run")
            page.wait_for_selector("#dryrun-result", timeout=180_000)
            shot = screenshot(page, "console-dry-run.png")
            if os.environ.get("MICROMARKETING_DOCS_SCREENSHOT"):
                (ROOT / "docs").mkdir(exist_ok=True)
                (ROOT / "docs" / "console.png").write_bytes(shot.read_bytes())
            page.click("#dryrun-publish")
            version = version_of(edited)
            page.wait_for_selector(f"#dryrun-status >> text=published rules {version}",
                                   timeout=30_000)
            page.wait_for_selector(f"#rules-version >> text={version}", timeout=30_000)
            assert "control topic" in page.inner_text("#rules-body")
        assert log.errors == [] and log.external_requests == []
    deadline = time.monotonic() + 60
    while f"rules {version} loaded from control topic" not in stack.worker_log():
        assert time.monotonic() < deadline, "the worker did not load the published rules"
        time.sleep(1)
