"""Segment Spec JSON -> typed events, with a clear reason for every event we refuse."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any, Final

import orjson

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "alias"})
MAX_ID_LENGTH = 256


class EventError(ValueError):
    """An event that cannot be processed; `str(err)` is the reason put in the dead letter."""


class Event:
    """One Segment event. `timestamp` is event time in epoch seconds (UTC).

    A plain class, not a dataclass: mypyc compiles this __init__, while a dataclass's is made
    at import time and runs as Python, once per event."""

    __slots__ = (
        "anonymous_id",
        "context",
        "message_id",
        "name",
        "previous_id",
        "properties",
        "timestamp",
        "traits",
        "type",
        "user_id",
    )

    def __init__(
        self,
        type: str,
        name: str | None,
        user_id: str | None,
        anonymous_id: str | None,
        message_id: str,
        timestamp: float,
        properties: dict[str, Any],
        traits: dict[str, Any],
        context: dict[str, Any],
        previous_id: str | None,
    ) -> None:
        self.type = type
        self.name = name
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.message_id = message_id
        self.timestamp = timestamp
        self.properties = properties
        self.traits = traits
        self.context = context
        self.previous_id = previous_id

    def __repr__(self) -> str:
        return f"Event({self.type!r}, {self.name!r}, {self.consumer_id!r}, {self.timestamp!r})"

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
    ms = _round(ts * 1000)
    seconds = ms // 1000  # (// and %, not divmod(): compiled, these are machine-int operations)
    # (table lookups: a format spec costs more than the rest of this function)
    return _iso_hour(seconds // 3600) + _MINUTE_SECOND[seconds % 3600] + _MILLI[ms % 1000]


def _round(x: float) -> int:
    """round(x): the nearest int, ties to even (compiled, machine arithmetic instead of a call;
    x - floor(x) is exact)."""
    n = math.floor(x)
    fraction = x - n
    if fraction > 0.5 or (fraction == 0.5 and n % 2 == 1):
        n += 1
    return n


_MINUTE_SECOND: Final = [f":{m:02d}:{s:02d}." for m in range(60) for s in range(60)]
_MILLI: Final = [f"{ms:03d}Z" for ms in range(1000)]
_HOURS: Final[dict[int, str]] = {}


def _iso_hour(hours: int) -> str:
    """'YYYY-MM-DDTHH' of an hour since the epoch (outputs of an hour share it: cached)."""
    text = _HOURS.get(hours)
    if text is None:
        if len(_HOURS) >= 4096:
            _HOURS.clear()
        text = _HOURS[hours] = datetime.fromtimestamp(hours * 3600, UTC).strftime("%Y-%m-%dT%H")
    return text


def parse_time(value: Any, what: str = "timestamp") -> float:
    """ISO-8601 (with Z or an offset; naive means UTC) -> epoch seconds."""
    if not isinstance(value, str):
        raise EventError(f"{what} must be an ISO-8601 string, got {type(value).__name__}")
    if len(value) == 24:
        t = _utc_millis(value)
        if t >= 0.0:
            return t
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


_LAYOUT: Final = b"0000-00-00T00:00:00.000Z"
_DIGITS_TO_0: Final = bytes.maketrans(b"123456789", b"000000000")
_EPOCH_DAY: Final = 719468  # days from 0000-03-01 to 1970-01-01, in the proleptic calendar


def _utc_millis(text: str) -> float:
    """`text` in the usual form "YYYY-MM-DDTHH:MM:SS.mmmZ" (years 1970 to 2199) as epoch seconds:
    the very float datetime.fromisoformat(text).timestamp() gives, for a fraction of its cost.
    -1.0 for any other text, valid or not (the caller parses it the long way)."""
    b = text.encode()
    if len(b) != 24 or b.translate(_DIGITS_TO_0) != _LAYOUT:
        return -1.0
    year = _2digits(b, 0) * 100 + _2digits(b, 2)
    month, day = _2digits(b, 5), _2digits(b, 8)
    hour, minute, second = _2digits(b, 11), _2digits(b, 14), _2digits(b, 17)
    millis = _2digits(b, 20) * 10 + b[22] - 48
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    # 30 or 31 days alternate, from 31 in January, and again from 31 in August
    days_in_month = 28 + leap if month == 2 else 30 + (month + month // 8) % 2
    if not (1970 <= year < 2200 and 1 <= month <= 12 and 1 <= day <= days_in_month):
        return -1.0
    if hour > 23 or minute > 59 or second > 59:
        return -1.0
    # days since the epoch, counted in years that start in March (so February comes last)
    y = year - (month <= 2)
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 + day_of_year - _EPOCH_DAY
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    # timestamp() divides the int of microseconds by 10**6: under 2**53, as here, the floats
    # are exact and the division is rounded the same
    return (float(seconds) * 1000.0 + float(millis)) * 1000.0 / 1e6


def _2digits(b: bytes, i: int) -> int:
    return (b[i] - 48) * 10 + b[i + 1] - 48


def _opt_id(obj: dict[str, Any], key: str) -> str | None:
    return _check_id(obj.get(key), key)


def _check_id(value: Any, key: str) -> str | None:
    """An optional id as a string: None when absent or empty, an int as its digits."""
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
    return _check_dict(obj.get(key), key)


def _check_dict(value: Any, key: str) -> dict[str, Any]:
    """An optional object: {} when absent."""
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
    # This runs for every event: the usual values (absent or non-empty string ids, absent or
    # object fields) are taken inline, anything else goes through _check_id/_check_dict (the same
    # checks, in the same order).
    if not isinstance(obj, dict):
        raise EventError(f"event must be a JSON object, got {type(obj).__name__}")
    etype = obj.get("type")
    if etype not in EVENT_TYPES:
        raise EventError(f"type must be one of {sorted(EVENT_TYPES)}, got {etype!r}")
    user_id = obj.get("userId")
    if user_id is not None and (type(user_id) is not str or not 0 < len(user_id) <= MAX_ID_LENGTH):
        user_id = _check_id(user_id, "userId")
    anonymous_id = obj.get("anonymousId")
    if anonymous_id is not None and (
        type(anonymous_id) is not str or not 0 < len(anonymous_id) <= MAX_ID_LENGTH
    ):
        anonymous_id = _check_id(anonymous_id, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise EventError("missing userId and anonymousId")
    name: str | None = None
    previous_id: str | None = None
    if etype == "track":
        name = obj.get("event")
        if not isinstance(name, str) or not name:
            raise EventError("track event without an event name")
    elif etype == "page" or etype == "screen":
        raw_name = obj.get("name")
        name = raw_name if isinstance(raw_name, str) else None
    elif etype == "alias":
        previous_id = _check_id(obj.get("previousId"), "previousId")
        if user_id is None or (previous_id is None and anonymous_id is None):
            raise EventError("alias needs userId and previousId (or anonymousId)")
    stamp = obj.get("timestamp") or obj.get("originalTimestamp") or obj.get("receivedAt")
    if stamp is None:
        raise EventError("missing timestamp")
    message_id = obj.get("messageId")
    if type(message_id) is not str or not 0 < len(message_id) <= MAX_ID_LENGTH:
        message_id = _check_id(message_id, "messageId") or derived_message_id(obj)
    properties = obj.get("properties")
    if type(properties) is not dict:
        properties = {} if properties is None else _check_dict(properties, "properties")
    traits = obj.get("traits")
    if type(traits) is not dict:
        traits = {} if traits is None else _check_dict(traits, "traits")
    context = obj.get("context")
    if type(context) is not dict:
        context = {} if context is None else _check_dict(context, "context")
    if not traits and "traits" in context and isinstance(context["traits"], dict):
        traits = context["traits"]
    return Event(
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
    """The consumer id of a raw Segment object by the rules `parse_event` applies: userId, else
    anonymousId, an integer id as its digits. None when it has no valid one (`parse_event`
    refuses such an event: it becomes a dead letter). `streams.contract` makes it the Kafka key."""
    # the common cases first: a non-empty string id
    user_id = obj.get("userId")
    if type(user_id) is str and 0 < len(user_id) <= MAX_ID_LENGTH:
        return user_id
    if user_id is None:
        anonymous_id = obj.get("anonymousId")
        if type(anonymous_id) is str and 0 < len(anonymous_id) <= MAX_ID_LENGTH:
            return anonymous_id
    try:
        return _check_id(user_id, "userId") or _check_id(obj.get("anonymousId"), "anonymousId")
    except EventError:
        return None
