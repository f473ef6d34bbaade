"""Request bodies -> Kafka records: decompression, limits, enrichment, routing. Pure functions.

Enrichment follows Segment: `receivedAt` is the server time, `timestamp` is corrected for the
client's clock skew (`receivedAt - (sentAt - timestamp)`) with the client's value kept in
`originalTimestamp`, `messageId` is added when missing, and `writeKey` (a credential) is removed.
Everything else is kept as sent.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from connectors.collector.config import Limits
from streams.contract import (
    DEAD_LETTERS,
    encode_value,
    input_topic,
    record_key,
    timestamp_ms,
)
from streams.contract import (
    dead_letter as dead_letter_value,
)
from streams.engine.events import (
    BAD_TYPE,
    INTERNAL_ERROR,
    TIME_OUT_OF_RANGE,
    TOO_DEEP,
    TOO_LARGE,
    EventError,
    parse_event,
    parse_time,
)

#: Single-event kinds by path segment (full and analytics.js short names).
SINGLE_KINDS: Mapping[str, str] = {
    "track": "track",
    "identify": "identify",
    "page": "page",
    "screen": "screen",
    "alias": "alias",
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "a": "alias",
}
BATCH_PATHS = frozenset({"batch", "import", "b"})
GZIP_MAGIC = b"\x1f\x8b"
#: Headroom for the fields the collector adds, before re-measuring an event as sent.
_ENRICH_SLACK = 256

log = logging.getLogger(__name__)


class PayloadError(Exception):
    """A request the collector refuses as a whole: HTTP `status` with a JSON {code, message}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Record(NamedTuple):
    """One Kafka record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    # the event time as the Kafka record timestamp: workers merge topics and topic replay
    # selects time ranges by it (None: the broker's receive time)
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event refused on its own: it goes to the dead-letter topic with the reason."""

    raw: Any
    reason: str  # what is wrong, for a human (the dead letter's message)
    code: str = BAD_TYPE  # the dead letter's reason (streams.engine.events.REASONS)


@dataclass(slots=True)
class Plan:
    """What one request turns into: records to produce and events rejected."""

    records: list[Record]
    rejected: list[Rejected]


