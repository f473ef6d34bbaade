"""Segment Spec JSON -> typed events, with a clear reason for every event we refuse."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any, Final

import orjson

EVENT_TYPES: Final = frozenset({"track", "identify", "page", "screen", "alias"})
MAX_ID_LENGTH: Final = 256
MAX_TEXT_LENGTH: Final = 1024  # event names and the string properties the features read
MAX_TRAITS_BYTES: Final = 16_384  # traits of one event, as JSON (they are stored in the profile)
MAX_DEPTH: Final = 32  # nesting of what is stored (traits)
MAX_PRODUCTS: Final = 1000  # items of one event's products[]
MAX_AMOUNT: Final = 1e12  # prices, quantities, revenue, discount (_plain_amount says it again)
MAX_TIME_TEXT: Final = 64
MIN_TIME: Final = 631_152_000.0  # 1990-01-01T00:00:00Z (CDNOW, the classic purchase data, is 1997)
MAX_TIME: Final = 4_102_444_800.0  # 2100-01-01T00:00:00Z

# Why an input is refused: the `reason` of its dead letter (a duplicate is not a dead letter).
BAD_TYPE: Final = "bad_type"
INVALID_JSON: Final = "invalid_json"
INVALID_VALUE: Final = "invalid_value"
TOO_DEEP: Final = "too_deep"
TOO_LARGE: Final = "too_large"
TIME_OUT_OF_RANGE: Final = "time_out_of_range"
MISSING_FIELD: Final = "missing_field"
IDENTITY_CONFLICT: Final = "identity_conflict"
INTERNAL_ERROR: Final = "internal_error"
REASONS: Final = (
    BAD_TYPE,
    INVALID_JSON,
    INVALID_VALUE,
    TOO_DEEP,
    TOO_LARGE,
    TIME_OUT_OF_RANGE,
    MISSING_FIELD,
    IDENTITY_CONFLICT,
    INTERNAL_ERROR,
)


class EventError(ValueError):
    """An event that cannot be processed: `code` (one of REASONS) is the dead letter's reason,
    `message` (also `str(err)`) says what is wrong for a human."""

    def __init__(self, message: str, code: str = BAD_TYPE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


#: (country, city, latitude, longitude) of context.location, each as sent or None
Location = tuple[str | None, str | None, float | None, float | None]


class Event:
    """One Segment event. `timestamp` is event time in epoch seconds (UTC).

    A plain class, not a dataclass: mypyc compiles this __init__, while a dataclass's is made
    at import time and runs as Python, once per event."""

    __slots__ = (
        "anonymous_id",
        "brand",
        "category",
        "context",
        "coupon",
        "discount",
        "location",
        "marketing",
        "message_id",
        "name",
        "order_id",
        "previous_id",
        "price",
        "product_id",
        "products",
        "properties",
        "quantity",
        "revenue",
        "timestamp",
        "total",
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
        #: context.location as parse_event read it, when it has the usual shape (country and
        #: city strings or absent, coordinates floats or absent; all None when absent); None:
        #: read `context`
        self.location: Location | None = None
        #: context.consent.categoryPreferences.marketing (None: not given)
        self.marketing: bool | None = None
        # The properties the features and triggers read, as parse_event validated them (the
        # value of properties.get(name): each is read once per event). Only those of the
        # event's name are read (_read_properties); the others stay None, as do all of an
        # Event made otherwise than by parse_event.
        self.product_id: Any = None  # (any event's; products too)
        self.products: Any = None
        self.price: Any = None
        self.quantity: Any = None
        self.category: Any = None
        self.brand: Any = None
        self.order_id: Any = None
        self.revenue: Any = None
        self.total: Any = None
        self.discount: Any = None
        self.coupon: Any = None

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
    if type(value) is not str:
        raise EventError(f"{what} must be an ISO-8601 string, got {type(value).__name__}")
    if len(value) == 24:
        t = _utc_millis(value)
        if t >= 0.0:
            return t
    if len(value) > MAX_TIME_TEXT:
        raise EventError(f"{what} longer than {MAX_TIME_TEXT} characters", TOO_LARGE)
    text = value.strip()
    if text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)  # 3.11 reads "Z" and most ISO-8601 forms
    except ValueError:
        raise EventError(f"{what} is not ISO-8601: {value!r}", INVALID_VALUE) from None
    if not _calendar_date(text):  # fromisoformat also reads week dates and the basic form
        raise EventError(
            f"{what} is not a calendar date (YYYY-MM-DD...): {value!r}", TIME_OUT_OF_RANGE
        )
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):  # year 1 with a positive offset, say
        raise EventError(f"{what} is out of range: {value!r}", TIME_OUT_OF_RANGE) from None


def _calendar_date(text: str) -> bool:
    """Whether `text` starts with YYYY-MM-DD (digits and dashes)."""
    if len(text) < 10 or text[4] != "-" or text[7] != "-":
        return False
    digits = text[0:4] + text[5:7] + text[8:10]
    return digits.isdigit() and digits.isascii()


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
    # (digits inline: a call per pair of them costs more than the arithmetic, in Python)
    year = b[0] * 1000 + b[1] * 100 + b[2] * 10 + b[3] - 53328  # 48 * 1111
    month, day = b[5] * 10 + b[6] - 528, b[8] * 10 + b[9] - 528  # 48 * 11
    hour, minute = b[11] * 10 + b[12] - 528, b[14] * 10 + b[15] - 528
    second = b[17] * 10 + b[18] - 528
    millis = b[20] * 100 + b[21] * 10 + b[22] - 5328  # 48 * 111
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


def _show(value: Any) -> str:
    """A value for a message: its repr, cut short."""
    text = repr(value) if type(value) is str else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _check_id(value: Any, key: str) -> str | None:
    """An optional id as a string: None when absent or empty, an int as its digits."""
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return value  # the common case, first
    if value is None or (type(value) is str and not value):
        return None
    if type(value) is int:  # (not a bool: type() is exact)
        if value.bit_length() > 64:
            raise EventError(f"{key} is a number too large for an id", TOO_LARGE)
        return str(value)
    if not isinstance(value, str):
        raise EventError(f"{key} must be a string, got {_show(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise EventError(f"{key} longer than {MAX_ID_LENGTH} characters", TOO_LARGE)
    return str(value)  # (a str subclass, as a plain str)


def _check_dict(value: Any, key: str) -> dict[str, Any]:
    """An optional object: {} when absent."""
    if value is None:
        return {}
    if type(value) is dict:
        return value
    if not isinstance(value, dict):
        raise EventError(f"{key} must be an object, got {_show(value)}")
    return dict(value)


def _check_text(value: Any, key: str) -> None:
    """An optional string the features read (a category, a country...)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise EventError(f"{key} must be a string, got {_show(value)}")
    if len(value) > MAX_TEXT_LENGTH:
        raise EventError(f"{key} longer than {MAX_TEXT_LENGTH} characters", TOO_LARGE)


