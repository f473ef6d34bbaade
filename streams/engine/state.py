"""Per-consumer state: everything the features, segments and triggers need, and its bytes form.

The serialized form is a positional JSON array (orjson): compact, fast, and versioned by its
first element so a newer engine can read older state.
"""

from __future__ import annotations

from typing import Any

import orjson

STATE_VERSION = 1
MAX_RECENT_ORDERS = 10
MAX_CART_ITEMS = 20
MAX_PRODUCTS = 10
MAX_SEEN_IDS = 2000


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


class ConsumerState:
    """Everything we keep about one consumer (after identity merges, the merged one)."""

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
        "revenue",
        "seen",
        "segments",
        "timers",
        "traits",
        "views",
    )

    def __init__(self, consumer_id: str, now: float) -> None:
        self.id = consumer_id
        self.first_seen = now
        self.last_seen = now
        self.events = 0
        self.views = 0
        self.cart_adds = 0
        self.orders = 0
        self.revenue = 0.0
        self.discounted_orders = 0
        self.first_order: float | None = None
        self.last_order: float | None = None
        #: [distinct UTC days with orders, revenue of the first of them]: the customer models
        #: count a day's orders as one transaction (see features._order_days)
        self.order_days: list[float] = [0.0, 0.0]
        # order_id -> [revenue, discounted(0/1), time], the latest few, for refunds and
        # cancellations (time absent in state written before it was kept)
        self.recent_orders: dict[str, list[Any]] = {}
        self.price: dict[int, float] = {}  # price sketch (sketches.price_*)
        self.cat_aff: dict[str, float] = {}
        self.brand_aff: dict[str, float] = {}
        self.aff_ts = now
        self.cart: dict[str, float] = {}  # product_id -> value (price * quantity)
        self.traits: dict[str, Any] = {}
        self.email: str | None = None
        self.country: str | None = None
        self.city: str | None = None
        self.lat: float | None = None
        self.lon: float | None = None
        self.consented = True
        self.consent_ts = 0.0
        self.segments: list[str] = []
        self.timers: dict[str, Timer] = {}
        self.last_fired: dict[str, float] = {}
        self.fired: list[float] = []  # times of emitted triggers, for the frequency cap
        self.seen: dict[str, float] = {}  # messageId -> event time, for dedupe
        self.aliases: list[str] = []  # ids merged into this one
        #: signature of the segments last evaluated in full (0: never); see SegmentPlan
        self.plan = 0

    def to_bytes(self) -> bytes:
        return orjson.dumps(
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
                list(self.price.items()),  # (bucket, weight) pairs: JSON arrays
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
                {k: t.to_json() for k, t in self.timers.items()},
                self.last_fired,
                self.fired,
                self.seen,
                self.aliases,
                self.plan,
                self.order_days,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsumerState:
        d = orjson.loads(data)
        if d[0] != STATE_VERSION:
            raise ValueError(f"unknown consumer state version {d[0]}")
        s = cls("", 0.0)  # (mypyc cannot build a native object without __init__)
        (
            _,
            s.id,
            s.first_seen,
            s.last_seen,
            s.events,
            s.views,
            s.cart_adds,
            s.orders,
            s.revenue,
            s.discounted_orders,
            s.first_order,
            s.last_order,
            s.recent_orders,
            price,
            s.cat_aff,
            s.brand_aff,
            s.aff_ts,
            s.cart,
            s.traits,
            s.email,
            s.country,
            s.city,
            s.lat,
            s.lon,
            s.consented,
            s.consent_ts,
            s.segments,
            timers,
            s.last_fired,
            s.fired,
            s.seen,
            s.aliases,
        ) = d[:32]
        s.plan = d[32] if len(d) > 32 else 0  # absent in state written before it existed
        if len(d) > 33:
            s.order_days = d[33]
        else:  # written before orders were counted per day: one day per order
            s.order_days = [float(s.orders), s.revenue / s.orders if s.orders else 0.0]
        s.price = {int(b): w for b, w in price}
        s.timers = {k: Timer.from_json(v) for k, v in timers.items()}
        return s
