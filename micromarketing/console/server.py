"""The console's web server (aiohttp): the page, its assets and the JSON API under `/v1/`.

    GET  /                     the page (assets under /static/, shipped in the package)
    GET  /v1/overview          segment sizes and history, trigger and suppression counts and
                               rates, the recent triggers, the rules in force, the sources
    GET  /v1/campaigns         campaign results (lift, CI) of every trigger read; `?closed=1`:
                               of those whose attribution window closed by the stream's time
    GET  /v1/rules             the rules in force: version, where from, text (`known`)
    GET  /v1/profiles/{id}     proxied to the worker's /v1/profiles/{id} (`--worker`)
    POST /v1/dry-run           {yaml, hours}: the rules in force vs `yaml` over the last hours
    POST /v1/rules             {yaml}: publish on the control topic

The two POSTs need the token (`Authorization: Bearer TOKEN`): publishing changes every worker,
and a dry run reads and replays hours of input. Errors are JSON `{code, message}`: 400 for a
bad request (rules problems listed as FILE:LINE:COL lines under `errors`), 401 without the
token, 404, 409 when a dry run is already running, 502/503 when the worker cannot answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from micromarketing.console.dryrun import dry_run
from micromarketing.console.state import ConsoleState
from streams.control import send_rules
from streams.engine.rules import RulesError, RuleSet
from streams.engine.rules.loader import loads_rules

log = logging.getLogger(__name__)

ASSETS = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_BODY = 4 * 1024 * 1024
MAX_HOURS = 24.0 * 90
MAX_ID = 512
PASTED = "rules.yaml"  # the file name rules problems are reported against
WORKER_TIMEOUT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Config:
    """What the server needs besides the state."""

    bootstrap: str
    token: str
    worker: str | None = None
    rules: RuleSet | None = None  # the file given with --rules
    rules_text: str | None = None
    rules_path: str | None = None
    prefix: str | None = None


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """A JSON error `{code, message, ...}`."""
    return json_response({"code": code, "message": message, **extra}, status)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json"
    )


class Console:
    """The handlers, over one `ConsoleState` guarded by `lock` (the follower thread writes)."""

    def __init__(
        self, config: Config, state: ConsoleState, lock: threading.Lock, follower: Any = None
    ) -> None:
        self.config = config
        self.state = state
        self.lock = lock
        self.follower = follower
        self.dry_running = asyncio.Lock()
        self.session: aiohttp.ClientSession | None = None
        package = resources.files("micromarketing.console") / "static"
        self.assets = {name: (package / name).read_bytes() for name in ASSETS}

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors, self._headers], client_max_size=MAX_BODY
        )
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.asset)
        app.router.add_get("/v1/overview", self.overview)
        app.router.add_get("/v1/campaigns", self.campaigns)
        app.router.add_get("/v1/rules", self.rules)
        app.router.add_post("/v1/rules", self.publish)
        app.router.add_post("/v1/dry-run", self.dry_run)
        app.router.add_get("/v1/profiles/{consumer_id}", self.profile)
        app.on_cleanup.append(self._close_session)
        return app

    async def _close_session(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = "not_found" if exc.status == 404 else "http_error"
            if exc.status == 405:
                code = "method_not_allowed"
            elif exc.status == 413:
                code = "too_large"
            return error(exc.status, code, exc.reason)
        except Exception as exc:  # a bug: say so in one line, log the traceback
            log.exception("console: %s %s failed", request.method, request.path)
            return error(500, "internal", f"{type(exc).__name__}: {exc}")

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.startswith("Bearer ") else ""
        return bool(given) and hmac.compare_digest(given.encode(), self.config.token.encode())

    @staticmethod
    def _unauthorized() -> web.Response:
        return error(
            401,
            "unauthorized",
            "this needs the console token (printed when the console started, or given with "
            "--token): send it as 'Authorization: Bearer TOKEN'",
        )

    # ------------------------------------------------------------------ page
    async def page(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.assets["index.html"], content_type="text/html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            return error(404, "not_found", f"no asset {name!r}")
        return web.Response(body=self.assets[name], content_type=ASSETS[name])

    # ------------------------------------------------------------------ reading
    def _rules_in_force(self) -> dict[str, Any] | None:
        with self.lock:
            published = self.state.control_rules
        if published is not None:
            return dict(published)
        cfg = self.config
        if cfg.rules is None:
            return None
        return {"source": f"file {cfg.rules_path}", "version": cfg.rules.version,
                "yaml": cfg.rules_text}

    async def overview(self, _request: web.Request) -> web.Response:
        with self.lock:
            body = self.state.overview()
            body["publishes"] = self.state.publishes
            results = self.state.results is not None
        rules = self._rules_in_force()
        body["rules"] = None if rules is None else {k: rules[k] for k in ("source", "version")}
        body["sources"] = {
            "broker": self.config.bootstrap,
            "broker_connected": bool(getattr(self.follower, "connected", False)),
            "worker": self.config.worker,
            "campaign_results": results,
        }
        return json_response(body)

    async def campaigns(self, request: web.Request) -> web.Response:
        closed = request.query.get("closed", "") in ("1", "true", "yes")
        with self.lock:
            body = self.state.campaigns(closed)
        return json_response(body)

    async def rules(self, _request: web.Request) -> web.Response:
        rules = self._rules_in_force()
        if rules is None:
            return json_response({
                "known": False,
                "message": "no rules known: none published on the control topic yet and the "
                "console was started without --rules",
            })
        return json_response({"known": True, **rules})

    async def profile(self, request: web.Request) -> web.Response:
        consumer_id = request.match_info["consumer_id"]
        if not consumer_id.strip() or len(consumer_id) > MAX_ID:
            return error(400, "bad_request", f"a consumer id is 1 to {MAX_ID} characters")
        if self.config.worker is None:
            return error(
                503, "no_worker", "no worker to ask: start the console with --worker URL"
            )
        url = f"{self.config.worker.rstrip('/')}/v1/profiles/{quote(consumer_id, safe='')}"
        if self.session is None:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=WORKER_TIMEOUT)
            )
        try:
            async with self.session.get(url) as resp:
                data = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            return error(502, "worker_unreachable", f"worker {self.config.worker}: {reason}")
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return error(
                502, "bad_worker_response",
                f"worker {self.config.worker} answered {status} without JSON (is it a worker "
                "with the profile route?)",
            )
        return json_response(body, status)

    # ------------------------------------------------------------------ changing
    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return error(400, "bad_request", "the body must be a JSON object")
        if not isinstance(body, dict):
            return error(400, "bad_request", "the body must be a JSON object")
        if not isinstance(body.get("yaml"), str) or not body["yaml"].strip():
            return error(400, "bad_request", "'yaml' (the rules file's text) is required")
        return body

    @staticmethod
    def _load(text: str) -> RuleSet | web.Response:
        try:
            return loads_rules(text, PASTED)
        except RulesError as exc:
            lines = [str(issue) for issue in exc.issues]
            return error(
                400, "invalid_rules", f"the rules have {len(lines)} problem(s)", errors=lines
            )

    async def publish(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        rules = self._load(body["yaml"])
        if isinstance(rules, web.Response):
            return rules
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None, send_rules, self.config.bootstrap, body["yaml"], self.config.prefix
            )
        except Exception as exc:  # the broker refused or timed out
            return error(502, "publish_failed", f"could not publish on the control topic: {exc}")
        return json_response({"published": True, "version": rules.version})

    async def dry_run(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        hours = body.get("hours", 24)
        if (
            isinstance(hours, bool)
            or not isinstance(hours, (int, float))
            or not 0 < hours <= MAX_HOURS
        ):
            return error(400, "bad_request", f"'hours' must be a number in (0, {MAX_HOURS:g}]")
        proposed = self._load(body["yaml"])
        if isinstance(proposed, web.Response):
            return proposed
        in_force = self._rules_in_force()
        if in_force is None or not isinstance(in_force.get("yaml"), str):
            return error(
                409, "no_rules_in_force", "no rules in force to compare with: start the "
                "console with --rules FILE (the workers' file) or publish rules first"
            )
        current = self._load(in_force["yaml"])
        if isinstance(current, web.Response):
            return error(409, "rules_in_force_invalid", "the rules in force do not load here")
        if self.dry_running.locked():
            return error(409, "busy", "a dry run is already running; try again when it ends")
        async with self.dry_running:
            with self.lock:
                clock = self.state.clock
            # the last hours of event time: up to now, or up to the latest event time read
            # when the stream runs ahead of the wall clock (the demo's compressed shop)
            until = time.time() if clock is None else max(time.time(), clock + 0.001)
            since = until - float(hours) * 3600.0
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    None, dry_run, self.config.bootstrap, current, proposed, since, until,
                    self.config.prefix,
                )
            except Exception as exc:  # no broker, no input topics
                return error(502, "dry_run_failed", f"could not read the input topics: {exc}")
        result["hours"] = hours
        return json_response(result)