def _check_amount(value: Any, key: str) -> None:
    """An optional price, quantity or sum of money: a finite number, 0 to MAX_AMOUNT."""
    if value is None:
        return
    if type(value) is not float and type(value) is not int:  # (a bool is neither)
        raise EventError(f"{key} must be a number, got {_show(value)}")
    if type(value) is float and not math.isfinite(value):
        raise EventError(f"{key} must be a finite number, got {value}", INVALID_VALUE)
    if value < 0:
        raise EventError(f"{key} must not be negative, got {value}", INVALID_VALUE)
    if value > MAX_AMOUNT:
        raise EventError(f"{key} is implausibly large (over {MAX_AMOUNT:.0e})", INVALID_VALUE)


def _check_coordinate(value: Any, key: str) -> None:
    if value is None:
        return
    if type(value) is not float and type(value) is not int:
        raise EventError(f"{key} must be a number, got {_show(value)}")
    if type(value) is int and value.bit_length() > 64:  # (a float, NaN or out of range, is
        raise EventError(f"{key} is not a coordinate", INVALID_VALUE)  # ignored by features)


_AMOUNT: Final = 0
_TEXT: Final = 1
_ID: Final = 2
_PRODUCT: Final = (
    ("product_id", _ID),
    ("price", _AMOUNT),
    ("quantity", _AMOUNT),
    ("category", _TEXT),
    ("brand", _TEXT),
)


# The usual values, told apart fast (typed locals: compiled, these are machine operations)
def _plain_amount(value: Any) -> bool:
    """A float 0..MAX_AMOUNT (a NaN fails the comparison)."""
    if type(value) is float:
        f: float = value
        return 0.0 <= f <= MAX_AMOUNT
    if type(value) is int:  # (not a bool: type() is exact)
        i: int = value
        return 0 <= i <= 1_000_000_000_000
    return False


