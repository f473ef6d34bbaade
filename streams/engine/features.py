"""Feature updates: how one event changes a consumer's state.

Everything here is a plain function of (state, event, settings); population statistics
(RFM) are updated by the engine around these calls because they span consumers.
"""

from __future__ import annotations

from math import asin, cos, isfinite, radians, sin, sqrt
from typing import Any

from streams.engine.bgnbd import order_day
from streams.engine.events import Event
from streams.engine.sketches import price_add, price_merge
from streams.engine.state import MAX_CART_ITEMS, MAX_RECENT_ORDERS, ConsumerState

VIEW_EVENTS = frozenset({"Product Viewed", "Product Clicked"})
MAX_AFFINITY_KEYS = 12
_NUMBER = (int, float)  # not `int | float`: that builds a union object at every call


def _num(value: Any) -> float | None:
    if type(value) is float:  # the common case, first
        return value if isfinite(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBER):
        f = float(value)
        return f if isfinite(f) else None
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if isfinite(f) else None
    return None


def _str(value: Any) -> str | None:
    if type(value) is str:  # the common case, first
        return value or None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, _NUMBER) and not isinstance(value, bool):
        return str(value)
    return None


def decay(state: ConsumerState, now: float, half_life: float) -> None:
    """Bring the decayed affinity scores forward to `now`."""
    dt = now - state.aff_ts
    if dt <= 0.0:
        return
    factor: float = 0.5 ** (dt / half_life)  # (typed: float ** float is Any to mypy)
    scores = state.cat_aff
    for k, v in scores.items():
        scores[k] = v * factor
    scores = state.brand_aff
    for k, v in scores.items():
        scores[k] = v * factor
    state.aff_ts = now


def _bump(scores: dict[str, float], key: str, weight: float = 1.0) -> None:
    scores[key] = scores.get(key, 0.0) + weight
    if len(scores) > MAX_AFFINITY_KEYS:
        _drop_weakest(scores)


def _drop_weakest(scores: dict[str, float]) -> None:
    weakest = min(scores, key=lambda k: (scores[k], k))
    del scores[weakest]


def share(scores: dict[str, float], key: str) -> float:
    """Share of `key` in decayed scores (0..1); the decay factor cancels out."""
    total = sum(scores.values())
    return scores.get(key, 0.0) / total if total > 0 else 0.0


def top(scores: dict[str, float]) -> str | None:
    return max(scores, key=lambda k: (scores[k], k)) if scores else None


def _product_interest(
    state: ConsumerState, props: dict[str, Any], t: float, half_life: float, weight: float
) -> None:
    _interest(state, props.get("category"), props.get("brand"), t, half_life, weight)


def _interest(
    state: ConsumerState, category: Any, brand: Any, t: float, half_life: float, weight: float
) -> None:
    """A product's category and brand (as sent) count toward the affinities."""
    if type(category) is not str:
        category = _str(category)
    if type(brand) is not str:
        brand = _str(brand)
    if category or brand:  # (an empty string counts as absent, as _str says)
        decay(state, t, half_life)
        if category:
            _bump(state.cat_aff, category.lower(), weight)
        if brand:
            _bump(state.brand_aff, brand.lower(), weight)


def _products(items: Any) -> list[dict[str, Any]]:
    """The objects among an event's products[] (as sent)."""
    return [p for p in items if isinstance(p, dict)] if isinstance(items, list) else []