def decompress(data: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo `Content-Encoding` (identity or gzip) with at most `limit` bytes out (gzip bombs).

    A gzip-declared body that does not start with the gzip magic is taken as already decoded
    (a server that decompresses by itself).
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        out = data
    elif enc in ("gzip", "x-gzip"):
        out = gunzip(data, limit) if data.startswith(GZIP_MAGIC) else data
    else:
        raise PayloadError(415, "unsupported_encoding", f"unsupported Content-Encoding: {enc}")
    if len(out) > limit:
        raise too_large(limit)
    return out


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (one or more members), refusing to produce more than `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise PayloadError(400, "invalid_body", f"invalid gzip body: {exc}") from None
        size += len(chunk)
        if size > limit or d.unconsumed_tail:
            raise too_large(limit)
        parts.append(chunk)
        if not d.eof:
            raise PayloadError(400, "invalid_body", "truncated gzip body")
        rest = d.unused_data
    return b"".join(parts)


def too_large(limit: int) -> PayloadError:
    """The error for a body over `limit` bytes (400, as Segment answers)."""
    return PayloadError(400, "too_large", f"request body larger than {limit} bytes")


def parse_json(data: bytes) -> Any:
    """Decode a JSON body; PayloadError 400 when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, "invalid_json", f"invalid JSON: {exc}") from None


def body_limit(path_kind: str, limits: Limits) -> int:
    """Largest decoded body for a path: a batch, or one event."""
    return limits.max_batch_bytes if path_kind == "batch" else limits.max_event_bytes


def fast_iso(ts: float) -> str:
    """`iso(ts)` (millisecond precision, truncated, with a Z), twice as fast."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class Received:
    """The server time of one request, formatted once, with the request's sentAt parsed once."""

    __slots__ = ("_sent_cache", "at", "iso")

    def __init__(self, at: float) -> None:
        self.at = at
        self.iso = fast_iso(at)
        self._sent_cache: tuple[Any, float | None] = (None, None)

    def sent_at(self, value: Any) -> float | None:
        """Parse a sentAt value: None when absent, EventError when it is not a time the engine
        accepts (the engine's parse_time decides)."""
        if value is None or value == "":
            return None
        cached_value, cached = self._sent_cache
        if type(value) is str and value == cached_value:
            return cached
        parsed = parse_time(value, "sentAt")
        self._sent_cache = (value, parsed)
        return parsed


def enrich(
    event: Mapping[str, Any],
    received: float | Received,
    *,
    kind: str | None = None,
    sent_at: Any = None,
    defaults: Mapping[str, Any] | None = None,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> dict[str, Any]:
    """A copy of `event` with type, receivedAt, corrected timestamp and messageId set.

    `received` is the server time (epoch seconds, or a Received shared by a request's events);
    `kind` is the type given by the path (set when missing); `sent_at` is the batch's sentAt,
    used when the event has none; `defaults` are batch-level `context` / `integrations` that the
    event's own keys override. Raises EventError when `timestamp` or `sentAt` is not a time the
    engine accepts, or when the skew correction leads out of the calendar.
    """
    clock = received if isinstance(received, Received) else Received(received)
    out = dict(event)
    out.pop("writeKey", None)
    if kind is not None and not out.get("type"):
        out["type"] = kind
    if defaults:
        for name, value in defaults.items():
            mine = out.get(name)
            if mine is None:
                out[name] = value
            elif isinstance(mine, dict) and isinstance(value, dict):
                out[name] = {**value, **mine}
    if sent_at is not None and out.get("sentAt") in (None, ""):
        out["sentAt"] = sent_at
    out["receivedAt"] = clock.iso
    client_stamp = out.get("timestamp") or out.get("originalTimestamp")
    if not client_stamp:
        out["timestamp"] = clock.iso
    else:
        client_ts = parse_time(client_stamp)
        sent = clock.sent_at(out.get("sentAt"))
        if sent is not None:
            out["timestamp"] = corrected_iso(clock.at - (sent - client_ts))
            out.setdefault("originalTimestamp", client_stamp)
        elif not out.get("timestamp"):
            out["timestamp"] = client_stamp
    message_id = out.get("messageId")
    if message_id is None or message_id == "":
        out["messageId"] = new_id()
    return out


def corrected_iso(ts: float) -> str:
    """`fast_iso` of a skew-corrected time; EventError when it falls outside the calendar."""
    try:
        if not math.isfinite(ts):
            raise ValueError("not finite")
        return fast_iso(ts)
    except (ValueError, OverflowError, OSError):
        raise EventError(
            "timestamp corrected for clock skew is out of range", TIME_OUT_OF_RANGE
        ) from None


def to_record(event: Any, received: float | Received, limits: Limits, **enrich_args: Any) -> Record:
    """Validate, enrich and encode one event; EventError with the reason when it is refused.

    The event must be one the engine accepts (its own parse_event, time range included) and no
    more than `limits.max_clock_skew` seconds ahead of the server clock, as the engine would
    refuse it against a stream clock that follows the wall clock.
    """
    if not isinstance(event, dict):
        raise EventError(f"event must be a JSON object, got {type(event).__name__}")
    clock = received if isinstance(received, Received) else Received(received)
    enriched = enrich(event, clock, **enrich_args)
    parsed = parse_event(enriched)
    if parsed.timestamp > clock.at + limits.max_clock_skew:
        raise EventError(
            f"timestamp {enriched.get('timestamp')!r} is more than "
            f"{limits.max_clock_skew:g}s ahead of the server clock",
            TIME_OUT_OF_RANGE,
        )
    try:
        value = orjson.dumps(enriched)
    except orjson.JSONEncodeError as exc:  # nesting past orjson's bound, lone surrogates
        code = TOO_DEEP if "ecursion" in str(exc) else BAD_TYPE
        raise EventError(f"event cannot be encoded as JSON: {exc}", code) from None
    limit = limits.max_event_bytes
    if len(value) > limit - _ENRICH_SLACK and len(orjson.dumps(event)) > limit:
        raise EventError(f"event larger than {limit} bytes", TOO_LARGE)
    return Record(
        input_topic(enriched), record_key(enriched), value, timestamp_ms(parsed.timestamp)
    )


def _refusal(obj: Any, exc: Exception) -> Rejected:
    """The refusal of an event whose validation raised `exc`: its reason code and message."""
    if isinstance(exc, EventError):
        return Rejected(obj, exc.message, exc.code)
    # last line of defence: a bug (or a case the validator misses) refuses one event, it does
    # not fail the request
    log.warning("unexpected error validating an event: %r", exc)
    return Rejected(obj, f"{type(exc).__name__}: {str(exc)[:200]}", INTERNAL_ERROR)


def plan_single(obj: Any, kind: str, received_at: float, limits: Limits) -> Plan:
    """One event sent to /v1/track, /v1/t, ... (`kind` is the type the path gives)."""
    try:
        return Plan([to_record(obj, Received(received_at), limits, kind=kind)], [])
    except Exception as exc:
        return Plan([], [_refusal(obj, exc)])


def plan_batch(obj: Any, received_at: float, limits: Limits) -> Plan:
    """A /v1/batch body: `{batch: [...], sentAt?, context?, integrations?}`.

    Raises PayloadError when the body is not a batch or has too many events; events refused on
    their own are in `rejected`, the others in `records`.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("batch"), list):
        raise PayloadError(400, "invalid_batch", "body must be an object with a `batch` array")
    events: list[Any] = obj["batch"]
    if len(events) > limits.max_batch_events:
        raise PayloadError(
            400,
            "too_many_events",
            f"batch of {len(events)} events; at most {limits.max_batch_events}",
        )
    defaults = {k: obj[k] for k in ("context", "integrations") if isinstance(obj.get(k), dict)}
    sent_at = obj.get("sentAt")
    plan = Plan([], [])
    clock = Received(received_at)
    try:
        clock.sent_at(sent_at)
    except EventError as exc:
        raise PayloadError(400, "invalid_batch", str(exc)) from None
    for event in events:
        try:
            plan.records.append(to_record(event, clock, limits, sent_at=sent_at, defaults=defaults))
        except Exception as exc:
            plan.rejected.append(_refusal(event, exc))
    return plan


def dead_letter(rejected: Rejected, at: float | None = None) -> Record:
    """The dead-letter record of a refused event (`raw` is the event as sent, as JSON text),
    encoded like the worker's dead letters (JSON, or Avro with a Schema Registry)."""
    raw = rejected.raw
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k != "writeKey"}
    value = dead_letter_value(
        "collector", None, raw, rejected.code, time.time() if at is None else at,
        message=rejected.reason,
    )
    key = record_key(raw) if isinstance(raw, dict) else None
    return Record(DEAD_LETTERS, key, encode_value(DEAD_LETTERS, value))
