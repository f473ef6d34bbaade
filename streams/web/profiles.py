"""`GET /v1/profiles/{id}`: one consumer as the rules see it, answered by the worker that owns
its partition.

Routing: a worker that does not hold the consumer's partition asks Faust's partition assignor
which worker does. Faust's leader assignor sends every member the URL (`canonical_url`, our web
server's) of each member's partitions of the state table's changelog, which is co-partitioned
with the inputs, so partition p of the changelog is partition p of the consumers. The request
is forwarded there once (marked with `ROUTED`, so a stale assignment never loops) and its
answer relayed as it is; `X-Served-By` says which worker answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from aiohttp import web

from streams.web.meter import Meter
from streams.web.server import error

ROUTED = "X-Micromarketing-Routed"
SERVED_BY = "X-Served-By"
ROUTE_TIMEOUT = 10.0


class Holder(Protocol):
    """What a profile look-up reads of a worker (`streams.agents.Pipeline`)."""

    runtime: Any  # streams.runtime.Runtime
    meter: Meter


def owner_in(
    distribution: Mapping[str, Mapping[str, Any]], topic: str, partition: int
) -> str | None:
    """The URL that holds `partition` of `topic` in Faust's changelog distribution
    (`{url: {topic: [partitions]}}`), or None."""
    for url, topics in distribution.items():
        if partition in topics.get(topic, ()):
            return url.rstrip("/") + "/"
    return None


def profile_of(holder: Holder, consumer_id: str) -> dict[str, Any] | None:
    """The look-up's answer for a consumer of a partition held here (None: unknown)."""
    runtime, meter = holder.runtime, holder.meter
    snap = runtime.profile(consumer_id)
    if snap is None:
        return None
    since = meter.entered_at(consumer_id)  # (for states older than their entry times)
    return {
        "consumer_id": snap["consumer_id"],
        "partition": runtime.partition_of(consumer_id),
        "at": snap["at"],
        "email": snap["email"],
        "consented": snap["consented"],
        "features": snap["features"],
        "traits": snap["traits"],
        "segments": {
            seg: {"since": snap["entered"].get(seg) or since.get(seg)} for seg in snap["segments"]
        },
        "timers": snap["timers"],
        "recent_outputs": meter.recent_of(consumer_id),
    }


class ProfileRoutes:
    """The handler of `GET /v1/profiles/{id}` of one worker."""

    def __init__(
        self, holder: Holder, owner_of: Callable[[int], str | None], self_url: str
    ) -> None:
        self.holder = holder
        self.owner_of = owner_of
        self.self_url = self_url
        self._session: aiohttp.ClientSession | None = None

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/profiles/{id}", self.get)
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        runtime = self.holder.runtime
        partition = runtime.partition_of(cid)
        if runtime.holds(partition):
            profile = profile_of(self.holder, cid)
            if profile is None:
                return self._served(
                    error(404, "not_found", f"no consumer {cid!r} (partition {partition})")
                )
            return self._served(web.json_response(profile))
        owner = self.owner_of(partition)
        if request.headers.get(ROUTED) or owner is None or owner == self.self_url:
            return self._served(
                error(
                    503,
                    "unavailable",
                    f"partition {partition} of {cid!r} is not ready on any worker yet "
                    "(rebalancing or recovering): try again",
                )
            )
        return await self._route(owner, cid)

    def _served(self, response: web.Response) -> web.Response:
        response.headers[SERVED_BY] = self.self_url
        return response

    async def _route(self, owner: str, cid: str) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=ROUTE_TIMEOUT)
            )
        url = f"{owner}v1/profiles/{quote(cid, safe='')}"
        try:
            async with self._session.get(url, headers={ROUTED: "1"}) as r:
                body = await r.read()
                response = web.Response(
                    body=body, status=r.status, content_type=r.content_type or "application/json"
                )
                response.headers[SERVED_BY] = r.headers.get(SERVED_BY, owner)
                return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            return error(502, "owner_unreachable", f"the owner of {cid!r} ({owner}): {exc}")
