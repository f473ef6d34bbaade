"""GET /v1/campaigns: a CampaignResults served as JSON by an aiohttp router."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from streams.measure.results import CampaignResults
from streams.measure.web import ROUTE, add_routes, campaigns_body, route_hook
from tests.unit.measure.test_results import conv, trig


def results() -> CampaignResults:
    r = CampaignResults()
    r.add_trigger(trig("a", until="2026-01-08T00:00:00.000Z"))
    r.add_trigger(trig("b", holdout=True, until="2999-01-08T00:00:00.000Z"))
    r.add_conversion(conv("a", 12.0))
    return r


async def get(r: CampaignResults, query: str = "") -> tuple[int, dict[str, Any]]:
    app = web.Application()
    route_hook(r)(app)
    server = TestServer(app)
    await server.start_server()
    try:
        async with ClientSession() as session, session.get(
            server.make_url(ROUTE + query)
        ) as resp:
            return resp.status, await resp.json()
    finally:
        await server.close()


def test_get_campaigns_answers_the_report_of_every_trigger_with_the_time_it_was_asked():
    r = results()
    status, body = asyncio.run(get(r))
    assert status == 200
    assert body["campaigns"] == r.report()
    assert body["campaigns"]["cart"]["holdout"] == 1
    assert datetime.fromisoformat(body["until"]) <= datetime.now(UTC)


def test_get_campaigns_closed_counts_only_triggers_whose_window_closed():
    status, body = asyncio.run(get(results(), "?closed=1"))
    assert status == 200 and body["campaigns"]["cart"]["holdout"] == 0
    assert body["campaigns"]["cart"]["treated"] == 1


def test_add_routes_registers_get_campaigns_on_a_router():
    app = web.Application()
    add_routes(app.router, results())
    assert [r.resource.canonical for r in app.router.routes()
            if r.method == "GET" and r.resource is not None] == [ROUTE]


def test_campaigns_body_says_until_in_iso_8601():
    body = campaigns_body(results(), datetime(2026, 2, 1, tzinfo=UTC))
    assert body["until"] == "2026-02-01T00:00:00.000Z"