def _plain_text(value: Any) -> bool:
    """None, or a string of at most MAX_TEXT_LENGTH characters."""
    if type(value) is str:
        text: str = value
        return len(text) <= MAX_TEXT_LENGTH
    return value is None


def _plain_id(value: Any) -> bool:
    """A string id of at most MAX_ID_LENGTH characters."""
    if type(value) is str:
        text: str = value
        return len(text) <= MAX_ID_LENGTH
    return False


#: the traits and context of an Event while parse_event reads them (never returned)
_UNSET: Final[dict[str, Any]] = {}
#: context without a location: nothing for the features to read
_NOWHERE: Final[Location] = (None, None, None, None)


def _amount(properties: dict[str, Any], key: str) -> Any:
    """properties[key] if absent or a valid amount (else EventError)."""
    value = properties.get(key)
    if value is not None and not _plain_amount(value):
        _check_amount(value, "properties." + key)
    return value


def _text(properties: dict[str, Any], key: str) -> Any:
    """properties[key] if absent or a valid text (else EventError)."""
    value = properties.get(key)
    if value is not None and not _plain_text(value):
        _check_text(value, "properties." + key)
    return value


def _id(properties: dict[str, Any], key: str) -> Any:
    """properties[key] if absent or a valid id (else EventError)."""
    value = properties.get(key)
    if value is not None and not _plain_id(value):
        _check_id(value, "properties." + key)
    return value


def _read_properties(ev: Event, name: str, properties: dict[str, Any]) -> None:
    """Validate the properties the features read of an event named `name` onto `ev` (the
    first wrong one is the reason)."""
    # (comparisons, most frequent first: cheaper than a lookup of `name` in a dict)
    if name == "Product Viewed" or name == "Product Clicked":
        ev.price = _amount(properties, "price")
        ev.category = _text(properties, "category")
        ev.brand = _text(properties, "brand")
    elif name == "Product Added":
        ev.price = _amount(properties, "price")
        ev.quantity = _amount(properties, "quantity")
    elif name == "Product List Viewed":
        ev.category = _text(properties, "category")
        ev.brand = _text(properties, "brand")
    elif name == "Order Completed":
        ev.order_id = _id(properties, "order_id")
        ev.revenue = _amount(properties, "revenue")
        ev.total = _amount(properties, "total")
        ev.discount = _amount(properties, "discount")
        ev.coupon = _text(properties, "coupon")
    elif name == "Order Refunded" or name == "Order Cancelled":
        ev.order_id = _id(properties, "order_id")


def _check_fields(obj: dict[str, Any], fields: tuple[tuple[str, int], ...], where: str) -> None:
    for key, kind in fields:
        value = obj.get(key)
        if value is None:
            continue
        if kind == _AMOUNT:
            if not _plain_amount(value):
                _check_amount(value, where + key)
        elif kind == _TEXT:
            if not _plain_text(value):
                _check_text(value, where + key)
        elif not _plain_id(value):
            _check_id(value, where + key)


def _check_products(products: Any) -> None:
    if products is not None:
        if type(products) is not list:
            raise EventError(f"properties.products must be a list, got {_show(products)}")
        if len(products) > MAX_PRODUCTS:
            raise EventError(f"more than {MAX_PRODUCTS} products", TOO_LARGE)
        for item in products:
            if type(item) is not dict:
                raise EventError(
                    f"each of properties.products must be an object, got {_show(item)}"
                )
            _check_fields(item, _PRODUCT, "properties.products[].")


def _check_location(loc: Any) -> None:
    if type(loc) is not dict:
        raise EventError(f"context.location must be an object, got {_show(loc)}")
    _check_text(loc.get("country"), "context.location.country")
    _check_text(loc.get("city"), "context.location.city")
    _check_coordinate(loc.get("latitude"), "context.location.latitude")
    _check_coordinate(loc.get("longitude"), "context.location.longitude")


