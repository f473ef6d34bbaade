"""`micromarketing collector`: a Segment-compatible HTTP Tracking API that produces to Kafka.

Routes: `POST /v1/{track,identify,page,screen,alias,batch,import}` and the analytics.js short
paths `/v1/{t,i,p,s,a,b}` (any Content-Type, JSON body, optionally gzip), `GET /health`,
`GET /metrics`. A request is answered `200 {"success": true}` only once the broker acknowledged
all its events; within `ack_timeout` seconds, else 503 so that the client retries (delivery is
at least once; downstream dedupes by messageId). A full producer queue answers 429 with
Retry-After. Oversized bodies answer 400, as Segment does; anything malformed answers 4xx
`{code, message}`, never 500. A connection has `read_timeout` seconds to send a request's
headers and as long again for its body (408), and at most `max_connections` are open at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import hdrs, web

from connectors.broker import (
    BrokerError,
    broker_or_embedded,
    ensure_topics,
    wait_for_bootstrap,
)
from connectors.collector.auth import authorized, basic_auth_user, body_write_key
from connectors.collector.config import CollectorConfig, Limits
from connectors.collector.connections import BoundedTCPSite, ConnectionCount
from connectors.collector.metrics import CONTENT_TYPE_LATEST, CollectorMetrics
from connectors.collector.payload import (
    BATCH_PATHS,
    SINGLE_KINDS,
    PayloadError,
    Plan,
    body_limit,
    dead_letter,
    decompress,
    parse_json,
    plan_batch,
    plan_single,
    too_large,
)
from connectors.collector.producer import (
    AsyncProducer,
    DeliveryFailed,
    DeliveryTimeout,
    Overloaded,
)
from streams.contract import ALL_TOPICS, DEAD_LETTERS, INPUT_TOPICS, topic_name
from streams.engine.rules.durations import DurationError, parse_duration

log = logging.getLogger(__name__)

#: Compressed bodies may be a little larger than their decoded limit (incompressible data).
_WIRE_SLACK = 4096
_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, Authorization",
    "Access-Control-Max-Age": "86400",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class _State:
    config: CollectorConfig
    metrics: CollectorMetrics
    producer: AsyncProducer | None = None
    connections: ConnectionCount | None = None


STATE = web.AppKey("collector_state", _State)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return _json(status, {"code": code, "message": message}, headers or None)


_SUCCESS = orjson.dumps({"success": True})


async def read_body(request: web.BaseRequest, cap: int, limit: int, timeout: float) -> bytes:
    """The raw request body; PayloadError past `cap` bytes (400) or `timeout` seconds (408)."""
    if request.content_length is not None and request.content_length > cap:
        raise too_large(limit)
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                buf += chunk
                if len(buf) > cap:
                    raise too_large(limit)
    except TimeoutError:
        raise PayloadError(
            408, "timeout", f"request body not received within {timeout:g}s"
        ) from None
    return bytes(buf)


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests by route and status, track inflight, add CORS headers on /v1."""
    metrics = request.app[STATE].metrics
    metrics.inflight.inc()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.inflight.dec()
        metrics.requests.labels(path=_route_label(request), status=str(status)).inc()
    if request.path.startswith("/v1/"):
        response.headers.update(_CORS_HEADERS)
    return response