def apply_track(state: ConsumerState, ev: Event, half_life: float) -> bool:
    """Update counters and sketches for a track event. True when orders/revenue changed.

    The properties come as parse_event read them (ev.price...), each read once."""
    name = ev.name
    t = ev.timestamp
    if name in VIEW_EVENTS:
        state.views += 1
        price = _num(ev.price)
        if price is not None:
            price_add(state.price, price)
        _interest(state, ev.category, ev.brand, t, half_life, 1.0)
    elif name == "Product List Viewed":
        _interest(state, ev.category, ev.brand, t, half_life, 0.5)
    elif name == "Product Added":
        state.cart_adds += 1
        pid = ev.product_id
        if type(pid) is not str:
            pid = _str(pid)
        if pid:
            price = _num(ev.price) or 0.0
            qty = _num(ev.quantity) or 1.0
            state.cart[pid] = state.cart.get(pid, 0.0) + price * qty
            if len(state.cart) > MAX_CART_ITEMS:
                del state.cart[next(iter(state.cart))]
    elif name == "Product Removed":
        pid = _str(ev.product_id)
        if pid:
            state.cart.pop(pid, None)
    elif name == "Order Completed":
        return _order_completed(state, ev, half_life)
    elif name in ("Order Refunded", "Order Cancelled"):
        return _order_reversed(state, ev.order_id)
    return False


def _order_completed(state: ConsumerState, ev: Event, half_life: float) -> bool:
    order_id = _str(ev.order_id) or ev.message_id
    if order_id in state.recent_orders:
        return False  # the same order reported twice
    products = _products(ev.products)
    revenue = event_order_value(ev, products)
    discount = _num(ev.discount) or 0.0
    discounted = 1 if discount > 0 or _str(ev.coupon) else 0
    _order_day_added(state, ev.timestamp, revenue)
    state.orders += 1
    state.revenue += revenue
    state.discounted_orders += discounted
    if state.first_order is None:
        state.first_order = ev.timestamp
    state.first_order = min(state.first_order, ev.timestamp)
    state.last_order = max(state.last_order or ev.timestamp, ev.timestamp)
    state.recent_orders[order_id] = [revenue, discounted, ev.timestamp]
    if len(state.recent_orders) > MAX_RECENT_ORDERS:
        del state.recent_orders[next(iter(state.recent_orders))]
    for p in products:
        price = _num(p.get("price"))
        if price is not None:
            price_add(state.price, price, _num(p.get("quantity")) or 1.0)
        _product_interest(state, p, ev.timestamp, half_life, 2.0)
        pid = _str(p.get("product_id"))
        if pid:
            state.cart.pop(pid, None)
    return True


def order_value(props: dict[str, Any], products: list[dict[str, Any]] | None = None) -> float:
    """An order's value: `revenue`, else `total`, else the sum of its products' price x quantity."""
    return _order_value(props.get("revenue"), props.get("total"), props.get("products"), products)


def event_order_value(ev: Event, products: list[dict[str, Any]] | None = None) -> float:
    """order_value(ev.properties) of an Order Completed, from what parse_event read of it."""
    return _order_value(ev.revenue, ev.total, ev.products, products)


def _order_value(
    revenue: Any, total: Any, raw_products: Any, products: list[dict[str, Any]] | None
) -> float:
    value = _num(revenue)
    if value is None:
        value = _num(total)
    if value is None:
        items = _products(raw_products) if products is None else products
        value = sum(
            (_num(p.get("price")) or 0.0) * (_num(p.get("quantity")) or 1.0) for p in items
        )
    return value


def _order_reversed(state: ConsumerState, order_id_raw: Any) -> bool:
    order_id = _str(order_id_raw)
    if order_id is None or order_id not in state.recent_orders:
        return False  # unknown or too old to reverse
    record = state.recent_orders.pop(order_id)
    revenue, discounted = record[0], record[1]
    state.orders = max(0, state.orders - 1)
    state.revenue = max(0.0, state.revenue - revenue)
    state.discounted_orders = max(0, state.discounted_orders - discounted)
    if not _recount_order_days(state) and len(record) > 2:
        _order_day_removed(state, record[2], revenue)
    return True


# Orders per UTC day (state.order_days = [days, first day's revenue]) and the first and last
# order times follow every order and reversal exactly while all of a consumer's orders are among
# recent_orders (MAX_RECENT_ORDERS); beyond that, from what recent_orders still shows.


def _known_days(state: ConsumerState) -> set[int]:
    days = {order_day(rec[2]) for rec in state.recent_orders.values() if len(rec) > 2}
    if state.first_order is not None:
        days.add(order_day(state.first_order))
    if state.last_order is not None:
        days.add(order_day(state.last_order))
    return days


