"""What one event may change in its consumer's state, saved before it is applied, to put back
exactly if applying it fails (the engine's last line of defence: an `internal_error`).

Cheaper than a copy of the state: every field is saved by value or by reference (a container
the event replaces, such as `segments`, comes back as it was), and only the containers that the
event's kinds of change edit in place are copied (`EDITED_BY`). The `seen` ids (up to 2,000)
are never copied: the engine takes the event's own id out again.
"""

from __future__ import annotations

from typing import Final

from streams.engine.segments import KIND_BITS
from streams.engine.state import ConsumerState

#: the containers of ConsumerState that applying an event edits in place, by the kind of change
#: (registry.KINDS) that does it; the triggers' timers are copied when the event arms or
#: disarms one (tests/unit/engine/test_undo.py checks that nothing is forgotten)
EDITED_BY: Final[dict[str, str]] = {
    "recent_orders": "orders",
    "order_days": "orders",
    "price": "price",
    "cat_aff": "affinity",
    "brand_aff": "affinity",
    "cart": "cart",
    "traits": "traits",
}
_ORDERS: Final = KIND_BITS["orders"]
_PRICE: Final = KIND_BITS["price"]
_AFFINITY: Final = KIND_BITS["affinity"]
_CART: Final = KIND_BITS["cart"]
_TRAITS: Final = KIND_BITS["traits"]


class Undo:
    """A consumer's state as it was before one event (`edits`: the mask of its kinds of change;
    `timers`: it arms or disarms a timer); `restore()` puts it back into the same object. An
    engine keeps one and `save`s into it for each event (no allocation per event)."""

    __slots__ = (
        "aff_ts", "aliases", "brand_aff", "cart", "cart_adds", "cat_aff", "city", "consent_ts",
        "consented", "country", "discounted_orders", "email", "entered", "events", "fired",
        "first_order",
        "first_seen", "last_fired", "last_order", "last_seen", "lat", "lon", "order_days",
        "orders", "plan", "price", "recent_orders", "recheck", "revenue", "seen", "segments",
        "state", "timers", "traits", "ttl_due", "user", "views", "windows",
    )

    def __init__(self, state: ConsumerState, edits: int, timers: bool) -> None:
        self.save(state, edits, timers)

    def save(self, state: ConsumerState, edits: int, timers: bool) -> None:
        """Save what an event with these changes can change in `state`."""
        self.state = state
        self.first_seen = state.first_seen
        self.last_seen = state.last_seen
        self.events = state.events
        self.views = state.views
        self.cart_adds = state.cart_adds
        self.orders = state.orders
        self.revenue = state.revenue
        self.discounted_orders = state.discounted_orders
        self.first_order = state.first_order
        self.last_order = state.last_order
        orders = edits & _ORDERS
        self.recent_orders = state.recent_orders.copy() if orders else state.recent_orders
        self.price = state.price.copy() if edits & _PRICE else state.price
        affinity = edits & _AFFINITY
        self.cat_aff = state.cat_aff.copy() if affinity else state.cat_aff
        self.brand_aff = state.brand_aff.copy() if affinity else state.brand_aff
        self.aff_ts = state.aff_ts
        self.cart = state.cart.copy() if edits & _CART else state.cart
        self.traits = state.traits.copy() if edits & _TRAITS else state.traits
        self.email = state.email
        self.country = state.country
        self.city = state.city
        self.lat = state.lat
        self.lon = state.lon
        self.consented = state.consented
        self.consent_ts = state.consent_ts
        self.segments = state.segments
        # (a Timer is never changed in place: triggers.arm puts a new one)
        self.timers = state.timers.copy() if timers else state.timers
        self.last_fired = state.last_fired
        self.fired = state.fired
        self.seen = state.seen
        self.aliases = state.aliases
        self.plan = state.plan
        self.recheck = state.recheck
        self.order_days = state.order_days.copy() if orders else state.order_days
        self.ttl_due = state.ttl_due
        self.user = state.user
        self.windows = state.windows  # (an event reads them; firings and merges edit them)
        self.entered = state.entered

    def restore(self, seen_key: str) -> ConsumerState:
        """The state as it was, `seen_key` (the event's dedupe key) taken out of its seen ids."""
        s = self.state
        s.first_seen = self.first_seen
        s.last_seen = self.last_seen
        s.events = self.events
        s.views = self.views
        s.cart_adds = self.cart_adds
        s.orders = self.orders
        s.revenue = self.revenue
        s.discounted_orders = self.discounted_orders
        s.first_order = self.first_order
        s.last_order = self.last_order
        s.recent_orders = self.recent_orders
        s.price = self.price
        s.cat_aff = self.cat_aff
        s.brand_aff = self.brand_aff
        s.aff_ts = self.aff_ts
        s.cart = self.cart
        s.traits = self.traits
        s.email = self.email
        s.country = self.country
        s.city = self.city
        s.lat = self.lat
        s.lon = self.lon
        s.consented = self.consented
        s.consent_ts = self.consent_ts
        s.segments = self.segments
        s.timers = self.timers
        s.last_fired = self.last_fired
        s.fired = self.fired
        self.seen.pop(seen_key, None)  # (the dict it had: a pruned copy replaced it since)
        s.seen = self.seen
        s.aliases = self.aliases
        s.plan = self.plan
        s.recheck = self.recheck
        s.order_days = self.order_days
        s.ttl_due = self.ttl_due
        s.windows = self.windows
        s.entered = self.entered
        s.user = self.user
        return s

