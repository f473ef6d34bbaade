"""Per-consumer state: everything the features, segments and triggers need, and its bytes form.

The fields are declared once, in `FIELDS`; the class body (slots, `__init__`, `to_bytes`,
`from_bytes`) is generated from it by `python -m streams.codegen`, as plain code that mypyc
compiles to direct field accesses. The bytes form is a positional JSON array (orjson):
`[STATE_VERSION, field, field, ...]` in `FIELDS` order.

Adding a field is one line at the end of `FIELDS` with `since=` the next version (which then
becomes STATE_VERSION), then `python -m streams.codegen`. A state of an older version lacks the
fields added since: they keep the value `__init__` gives them. A newer version than this engine
knows raises StateVersionError (an older engine cannot know what a newer state means).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from mypy_extensions import mypyc_attr

from streams.engine import jsonbytes

MAX_RECENT_ORDERS = 10
MAX_CART_ITEMS = 20
MAX_PRODUCTS = 10
MAX_SEEN_IDS = 2000


class StateVersionError(ValueError):
    """Stored consumer state this engine cannot read (a newer version, or not a state)."""


@mypyc_attr(acyclic=True)  # (no cycle through it: the garbage collector never looks at one)
class Timer:
    """A pending trigger of one consumer: fires at `due` unless disarmed or re-armed."""

    __slots__ = ("arm_id", "armed_at", "due", "products")

    def __init__(self, due: float, armed_at: float, arm_id: str, products: list[str]) -> None:
        self.due = due
        self.armed_at = armed_at
        self.arm_id = arm_id
        self.products = products

    def to_json(self) -> list[Any]:
        return [self.due, self.armed_at, self.arm_id, self.products]

    @classmethod
    def from_json(cls, d: list[Any]) -> Timer:
        return cls(d[0], d[1], d[2], list(d[3]))


@dataclass(frozen=True, slots=True)
class Field:
    """One field of ConsumerState: its type, its value in `__init__` (Python source over
    `consumer_id` and `now`), the version that added it, and `codec`: the name of a pair of
    functions `_<codec>_out` / `_<codec>_in` of this module when JSON cannot hold it as is."""

    name: str
    type: str
    init: str
    doc: str = ""
    since: int = 1
    codec: str | None = None
    #: its value in a state written before it existed (Python over the loaded state `s`), when
    #: `init` would be wrong there
    legacy: str | None = None


FIELDS: tuple[Field, ...] = (
    Field("id", "str", "consumer_id"),
    Field("first_seen", "float", "now"),
    Field("last_seen", "float", "now"),
    Field("events", "int", "0"),
    Field("views", "int", "0"),
    Field("cart_adds", "int", "0"),
    Field("orders", "int", "0"),
    Field("revenue", "float", "0.0"),
    Field("discounted_orders", "int", "0"),
    Field("first_order", "float | None", "None"),
    Field("last_order", "float | None", "None"),
    Field("recent_orders", "dict[str, list[Any]]", "{}",
          "order_id -> [revenue, discounted(0/1), time], the latest few, for refunds"),
    Field("price", "dict[int, float]", "{}", "price sketch (sketches.price_*)", codec="price"),
    Field("cat_aff", "dict[str, float]", "{}"),
    Field("brand_aff", "dict[str, float]", "{}"),
    Field("aff_ts", "float", "now"),
    Field("cart", "dict[str, float]", "{}", "product_id -> value (price * quantity)"),
    Field("traits", "dict[str, Any]", "{}"),
    Field("email", "str | None", "None"),
    Field("country", "str | None", "None"),
    Field("city", "str | None", "None"),
    Field("lat", "float | None", "None"),
    Field("lon", "float | None", "None"),
    Field("consented", "bool", "True"),
    Field("consent_ts", "float", "0.0"),
    Field("segments", "list[str]", "[]"),
    Field("timers", "dict[str, Timer]", "{}", codec="timers"),
    Field("last_fired", "dict[str, float]", "{}"),
    Field("fired", "list[float]", "[]", "times of emitted triggers, for the frequency cap"),
    Field("seen", "dict[str, float]", "{}", "messageId hash -> event time, for dedupe"),
    Field("aliases", "list[str]", "[]", "ids merged into this one"),
    Field("plan", "int", "0", "signature of the segments last evaluated in full (0: never)"),
    Field("recheck", "float", "0.0", "due time of the next segment re-check (0: none)", since=2),
    Field("order_days", "list[float]", "[0.0, 0.0]",
          "[days with orders, revenue of the first]: models count a day's orders once",
          since=2, legacy="_order_days_legacy(s)"),
    Field("ttl_due", "float", "0.0",
          "due time of the profile_ttl entry in the index (0: none)", since=3),
    Field("user", "bool", "False",
          "a userId's event reached it: a profile with a user id, never merged into another",
          since=4, legacy="bool(s.aliases)"),
    Field("windows", "list[list[Any]]", "[]",
          "open attribution windows of fired triggers (attribution.py)", since=5),
    Field("entered", "dict[str, float]", "{}",
          "segment -> when the consumer entered it (states before version 6: not known)",
          since=6),
)
STATE_VERSION = max(f.since for f in FIELDS)
#: fields every stored state ever written holds (`plan` came in version 1 without a bump)
ALWAYS_STORED = 31


def _order_days_legacy(s: ConsumerState) -> list[float]:
    """order_days of a state written before it was kept: one day per order (what the models
    assumed then)."""
    return [float(s.orders), s.revenue / s.orders if s.orders else 0.0]


def _price_out(price: dict[int, float]) -> list[Any]:
    return list(price.items())  # (bucket, weight) pairs: JSON object keys are strings


def _price_in(pairs: Any) -> dict[int, float]:
    return {int(b): w for b, w in pairs}


def _timers_out(timers: dict[str, Timer]) -> dict[str, Any]:
    return {k: t.to_json() for k, t in timers.items()}


def _timers_in(timers: Any) -> dict[str, Timer]:
    return {k: Timer.from_json(v) for k, v in timers.items()}


def check_version(d: Any) -> None:
    """Raise StateVersionError unless `d` (a decoded state) is one this engine reads."""
    if type(d) is not list or not d or type(d[0]) is not int:
        raise StateVersionError("not a consumer state (expected [version, fields...])")
    version = d[0]
    if not 1 <= version <= STATE_VERSION:
        raise StateVersionError(
            f"consumer state version {version} is unknown to this engine, which reads versions "
            f"1 to {STATE_VERSION}: it was written by a newer release"
        )
    if len(d) <= ALWAYS_STORED:
        raise StateVersionError(
            f"consumer state of version {version} has {len(d) - 1} fields, "
            f"fewer than the {ALWAYS_STORED} every version holds"
        )


@mypyc_attr(acyclic=True)  # (its containers hold plain data; they alone are collected)
class ConsumerState:
    """Everything we keep about one consumer (after identity merges, the merged one)."""

    # <generated by `python -m streams.codegen` from FIELDS: do not edit by hand>
    __slots__ = (
        "aff_ts",
        "aliases",
        "brand_aff",
        "cart",
        "cart_adds",
        "cat_aff",
        "city",
        "consent_ts",
        "consented",
        "country",
        "discounted_orders",
        "email",
        "entered",
        "events",
        "fired",
        "first_order",
        "first_seen",
        "id",
        "last_fired",
        "last_order",
        "last_seen",
        "lat",
        "lon",
        "order_days",
        "orders",
        "plan",
        "price",
        "recent_orders",
        "recheck",
        "revenue",
        "seen",
        "segments",
        "timers",
        "traits",
        "ttl_due",
        "user",
        "views",
        "windows",
    )

    def __init__(self, consumer_id: str, now: float) -> None:
        self.id: str = consumer_id
        self.first_seen: float = now
        self.last_seen: float = now
        self.events: int = 0
        self.views: int = 0
        self.cart_adds: int = 0
        self.orders: int = 0
        self.revenue: float = 0.0
        self.discounted_orders: int = 0
        self.first_order: float | None = None
        self.last_order: float | None = None
        # order_id -> [revenue, discounted(0/1), time], the latest few, for refunds
        self.recent_orders: dict[str, list[Any]] = {}
        self.price: dict[int, float] = {}  # price sketch (sketches.price_*)
        self.cat_aff: dict[str, float] = {}
        self.brand_aff: dict[str, float] = {}
        self.aff_ts: float = now
        self.cart: dict[str, float] = {}  # product_id -> value (price * quantity)
        self.traits: dict[str, Any] = {}
        self.email: str | None = None
        self.country: str | None = None
        self.city: str | None = None
        self.lat: float | None = None
        self.lon: float | None = None
        self.consented: bool = True
        self.consent_ts: float = 0.0
        self.segments: list[str] = []
        self.timers: dict[str, Timer] = {}
        self.last_fired: dict[str, float] = {}
        self.fired: list[float] = []  # times of emitted triggers, for the frequency cap
        self.seen: dict[str, float] = {}  # messageId hash -> event time, for dedupe
        self.aliases: list[str] = []  # ids merged into this one
        self.plan: int = 0  # signature of the segments last evaluated in full (0: never)
        self.recheck: float = 0.0  # due time of the next segment re-check (0: none)
        # [days with orders, revenue of the first]: models count a day's orders once
        self.order_days: list[float] = [0.0, 0.0]
        self.ttl_due: float = 0.0  # due time of the profile_ttl entry in the index (0: none)
        # a userId's event reached it: a profile with a user id, never merged into another
        self.user: bool = False
        # open attribution windows of fired triggers (attribution.py)
        self.windows: list[list[Any]] = []
        # segment -> when the consumer entered it (states before version 6: not known)
        self.entered: dict[str, float] = {}

    def to_bytes(self) -> bytes:
        return jsonbytes.dumps(
            [
                STATE_VERSION,
                self.id,
                self.first_seen,
                self.last_seen,
                self.events,
                self.views,
                self.cart_adds,
                self.orders,
                self.revenue,
                self.discounted_orders,
                self.first_order,
                self.last_order,
                self.recent_orders,
                _price_out(self.price),
                self.cat_aff,
                self.brand_aff,
                self.aff_ts,
                self.cart,
                self.traits,
                self.email,
                self.country,
                self.city,
                self.lat,
                self.lon,
                self.consented,
                self.consent_ts,
                self.segments,
                _timers_out(self.timers),
                self.last_fired,
                self.fired,
                self.seen,
                self.aliases,
                self.plan,
                self.recheck,
                self.order_days,
                self.ttl_due,
                self.user,
                self.windows,
                self.entered,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsumerState:
        d = orjson.loads(data)
        if type(d) is not list or len(d) != 39 or d[0] != STATE_VERSION:
            check_version(d)  # raises unless a known version
        s = cls("", 0.0)  # (mypyc cannot build a native object without __init__)
        n = len(d)
        s.id = d[1]
        s.first_seen = d[2]
        s.last_seen = d[3]
        s.events = d[4]
        s.views = d[5]
        s.cart_adds = d[6]
        s.orders = d[7]
        s.revenue = d[8]
        s.discounted_orders = d[9]
        s.first_order = d[10]
        s.last_order = d[11]
        s.recent_orders = d[12]
        s.price = _price_in(d[13])
        s.cat_aff = d[14]
        s.brand_aff = d[15]
        s.aff_ts = d[16]
        s.cart = d[17]
        s.traits = d[18]
        s.email = d[19]
        s.country = d[20]
        s.city = d[21]
        s.lat = d[22]
        s.lon = d[23]
        s.consented = d[24]
        s.consent_ts = d[25]
        s.segments = d[26]
        s.timers = _timers_in(d[27])
        s.last_fired = d[28]
        s.fired = d[29]
        s.seen = d[30]
        s.aliases = d[31]
        if n > 32:
            s.plan = d[32]
        if n > 33:
            s.recheck = d[33]
        if n > 34:
            s.order_days = d[34]
        else:
            s.order_days = _order_days_legacy(s)
        if n > 35:
            s.ttl_due = d[35]
        if n > 36:
            s.user = d[36]
        else:
            s.user = bool(s.aliases)
        if n > 37:
            s.windows = d[37]
        if n > 38:
            s.entered = d[38]
        return s
    # </generated>