def _order_day_added(state: ConsumerState, t: float, revenue: float) -> None:
    """Count the order at `t` into state.order_days (before first/last_order include it)."""
    counts = state.order_days
    day = order_day(t)
    if state.first_order is None:
        counts[0], counts[1] = 1.0, revenue
        return
    if day not in _known_days(state):
        counts[0] += 1.0
    first = order_day(state.first_order)
    if day < first:
        counts[1] = revenue
    elif day == first:
        counts[1] += revenue


def _recount_order_days(state: ConsumerState) -> bool:
    """Recompute the per-day counts and first/last order from recent_orders when it holds every
    order of the consumer; False when it does not."""
    records = list(state.recent_orders.values())
    if len(records) != state.orders or any(len(rec) < 3 for rec in records):
        return False
    if not records:
        state.first_order = state.last_order = None
        state.order_days = [0.0, 0.0]
        return True
    first = min(rec[2] for rec in records)
    state.first_order = first
    state.last_order = max(rec[2] for rec in records)
    day = order_day(first)
    state.order_days = [
        float(len({order_day(rec[2]) for rec in records})),
        sum(rec[0] for rec in records if order_day(rec[2]) == day),
    ]
    return True


def _order_day_removed(state: ConsumerState, t: float, revenue: float) -> None:
    """Take a reversed order at `t` out of the counts when older orders are no longer known."""
    counts = state.order_days
    day = order_day(t)
    remaining = [rec[2] for rec in state.recent_orders.values() if len(rec) > 2]
    first = order_day(state.first_order) if state.first_order is not None else day
    if day == first:
        counts[1] = max(0.0, counts[1] - revenue)
    elif day not in {order_day(r) for r in remaining}:
        counts[0] = max(1.0, counts[0] - 1.0)
    if state.last_order == t and remaining:
        state.last_order = max(remaining)


_UNCHANGED = (False, False)


def apply_context(state: ConsumerState, ev: Event) -> tuple[bool, bool]:
    """Location and consent from context; returns (email_changed, consent_changed)."""
    location = ev.location
    if location is not None:  # (the usual shape, read by parse_event)
        country_s, city_s, lat_f, lon_f = location
        if country_s:
            state.country = country_s
        if city_s:
            state.city = city_s
        # (NaN and infinities fail the range test)
        if (
            lat_f is not None
            and lon_f is not None
            and -90.0 <= lat_f <= 90.0
            and -180.0 <= lon_f <= 180.0
        ):
            state.lat, state.lon = lat_f, lon_f
        loc: Any = None
    else:
        loc = ev.context.get("location")
    if isinstance(loc, dict):
        country = loc.get("country")
        if type(country) is not str:
            country = _str(country)
        if country:
            state.country = country
        city = loc.get("city")
        if type(city) is not str:
            city = _str(city)
        if city:
            state.city = city
        lat = loc.get("latitude")
        if type(lat) is not float or not isfinite(lat):  # else _num(lat) is lat
            lat = _num(lat)
        lon = loc.get("longitude")
        if type(lon) is not float or not isfinite(lon):
            lon = _num(lon)
        if lat is not None and lon is not None and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
            state.lat, state.lon = lat, lon
    consent_changed = False
    marketing = ev.marketing  # (context.consent as parse_event read it)
    if marketing is not None:
        consent_changed = _set_consent(state, marketing, ev.timestamp)
    if ev.type == "identify" or ev.traits:
        email_changed, traits_consent = apply_traits(state, ev)
        return email_changed, consent_changed or traits_consent
    return (False, True) if consent_changed else _UNCHANGED


def _set_consent(state: ConsumerState, value: bool, t: float) -> bool:
    if t < state.consent_ts:
        return False  # an older decision never overrides a newer one
    state.consent_ts = t
    changed = state.consented != value
    state.consented = value
    return changed