def _check_consent(consent: Any) -> bool | None:
    """context.consent.categoryPreferences.marketing (None: not given)."""
    if consent is None:
        return None
    if type(consent) is not dict:
        raise EventError(f"context.consent must be an object, got {_show(consent)}")
    prefs = consent.get("categoryPreferences")
    if prefs is None:
        return None
    if type(prefs) is not dict:
        raise EventError(
            f"context.consent.categoryPreferences must be an object, got {_show(prefs)}"
        )
    marketing = prefs.get("marketing")
    if marketing is None:
        return None
    if type(marketing) is not bool:
        raise EventError(
            "context.consent.categoryPreferences.marketing must be true or false, "
            f"got {_show(marketing)}"
        )
    flag: bool = marketing
    return flag


def _check_traits(traits: dict[str, Any], key: str) -> None:
    """Traits are kept in the profile: JSON-safe, bounded in size and depth, and the ones the
    features read of the right type."""
    try:
        data = orjson.dumps(traits)
    except orjson.JSONEncodeError as exc:
        if "ecursion" in str(exc):
            raise EventError(f"{key} nested deeper than {MAX_DEPTH} levels", TOO_DEEP) from None
        raise EventError(f"{key} cannot be stored as JSON: {exc}") from None
    if len(data) > MAX_TRAITS_BYTES:
        raise EventError(f"{key} larger than {MAX_TRAITS_BYTES} bytes of JSON", TOO_LARGE)
    # depth needs at least as many brackets: count them (fast) before walking
    if data.count(b"{") + data.count(b"[") > MAX_DEPTH and depth(traits) > MAX_DEPTH:
        raise EventError(f"{key} nested deeper than {MAX_DEPTH} levels", TOO_DEEP)
    _check_text(traits.get("email"), key + ".email")
    _check_text(traits.get("country"), key + ".country")
    _check_text(traits.get("city"), key + ".city")
    address = traits.get("address")
    if address is not None:
        if type(address) is not dict:
            raise EventError(f"{key}.address must be an object, got {_show(address)}")
        _check_text(address.get("country"), key + ".address.country")
        _check_text(address.get("city"), key + ".address.city")
    unsub = traits.get("unsubscribed")
    if unsub is not None and type(unsub) is not bool:
        raise EventError(f"{key}.unsubscribed must be true or false, got {_show(unsub)}")


