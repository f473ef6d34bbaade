"""Segment Spec JSON -> typed events, with a clear reason for every event we refuse."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "alias"})
MAX_ID_LENGTH = 256


class EventError(ValueError):
    """An event that cannot be processed; `str(err)` is the reason put in the dead letter."""


@dataclass(slots=True)
class Event:
    """One Segment event. `timestamp` is event time in epoch seconds (UTC)."""

    type: str
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    message_id: str
    timestamp: float
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None

    @property
    def consumer_id(self) -> str:
        """The key the event belongs to: userId when known, else anonymousId."""
        cid = self.user_id or self.anonymous_id
        assert cid is not None  # guaranteed by parse_event
        return cid

    @property
    def merge_source(self) -> str | None:
        """The id whose profile this event merges into `consumer_id`, if any.

        identify/alias with both anonymousId and userId merges the anonymous profile; an alias
        with previousId merges that one.
        """
        if self.type not in ("identify", "alias") or self.user_id is None:
            return None
        other = self.previous_id if self.type == "alias" and self.previous_id else self.anonymous_id
        return other if other and other != self.user_id else None


def iso(ts: float) -> str:
    """Epoch seconds -> ISO-8601 UTC with milliseconds and a Z."""
    ms = round(ts * 1000)
    seconds, milli = divmod(ms, 1000)
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    return f"{_iso_hour(hour)}:{minute:02d}:{second:02d}.{milli:03d}Z"


@lru_cache(maxsize=4096)
def _iso_hour(hours: int) -> str:
    """'YYYY-MM-DDTHH' of an hour since the epoch (outputs of an hour share it)."""
    return datetime.fromtimestamp(hours * 3600, UTC).strftime("%Y-%m-%dT%H")


def parse_time(value: Any, what: str = "timestamp") -> float:
    """ISO-8601 (with Z or an offset; naive means UTC) -> epoch seconds."""
    if not isinstance(value, str):
        raise EventError(f"{what} must be an ISO-8601 string, got {type(value).__name__}")
    try:
        dt = datetime.fromisoformat(value)  # 3.11 reads "Z" and most ISO-8601 forms
    except ValueError:
        text = value.strip()
        if text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise EventError(f"{what} is not ISO-8601: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _opt_id(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value  # the common case, first
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventError(f"{key} must be a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise EventError(f"{key} longer than {MAX_ID_LENGTH} characters")
    return text


def _opt_dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(f"{key} must be an object, got {type(value).__name__}")
    return value


def derived_message_id(obj: dict[str, Any]) -> str:
    """A stable messageId for an event that has none: a hash of its canonical JSON."""
    digest = hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return "derived-" + digest.hexdigest()


def parse_event(obj: Any) -> Event:
    """Validate one decoded Segment JSON object; raise EventError with the reason."""
    if not isinstance(obj, dict):
        raise EventError(f"event must be a JSON object, got {type(obj).__name__}")
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        raise EventError(f"type must be one of {sorted(EVENT_TYPES)}, got {etype!r}")
    user_id = _opt_id(obj, "userId")
    anonymous_id = _opt_id(obj, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise EventError("missing userId and anonymousId")
    previous_id = _opt_id(obj, "previousId") if etype == "alias" else None
    if etype == "alias" and (user_id is None or (previous_id is None and anonymous_id is None)):
        raise EventError("alias needs userId and previousId (or anonymousId)")
    name: str | None = None
    if etype == "track":
        name = obj.get("event")
        if not isinstance(name, str) or not name:
            raise EventError("track event without an event name")
    elif etype in ("page", "screen"):
        raw_name = obj.get("name")
        name = raw_name if isinstance(raw_name, str) else None
    stamp = obj.get("timestamp") or obj.get("originalTimestamp") or obj.get("receivedAt")
    if stamp is None:
        raise EventError("missing timestamp")
    message_id = _opt_id(obj, "messageId") or derived_message_id(obj)
    properties = _opt_dict(obj, "properties")
    traits = _opt_dict(obj, "traits")
    context = _opt_dict(obj, "context")
    if not traits and isinstance(context.get("traits"), dict):
        traits = context["traits"]
    return Event(  # positional: this runs for every event
        etype,
        name,
        user_id,
        anonymous_id,
        message_id,
        parse_time(stamp),
        properties,
        traits,
        context,
        previous_id,
    )


def decode_event(data: bytes | str) -> Event:
    """Parse a JSON document into an Event (EventError on bad JSON too)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"invalid JSON: {exc}") from None
    return parse_event(obj)


def consumer_key(obj: dict[str, Any]) -> str | None:
    """The partitioning key of a raw Segment object: userId, else anonymousId."""
    for key in ("userId", "anonymousId"):
        value = obj.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def input_topic(obj: dict[str, Any]) -> str:
    """Which input topic an event travels on: identities, purchases or clickstream."""
    etype = obj.get("type")
    if etype in ("identify", "alias", "group"):
        return "identities"
    if etype == "track" and obj.get("event") in PURCHASE_EVENTS:
        return "purchases"
    return "clickstream"


PURCHASE_EVENTS = frozenset(
    {"Checkout Started", "Order Completed", "Order Refunded", "Order Cancelled", "Order Updated"}
)