def apply_traits(state: ConsumerState, ev: Event) -> tuple[bool, bool]:
    traits = ev.traits
    state.traits.update(traits)
    email_changed = False
    email = _str(traits.get("email"))
    if email and email != state.email:
        state.email = email
        email_changed = True
    country = _str(traits.get("country"))
    city = _str(traits.get("city"))
    address = traits.get("address")
    if isinstance(address, dict):
        country = country or _str(address.get("country"))
        city = city or _str(address.get("city"))
    if country and state.country is None:
        state.country = country
    if city and state.city is None:
        state.city = city
    consent_changed = False
    unsub = traits.get("unsubscribed")
    if isinstance(unsub, bool):
        consent_changed = _set_consent(state, not unsub, ev.timestamp)
    return email_changed, consent_changed


def merge_states(into: ConsumerState, other: ConsumerState, half_life: float) -> None:
    """Fold `other` (an anonymous profile) into `into` (the identified one)."""
    into.first_seen = min(into.first_seen, other.first_seen)
    into.last_seen = max(into.last_seen, other.last_seen)
    into.events += other.events
    into.views += other.views
    into.cart_adds += other.cart_adds
    into.orders += other.orders
    into.revenue += other.revenue
    into.discounted_orders += other.discounted_orders
    _merge_order_days(into, other)
    firsts = [t for t in (into.first_order, other.first_order) if t is not None]
    lasts = [t for t in (into.last_order, other.last_order) if t is not None]
    into.first_order = min(firsts) if firsts else None
    into.last_order = max(lasts) if lasts else None
    for oid, rec in other.recent_orders.items():
        into.recent_orders.setdefault(oid, rec)
    while len(into.recent_orders) > MAX_RECENT_ORDERS:
        del into.recent_orders[next(iter(into.recent_orders))]
    _recount_order_days(into)
    price_merge(into.price, other.price)
    ref = max(into.aff_ts, other.aff_ts)
    decay(into, ref, half_life)
    decay(other, ref, half_life)
    for mine, theirs in ((into.cat_aff, other.cat_aff), (into.brand_aff, other.brand_aff)):
        for k, v in theirs.items():
            _bump(mine, k, v)
    for pid, value in other.cart.items():
        into.cart.setdefault(pid, value)
    for k, v in other.traits.items():
        into.traits.setdefault(k, v)
    into.email = into.email or other.email
    into.country = into.country or other.country
    into.city = into.city or other.city
    if into.lat is None:
        into.lat, into.lon = other.lat, other.lon
    if other.consent_ts > into.consent_ts:
        into.consented, into.consent_ts = other.consented, other.consent_ts
    for name, timer in other.timers.items():
        mine_t = into.timers.get(name)
        if mine_t is None or timer.armed_at > mine_t.armed_at:
            into.timers[name] = timer
    for name, t in other.last_fired.items():
        into.last_fired[name] = max(t, into.last_fired.get(name, t))
    into.fired = sorted(into.fired + other.fired)
    into.seen.update(other.seen)
    into.aliases = sorted({*into.aliases, other.id, *other.aliases} - {into.id})


def _merge_order_days(into: ConsumerState, other: ConsumerState) -> None:
    """The per-day counts of two profiles merged (before their first/last orders are): days both
    had orders on count once."""
    if other.first_order is None:
        return
    if into.first_order is None:
        into.order_days = list(other.order_days)
        return
    shared = _known_days(into) & _known_days(other)
    days = into.order_days[0] + other.order_days[0] - len(shared)
    mine, theirs = order_day(into.first_order), order_day(other.first_order)
    if mine == theirs:
        first_revenue = into.order_days[1] + other.order_days[1]
    else:
        first_revenue = into.order_days[1] if mine < theirs else other.order_days[1]
    into.order_days = [days, first_revenue]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = radians(lat1), radians(lat2)
    dp, dl = p2 - p1, radians(lon2 - lon1)
    a = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 6371.0088 * 2 * asin(min(1.0, sqrt(a)))
