"""`micromarketing collector`: a Segment-compatible HTTP Tracking API that produces to Kafka.

Routes: `POST /v1/{track,identify,page,screen,alias,batch,import}` and the analytics.js short
paths `/v1/{t,i,p,s,a,b}` (any Content-Type, JSON body, optionally gzip), `GET /health`,
`GET /metrics`. A request is answered `200 {"success": true}` only once the broker acknowledged
all its events; within `ack_timeout` seconds, else 503 so that the client retries (delivery is
at least once; downstream dedupes by messageId). A full producer queue answers 429 with
Retry-After. Oversized bodies answer 400, as Segment does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import hdrs, web

from connectors.broker import BrokerError, broker_or_embedded, ensure_topics
from connectors.collector.auth import authorized, basic_auth_user, body_write_key
from connectors.collector.config import CollectorConfig
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


STATE = web.AppKey("collector_state", _State)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return _json(status, {"code": code, "message": message}, headers or None)


_SUCCESS = orjson.dumps({"success": True})


async def read_body(request: web.BaseRequest, cap: int, limit: int) -> bytes:
    """The raw request body; PayloadError (too large) past `cap` bytes."""
    if request.content_length is not None and request.content_length > cap:
        raise too_large(limit)
    buf = bytearray()
    while chunk := await request.content.readany():
        buf += chunk
        if len(buf) > cap:
            raise too_large(limit)
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
        raw = await read_body(request, limit + _WIRE_SLACK, limit)
        data = decompress(raw, request.headers.get(hdrs.CONTENT_ENCODING), limit)
        obj = parse_json(data)
    except PayloadError as exc:
        if not ok:  # say nothing about the body to whoever has no key
            return _unauthorized(metrics)
        metrics.rejects.labels(reason=exc.code).inc()
        return _error(exc.status, exc.code, exc.message)
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
    """An AppRunner for `app` as the collector wants it (own gzip handling, no access log)."""
    access_log = logging.getLogger("aiohttp.access") if log.isEnabledFor(logging.DEBUG) else None
    return web.AppRunner(
        app,
        auto_decompress=False,
        access_log=access_log,
        shutdown_timeout=config.ack_timeout + 1.0,
    )


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
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
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


def _ensure_topics(bootstrap: str, embedded: bool) -> None:
    if embedded:
        ensure_topics(bootstrap, [topic_name(t) for t in ALL_TOPICS])
        return
    try:
        ensure_topics(bootstrap, [topic_name(t) for t in (*INPUT_TOPICS, DEAD_LETTERS)])
    except Exception as exc:  # an external cluster may forbid topic creation
        log.warning("could not ensure topics on %s: %s", bootstrap, exc)


def run(args: argparse.Namespace) -> int:
    """`micromarketing collector`: serve until interrupted; the exit code."""
    try:
        with broker_or_embedded(args.broker) as bootstrap:
            _ensure_topics(bootstrap, embedded=not args.broker)
            config = CollectorConfig(
                bootstrap=bootstrap,
                write_keys=frozenset(k for k in (args.write_keys or ()) if k),
                ack_timeout=float(getattr(args, "ack_timeout", None) or 10.0),
            )
            asyncio.run(serve(config, args.host, args.port))
    except (BrokerError, OSError) as exc:
        log.error("collector: %s", exc)
        return 1
    return 0