def depth(value: Any) -> int:
    """How deeply objects and lists nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if level > deepest:
            deepest = level
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, level + 1))
    return deepest


def derived_message_id(obj: dict[str, Any]) -> str:
    """A stable messageId for an event that has none: a hash of its canonical JSON."""
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        code = TOO_DEEP if "ecursion" in str(exc) else BAD_TYPE
        raise EventError(f"the event cannot be encoded as JSON: {exc}", code) from None
    return "derived-" + hashlib.blake2b(data, digest_size=16).hexdigest()


def parse_event(obj: Any) -> Event:
    """Validate one decoded Segment JSON object; raise EventError with the reason.

    Every field the engine reads gets its exact type here (compiled, the engine would raise
    TypeError where Python coerces), so the source and the compiled engine agree on every input.
    """
    # This runs for every event: the usual values (absent or non-empty string ids, absent or
    # object fields, float amounts) are taken inline, anything else goes through the _check_*
    # functions (the same checks, in the same order).
    # (typed locals: compiled, a dict's .get() is a direct lookup, an Any's a method call)
    if not isinstance(obj, dict):
        raise EventError(f"event must be a JSON object, got {type(obj).__name__}")
    etype = obj.get("type")
    if type(etype) is not str or not (  # (EVENT_TYPES, compared: cheaper than a set lookup)
        etype == "track" or etype == "page" or etype == "identify" or etype == "screen"
        or etype == "alias"
    ):
        if etype is None:
            raise EventError("missing type", MISSING_FIELD)
        if type(etype) is not str:
            raise EventError(f"type must be a string, got {_show(etype)}")
        raise EventError(
            f"type must be one of {sorted(EVENT_TYPES)}, got {_show(etype)}", INVALID_VALUE
        )
    user_id = obj.get("userId")
    if user_id is not None and (type(user_id) is not str or not 0 < len(user_id) <= MAX_ID_LENGTH):
        user_id = _check_id(user_id, "userId")
    anonymous_id = obj.get("anonymousId")
    if anonymous_id is not None and (
        type(anonymous_id) is not str or not 0 < len(anonymous_id) <= MAX_ID_LENGTH
    ):
        anonymous_id = _check_id(anonymous_id, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise EventError("missing userId and anonymousId", MISSING_FIELD)
    name: str | None = None
    previous_id: str | None = None
    if etype == "track":
        raw_name = obj.get("event")
        if type(raw_name) is not str or not 0 < len(raw_name) <= MAX_TEXT_LENGTH:
            if raw_name is None or raw_name == "":
                raise EventError("track event without an event name", MISSING_FIELD)
            _check_text(raw_name, "event")
            raw_name = str(raw_name)
        name = raw_name
    elif etype == "page" or etype == "screen":
        raw_name = obj.get("name")
        if type(raw_name) is str and len(raw_name) <= MAX_TEXT_LENGTH:
            name = raw_name
        elif raw_name is not None:
            _check_text(raw_name, "name")
            name = str(raw_name)
    elif etype == "alias":
        previous_id = _check_id(obj.get("previousId"), "previousId")
        if user_id is None or (previous_id is None and anonymous_id is None):
            raise EventError("alias needs userId and previousId (or anonymousId)", MISSING_FIELD)
    stamp = obj.get("timestamp")
    if stamp is None or (isinstance(stamp, str) and not stamp):
        stamp = obj.get("originalTimestamp")
        if stamp is None or (isinstance(stamp, str) and not stamp):
            stamp = obj.get("receivedAt")
            if stamp is None or (isinstance(stamp, str) and not stamp):
                raise EventError("missing timestamp", MISSING_FIELD)
    t = parse_time(stamp)
    if not MIN_TIME <= t < MAX_TIME:
        raise EventError(
            f"timestamp {_show(stamp)} is outside {iso(MIN_TIME)[:4]}..{iso(MAX_TIME)[:4]}",
            TIME_OUT_OF_RANGE,
        )
    message_id = obj.get("messageId")
    if type(message_id) is not str or not 0 < len(message_id) <= MAX_ID_LENGTH:
        message_id = _check_id(message_id, "messageId") or derived_message_id(obj)
    raw = obj.get("properties")
    properties: dict[str, Any] = raw if type(raw) is dict else _check_dict(raw, "properties")
    ev = Event(
        etype,
        name,
        user_id,
        anonymous_id,
        message_id,
        t,
        properties,
        _UNSET,
        _UNSET,
        previous_id,
    )
    if properties:
        # the properties the features read get their exact types before anything uses them
        if name is not None:
            _read_properties(ev, name, properties)
        pid = properties.get("product_id")  # (read by the triggers, whatever the event)
        if pid is not None:
            if not _plain_id(pid):
                _check_id(pid, "properties.product_id")
            ev.product_id = pid
        products = properties.get("products")
        if products is not None:
            _check_products(products)
            ev.products = products
    raw = obj.get("context")
    context: dict[str, Any] = raw if type(raw) is dict else _check_dict(raw, "context")
    ev.context = context
    location: Location | None = _NOWHERE
    if context:
        # context.location comes with nearly every event: the usual shape is checked inline,
        # and handed to the features as read (they need not look it up again)
        raw = context.get("location")
        if raw is not None:
            if type(raw) is dict:
                loc: dict[str, Any] = raw
                country = loc.get("country")
                city = loc.get("city")
                lat = loc.get("latitude")
                lon = loc.get("longitude")
                if (
                    _plain_text(country)
                    and _plain_text(city)
                    # (a float out of -90..90 / -180..180, or not finite, is ignored)
                    and (type(lat) is float or lat is None)
                    and (type(lon) is float or lon is None)
                ):
                    location = (country, city, lat, lon)
                else:
                    _check_location(loc)
                    location = None
            else:
                _check_location(raw)
        consent = context.get("consent")
        if consent is not None:
            ev.marketing = _check_consent(consent)
    ev.location = location
    raw = obj.get("traits")
    traits: dict[str, Any] = raw if type(raw) is dict else _check_dict(raw, "traits")
    if traits:
        _check_traits(traits, "traits")
    elif "traits" in context:
        traits = _check_dict(context["traits"], "context.traits")
        if traits:
            _check_traits(traits, "context.traits")
    ev.traits = traits
    return ev


def decode_event(data: bytes | str) -> Event:
    """Parse a JSON document into an Event (EventError on bad JSON too)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"invalid JSON: {exc}", INVALID_JSON) from None
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
