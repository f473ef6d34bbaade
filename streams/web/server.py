"""The worker's web server (aiohttp, on the worker's event loop): `GET /metrics`,
`GET /v1/profiles/{id}`, and the routes other parts add through `WorkerWeb.route_hooks`.

It is a small aiohttp application of our own rather than Faust's web server: Faust's brings
its own views (`/router`, `/table`, `/graph`...) and error pages, starts only after table
recovery, and binds late; ours binds a socket before the worker joins the group (a port in use
is a one-line error at start, and metrics answer during recovery) and its handlers are plain
aiohttp. Faust still tells the workers apart: each worker's `canonical_url` is this server's
URL, and Faust's leader assignor gives every member the URL that owns each partition
(`streams.web.profiles`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

RouteHook = Callable[[web.Application], None]


def bind(host: str, port: int | None) -> socket.socket:
    """A listening TCP socket on host:port (a free port when None); OSError when taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port or 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}/"


def error(status: int, code: str, message: str) -> web.Response:
    """A JSON error `{code, message}`."""
    return web.json_response({"code": code, "message": message}, status=status)


class WorkerWeb:
    """The server of one worker on an already bound socket. Add routes before `start()`:
    `web.route_hooks.append(lambda app: app.router.add_get("/v1/x", handler))`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.url = url_of(sock)
        self.route_hooks: list[RouteHook] = []
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get("/", self._index)
        for hook in self.route_hooks:
            hook(app)
        return app

    async def _index(self, request: web.Request) -> web.Response:
        routes = sorted(
            {r.resource.canonical for r in request.app.router.routes() if r.resource is not None}
        )
        return web.json_response({"worker": self.url, "routes": routes})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()
        log.info("worker web on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.wait_for(runner.cleanup(), 5.0)


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown paths and failures answer `{code, message}` JSON, never an HTML page."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status == 404:
            return error(404, "not_found", f"no route {request.path}")
        if exc.status == 405:
            return error(405, "method_not_allowed", f"{request.method} {request.path}")
        raise
    except Exception as exc:
        log.exception("web handler failed: %s %s", request.method, request.path)
        return error(500, "internal_error", f"{type(exc).__name__}: {exc}")