def _ingest_handler(kind: str) -> Handler:
    """The handler of one /v1 path: `kind` is an event type, or "batch"."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _ingest(request, kind)

    return handle


async def _ingest(request: web.Request, kind: str) -> web.Response:
    state = request.app[STATE]
    cfg, metrics = state.config, state.metrics
    assert state.producer is not None
    keys = cfg.write_keys
    ok = authorized(keys, basic_auth_user(request.headers.get(hdrs.AUTHORIZATION)))
    limit = body_limit(kind, cfg.limits)
    try:
        raw = await read_body(request, limit + _WIRE_SLACK, limit, cfg.read_timeout)
        data = decompress(raw, request.headers.get(hdrs.CONTENT_ENCODING), limit)
        obj = parse_json(data)
    except PayloadError as exc:
        if not ok and exc.status != 408:  # say nothing about the body to whoever has no key
            return _unauthorized(metrics)
        metrics.rejects.labels(reason=exc.code).inc()
        response = _error(exc.status, exc.code, exc.message)
        if exc.status == 408:
            response.force_close()  # the rest of a slow body is not waited for
        return response
    if not ok and not authorized(keys, body_write_key(obj)):
        return _unauthorized(metrics)
    received_at = time.time()
    try:
        plan: Plan = (
            plan_batch(obj, received_at, cfg.limits)
            if kind == "batch"
            else plan_single(obj, kind, received_at, cfg.limits)
        )
    except PayloadError as exc:
        metrics.rejects.labels(reason=exc.code).inc()
        return _error(exc.status, exc.code, exc.message)
    records = plan.records + [dead_letter(r, received_at) for r in plan.rejected]
    if cfg.prefix:
        records = [r._replace(topic=cfg.prefix + r.topic) for r in records]
    if plan.rejected:
        metrics.rejects.labels(reason="invalid_event").inc(len(plan.rejected))
    started = time.perf_counter()
    try:
        await state.producer.send(records, cfg.ack_timeout)
    except Overloaded as exc:
        if not plan.records:
            return _invalid_single(plan)
        metrics.rejects.labels(reason="overloaded").inc()
        return _error(429, "overloaded", str(exc), **{"Retry-After": str(cfg.retry_after)})
    except (DeliveryTimeout, DeliveryFailed) as exc:
        if not plan.records:
            log.warning("dead letter of a refused event not acknowledged: %s", exc)
            return _invalid_single(plan)
        reason = "ack_timeout" if isinstance(exc, DeliveryTimeout) else "broker_error"
        metrics.rejects.labels(reason=reason).inc()
        return _error(503, reason, str(exc), **{"Retry-After": str(cfg.retry_after)})
    metrics.produce_latency.observe(time.perf_counter() - started)
    for topic, count in Counter(r.topic for r in plan.records).items():
        metrics.events.labels(topic=topic).inc(count)
    if kind != "batch" and plan.rejected:
        return _invalid_single(plan)
    return web.Response(body=_SUCCESS, content_type="application/json")


def _invalid_single(plan: Plan) -> web.Response:
    return _error(400, "invalid_event", plan.rejected[0].reason)


def _unauthorized(metrics: CollectorMetrics) -> web.Response:
    metrics.rejects.labels(reason="unauthorized").inc()
    return _error(401, "unauthorized", "missing or invalid write key")


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cfg = state.config
    assert state.producer is not None
    info = await asyncio.to_thread(state.producer.check_broker, cfg.health_timeout)
    topics = set(info.pop("topics", ()))
    if info["reachable"]:
        wanted = [topic_name(t, cfg.prefix) for t in (*INPUT_TOPICS, DEAD_LETTERS)]
        info["missing_topics"] = [t for t in wanted if t not in topics]
    body = {
        "status": "ok" if info["reachable"] else "unavailable",
        "broker": {"bootstrap": cfg.bootstrap, **info},
        "producer_queue": len(state.producer),
        "auth": "write_key" if cfg.write_keys else "open",
    }
    return _json(200 if info["reachable"] else 503, body)


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.producer is not None:
        state.metrics.producer_queue.set(len(state.producer))
    if state.connections is not None:
        state.metrics.connections.set(state.connections.open)
        state.metrics.refused_connections.set(state.connections.refused)
    return web.Response(body=state.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _producer_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    cfg = state.config
    if not cfg.write_keys:
        log.warning("no write key configured: the collector accepts every request")
    state.producer = AsyncProducer(cfg.producer_config()).start()
    yield
    left = await asyncio.to_thread(state.producer.close, cfg.ack_timeout)
    if left:
        log.warning("%d records not acknowledged by the broker at shutdown", left)


def create_app(config: CollectorConfig) -> web.Application:
    """The collector as an aiohttp application; the producer starts and stops with it.

    Run it with `auto_decompress=False` on the runner to let the collector bound gzip itself
    (it also copes with a server that decompresses).
    """
    app = web.Application(middlewares=[_observe])
    app[STATE] = _State(config=config, metrics=CollectorMetrics())
    app.cleanup_ctx.append(_producer_ctx)
    for name, kind in [*SINGLE_KINDS.items(), *((n, "batch") for n in sorted(BATCH_PATHS))]:
        app.router.add_post(f"/v1/{name}", _ingest_handler(kind))
        app.router.add_route("OPTIONS", f"/v1/{name}", _preflight)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    return app


def make_runner(app: web.Application, config: CollectorConfig) -> web.AppRunner:
    """An AppRunner for `app` as the collector wants it (own gzip handling, no access log).

    aiohttp's keep-alive timer is what closes a connection that is waiting for a request's
    headers (from its start or its previous response): set to `read_timeout`, it is the header
    timeout. Lingering after an early answer (too large, too slow) is kept short.
    """
    access_log = logging.getLogger("aiohttp.access") if log.isEnabledFor(logging.DEBUG) else None
    return web.AppRunner(
        app,
        auto_decompress=False,
        access_log=access_log,
        shutdown_timeout=config.ack_timeout + 1.0,
        keepalive_timeout=config.read_timeout,
        lingering_time=min(2.0, config.read_timeout),
    )


async def start_site(
    runner: web.AppRunner, config: CollectorConfig, host: str, port: int
) -> BoundedTCPSite:
    """Listen on host:port with the connection bound of `config`."""
    site = BoundedTCPSite(runner, host, port, max_connections=config.max_connections, backlog=1024)
    await site.start()
    app = runner.app
    app[STATE].connections = site.connections
    return site


async def serve(
    config: CollectorConfig,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until `stop` is set, or SIGINT / SIGTERM; then drain requests and flush."""
    stop = stop or asyncio.Event()
    runner = make_runner(create_app(config), config)
    await runner.setup()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    try:
        site = await start_site(runner, config, host, port)
        bound = site.port
        url = f"http://{host}:{bound}"
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        (on_ready or _announce)(url)
        await stop.wait()
        log.info("collector stopping")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def _announce(url: str) -> None:
    print(f"collector listening on {url}", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Collector options beyond --port/--host/--write-key/--broker (for the CLI to add)."""
    parser.add_argument(
        "--ack-timeout",
        type=float,
        default=10.0,
        help="seconds a request waits for the broker's acknowledgement before 503 (default 10)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        help="seconds to receive a request's headers, and again its body, before closing "
        "or 408 (default 30)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open connections at most; more are answered 503 and closed (default 1000)",
    )
    parser.add_argument(
        "--max-clock-skew",
        default="1d",
        help="refuse events stamped more than this ahead of the server clock, as the engine "
        "does with settings.max_clock_skew (default 1d)",
    )


def _ensure_topics(bootstrap: str, embedded: bool) -> None:
    if embedded:
        ensure_topics(bootstrap, [topic_name(t) for t in ALL_TOPICS])
        return
    try:
        ensure_topics(bootstrap, [topic_name(t) for t in (*INPUT_TOPICS, DEAD_LETTERS)])
    except Exception as exc:  # an external cluster may forbid topic creation
        log.warning("could not ensure topics on %s: %s", bootstrap, exc)


class CollectorUsageError(ValueError):
    """A bad command-line option: reported in one line, exit code 2."""


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """CollectorConfig fields from the command line (CollectorUsageError when one is wrong)."""
    read_timeout = float(getattr(args, "read_timeout", None) or 30.0)
    max_connections = int(getattr(args, "max_connections", None) or 1000)
    if read_timeout <= 0 or max_connections < 1:
        raise CollectorUsageError("--read-timeout and --max-connections must be positive")
    try:
        skew = parse_duration(getattr(args, "max_clock_skew", None) or "1d")
    except DurationError as exc:
        raise CollectorUsageError(f"--max-clock-skew: {exc}") from None
    return {
        "limits": Limits(max_clock_skew=skew),
        "write_keys": frozenset(k for k in (args.write_keys or ()) if k),
        "ack_timeout": float(getattr(args, "ack_timeout", None) or 10.0),
        "read_timeout": read_timeout,
        "max_connections": max_connections,
    }


def run(args: argparse.Namespace) -> int:
    """`micromarketing collector`: serve until interrupted; the exit code."""
    try:
        options = _options(args)
    except CollectorUsageError as exc:
        print(f"micromarketing collector: {exc}", file=sys.stderr)
        return 2
    if args.broker:
        try:  # a mistyped --broker is said at once, not as retries in the log
            wait_for_bootstrap(args.broker, timeout=10)
        except BrokerError as exc:
            print(f"micromarketing collector: {exc}", file=sys.stderr)
            return 1
    try:
        with broker_or_embedded(args.broker) as bootstrap:
            _ensure_topics(bootstrap, embedded=not args.broker)
            asyncio.run(
                serve(CollectorConfig(bootstrap=bootstrap, **options), args.host, args.port)
            )
    except (BrokerError, OSError) as exc:
        print(f"micromarketing collector: {exc}", file=sys.stderr)
        return 1
    return 0
