"""`GET /v1/campaigns` on a worker's web server: its CampaignResults as JSON.

The worker's web server (owned elsewhere) calls `add_routes(app.router, results)` (or takes
`route_hook(results)` among its route hooks); the body
is `{"until": <now, ISO-8601>, "campaigns": results.report()}` (every trigger counted, window
closed or not: a live operator wants today's figures; `?closed=1` counts only the triggers
whose attribution window closed by now)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from streams.engine.events import iso
from streams.measure.results import CampaignResults

ROUTE = "/v1/campaigns"


def campaigns_body(results: CampaignResults, now: datetime, closed: bool = False) -> dict[str, Any]:
    """The JSON body of GET /v1/campaigns at `now`."""
    return {"until": iso(now.timestamp()),
            "campaigns": results.report(now if closed else None)}


def add_routes(router: web.UrlDispatcher, results: CampaignResults) -> None:
    """Register GET /v1/campaigns on an aiohttp router, answering from `results`."""

    async def campaigns(request: web.Request) -> web.Response:
        closed = request.query.get("closed", "") in ("1", "true", "yes")
        return web.json_response(campaigns_body(results, datetime.now(UTC), closed))

    router.add_get(ROUTE, campaigns)


def route_hook(results: CampaignResults) -> Callable[[web.Application], None]:
    """`add_routes` as a hook called with the aiohttp application before it starts."""

    def hook(app: web.Application) -> None:
        add_routes(app.router, results)

    return hook
