"""The console's HTTP surface without a broker: page, token, bad requests, the profile proxy
(against a stand-in worker: a tiny aiohttp server answering /v1/profiles/{id})."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.broker import free_port
from micromarketing.console.server import CSP, Config, Console
from micromarketing.console.state import ConsoleState
from streams.engine.rules import load_rules
from tests.conftest import EXAMPLES

TOKEN = "s3cret"
PROFILE = {
    "consumer_id": "u1", "partition": 2, "features": {"views": 3}, "traits": {},
    "segments": {"vip": {"since": "2026-01-01T00:00:00.000Z"}},
    "timers": [{"kind": "trigger", "name": "cart", "due": "2026-01-01T00:30:00.000Z"}],
    "recent_outputs": [],
}


def console(worker: str | None = None, rules: bool = True) -> Console:
    path = EXAMPLES / "rules.yaml"
    config = Config(
        bootstrap=f"127.0.0.1:{free_port()}", token=TOKEN, worker=worker,
        rules=load_rules(path) if rules else None,
        rules_text=path.read_text() if rules else None, rules_path=str(path),
    )
    return Console(config, ConsoleState(), threading.Lock())


Check = Callable[[TestClient[Any, Any]], Awaitable[None]]


def run(check: Check, worker: str | None = None, rules: bool = True) -> None:
    async def main() -> None:
        async with TestClient(TestServer(console(worker, rules).app())) as client:
            await check(client)

    asyncio.run(main())


def stand_in_worker() -> web.Application:
    async def profile(request: web.Request) -> web.Response:
        if request.match_info["id"] == "u1":
            return web.json_response(PROFILE)
        return web.json_response({"code": "not_found", "message": "unknown"}, status=404)

    app = web.Application()
    app.router.add_get("/v1/profiles/{id}", profile)
    return app


def test_the_page_and_its_assets_are_served_under_a_self_only_policy() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        page = await client.get("/")
        assert page.status == 200 and "micromarketing console" in await page.text()
        assert page.headers["Content-Security-Policy"] == CSP
        js = await client.get("/static/console.js")
        assert js.status == 200 and js.content_type == "text/javascript"
        missing = await client.get("/static/../server.py")
        assert missing.status == 404

    run(check)


def test_publish_and_dry_run_without_the_token_are_401_with_a_code() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        for path in ("/v1/rules", "/v1/dry-run"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                resp = await client.post(path, json={"yaml": "segments: []"}, headers=headers)
                assert resp.status == 401
                assert (await resp.json())["code"] == "unauthorized"

    run(check)


def test_rules_problems_come_back_as_file_line_col_lines() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post(
            "/v1/dry-run",
            json={"yaml": "segments:\n  - name: x\n    when: orderz > 1\n", "hours": 1},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        body = await resp.json()
        assert resp.status == 400 and body["code"] == "invalid_rules"
        assert body["errors"] == ["rules.yaml:3:11: unknown feature 'orderz'; did you mean "
                                  "'orders'?"]

    run(check)


def test_bad_bodies_and_hours_are_400_with_a_reason() -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def check(client: TestClient[Any, Any]) -> None:
        cases: list[tuple[Any, str]] = [
            (b"{not json", "JSON object"),
            (b"[1]", "JSON object"),
            (b'{"yaml": ""}', "'yaml'"),
            (b'{"yaml": "segments: []", "hours": -1}', "'hours'"),
            (b'{"yaml": "segments: []", "hours": "24"}', "'hours'"),
        ]
        for data, says in cases:
            resp = await client.post("/v1/dry-run", data=data, headers=auth)
            body = await resp.json()
            assert resp.status == 400, data
            assert body["code"] == "bad_request" and says in body["message"]

    run(check)


def test_without_rules_in_force_a_dry_run_says_what_to_do() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post(
            "/v1/dry-run", json={"yaml": "segments: []\n", "hours": 1},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert resp.status == 409
        assert "--rules" in (await resp.json())["message"]
        rules = await client.get("/v1/rules")
        body = await rules.json()
        assert rules.status == 200 and body["known"] is False and "--rules" in body["message"]

    run(check, rules=False)


def test_the_rules_in_force_are_the_file_until_some_are_published() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        body = await (await client.get("/v1/rules")).json()
        assert body["version"] == load_rules(EXAMPLES / "rules.yaml").version
        assert body["source"].startswith("file ")
        overview = await (await client.get("/v1/overview")).json()
        assert overview["rules"]["version"] == body["version"]
        assert overview["sources"]["campaign_results"] in (True, False)

    run(check)


def test_a_profile_look_up_is_proxied_to_the_worker_status_and_all() -> None:
    async def main() -> None:
        async with TestServer(stand_in_worker()) as worker:
            url = str(worker.make_url("/")).rstrip("/")
            async with TestClient(TestServer(console(url).app())) as client:
                found = await client.get("/v1/profiles/u1")
                assert found.status == 200 and await found.json() == PROFILE
                missing = await client.get("/v1/profiles/nobody")
                assert missing.status == 404
                assert (await missing.json())["code"] == "not_found"

    asyncio.run(main())


def test_a_look_up_without_a_worker_or_with_a_dead_one_says_so() -> None:
    async def no_worker(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/v1/profiles/u1")
        assert resp.status == 503 and (await resp.json())["code"] == "no_worker"

    async def dead_worker(client: TestClient[Any, Any]) -> None:
        resp = await client.get("/v1/profiles/u1")
        assert resp.status == 502 and (await resp.json())["code"] == "worker_unreachable"

    run(no_worker)
    run(dead_worker, worker=f"http://127.0.0.1:{free_port()}")


def test_a_dry_run_ends_at_the_stream_time_when_it_runs_ahead_of_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(the replay itself is tested over the broker in tests/integration/test_console.py)"""
    seen: dict[str, float] = {}

    def fake_dry_run(_bootstrap: str, _cur: Any, _new: Any, since: float, until: float,
                     _prefix: str | None) -> dict[str, Any]:
        seen.update(since=since, until=until)
        return {}

    monkeypatch.setattr("micromarketing.console.server.dry_run", fake_dry_run)
    c = console()
    ahead = time.time() + 86_400 * 30
    c.state.clock = ahead

    async def main() -> None:
        async with TestClient(TestServer(c.app())) as client:
            resp = await client.post(
                "/v1/dry-run", json={"yaml": (EXAMPLES / "rules.yaml").read_text(), "hours": 2},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert resp.status == 200 and (await resp.json())["hours"] == 2

    asyncio.run(main())
    assert seen["until"] == pytest.approx(ahead, abs=0.01)
    assert seen["until"] - seen["since"] == pytest.approx(7200)
