"""Synthetic bicycle-shop traffic as Segment Spec events, deterministic for a seed.

Consumers have a persona (discipline, level -> price range, gender, city, price sensitivity,
loyalty); they visit in sessions (browse, add to cart, sometimes buy, sometimes abandon), start
anonymous and identify later (an identity merge), some unsubscribe, some lapse for good. Events
come out in timestamp order, merged across consumers with a heap, so memory stays O(consumers).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.engine.events import iso

DISCIPLINES = ("mountain", "road", "gravel", "electric")
BRANDS = {
    "mountain": ("trailcraft", "rockhopper"),
    "road": ("velocita", "aerolite"),
    "gravel": ("gravelista", "dustrider"),
    "electric": ("voltbike", "e-motion"),
    "accessories": ("gripwell", "lumen"),
}
LEVELS = {"beginner": (250, 600), "amateur": (600, 2000), "pro": (2000, 6500)}
CITIES = (
    ("DE", "Berlin", 52.52, 13.405),
    ("DE", "Munich", 48.137, 11.575),
    ("DE", "Hamburg", 53.551, 9.993),
    ("FR", "Paris", 48.857, 2.352),
    ("NL", "Amsterdam", 52.37, 4.895),
    ("IT", "Milan", 45.464, 9.19),
)
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
DAY = 86400.0


@dataclass
class Persona:
    idx: int
    anonymous_id: str
    user_id: str
    discipline: str
    level: str
    gender: str
    city: tuple[str, str, float, float]
    price_sensitive: bool
    buy_rate: float
    visit_gap_days: float
    lifetime_visits: int
    identified: bool = False
    visits: int = 0
    products: list[tuple[str, str, str, float]] = field(default_factory=list)


class ShopSimulator:
    """Generates events; `time_scale` < 1 compresses time (for the live demo)."""

    def __init__(
        self,
        n_consumers: int,
        seed: int = 7,
        start: float = DEFAULT_START,
        time_scale: float = 1.0,
        malformed_rate: float = 0.0,
        duplicate_rate: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = start
        self.time_scale = time_scale
        self.malformed_rate = malformed_rate
        self.duplicate_rate = duplicate_rate
        self.catalog = self._catalog()
        self.people = [self._persona(i) for i in range(n_consumers)]
        self._msg = 0

    def _catalog(self) -> dict[str, list[tuple[str, str, str, float]]]:
        rng = self.rng
        cat: dict[str, list[tuple[str, str, str, float]]] = {}
        for disc in (*DISCIPLINES, "accessories"):
            items = []
            for i in range(40):
                if disc == "accessories":
                    price = round(rng.uniform(9, 180), 2)
                else:
                    lo, hi = LEVELS[("beginner", "amateur", "pro")[i % 3]]
                    price = round(rng.uniform(lo, hi), 0) - 0.01
                items.append((f"{disc[:3]}-{i:03d}", disc, rng.choice(BRANDS[disc]), price))
            cat[disc] = items
        return cat

    def _persona(self, i: int) -> Persona:
        rng = self.rng
        lapsing = rng.random() < 0.3
        return Persona(
            idx=i,
            anonymous_id=f"anon-{self.seed}-{i:06d}",
            user_id=f"user-{self.seed}-{i:06d}",
            discipline=rng.choices(DISCIPLINES, weights=(4, 3, 2, 1))[0],
            level=rng.choices(tuple(LEVELS), weights=(5, 4, 1))[0],
            gender=rng.choice(("female", "male", "female", "male", "diverse")),
            city=rng.choice(CITIES),
            price_sensitive=rng.random() < 0.3,
            buy_rate=rng.uniform(0.1, 0.6),
            visit_gap_days=rng.uniform(1.0, 12.0),
            lifetime_visits=rng.randint(2, 5) if lapsing else rng.randint(6, 40),
        )

    def _message_id(self) -> str:
        self._msg += 1
        return f"m-{self.seed}-{self._msg:09d}"

    def _event(self, p: Persona, t: float, **fields: Any) -> dict[str, Any]:
        country, city, lat, lon = p.city
        ev: dict[str, Any] = {
            "messageId": self._message_id(),
            "timestamp": iso(t),
            "anonymousId": p.anonymous_id,
            "context": {
                "location": {"country": country, "city": city,
                             "latitude": lat, "longitude": lon},
                "timezone": "Europe/Berlin",
                "library": {"name": "micromarketing-synthetic", "version": "1"},
            },
        }
        if p.identified:
            ev["userId"] = p.user_id
        ev.update(fields)
        return ev

    def _pick(self, p: Persona) -> tuple[str, str, str, float]:
        rng = self.rng
        if rng.random() < 0.2:
            return rng.choice(self.catalog["accessories"])
        disc = p.discipline if rng.random() < 0.8 else rng.choice(DISCIPLINES)
        lo, hi = LEVELS[p.level]
        fitting = [x for x in self.catalog[disc] if lo <= x[3] <= hi] or self.catalog[disc]
        return rng.choice(fitting)

    def session(
        self, p: Persona, t: float, buy: bool = False
    ) -> list[tuple[float, dict[str, Any]]]:
        """The events of one visit, with their times; `buy`: the visit ends in an order."""
        rng = self.rng
        out: list[tuple[float, dict[str, Any]]] = []
        step = 45.0 * self.time_scale

        def emit(**fields: Any) -> None:
            nonlocal t
            out.append((t, self._event(p, t, **fields)))
            t += rng.uniform(0.3, 1.5) * step

        p.visits += 1
        if not p.identified and (p.visits >= 2 and rng.random() < 0.5):
            self._identify(p, emit)
        emit(type="page", name="Home", properties={"path": "/"})
        if rng.random() < 0.3:
            emit(type="track", event="Products Searched", properties={"query": p.discipline})
        emit(type="track", event="Product List Viewed",
             properties={"category": p.discipline, "list_id": p.discipline})
        cart: list[tuple[str, str, str, float]] = []
        for _ in range(rng.randint(1, 6)):
            prod = self._pick(p)
            pid, cat, brand, price = prod
            emit(type="track", event="Product Viewed",
                 properties={"product_id": pid, "category": cat, "brand": brand,
                             "price": price, "currency": "EUR"})
            if rng.random() < 0.3:
                cart.append(prod)
                emit(type="track", event="Product Added",
                     properties={"product_id": pid, "cart_id": f"c-{p.idx}-{p.visits}",
                                 "price": price, "quantity": 1, "category": cat})
        if buy and not cart:  # persuaded by an offer: they buy what they came for
            pid, cat, brand, price = prod = self._pick(p)
            cart.append(prod)
            emit(type="track", event="Product Added",
                 properties={"product_id": pid, "cart_id": f"c-{p.idx}-{p.visits}",
                             "price": price, "quantity": 1, "category": cat})
        if cart and (buy or rng.random() < p.buy_rate + 0.2):
            if not p.identified:
                self._identify(p, emit)
            self._order(p, cart, emit)
        if p.identified and rng.random() < 0.01:
            emit(type="identify", userId=p.user_id, traits={"unsubscribed": True})
        return out

    def _identify(self, p: Persona, emit: Any) -> None:
        p.identified = True
        emit(type="identify", userId=p.user_id,
             traits={"email": f"{p.user_id}@example.com", "gender": p.gender,
                     "age": 18 + p.idx % 50, "country": p.city[0], "city": p.city[1],
                     "first_name": f"Rider{p.idx}"})

    def _order(self, p: Persona, cart: list[tuple[str, str, str, float]], emit: Any) -> None:
        rng = self.rng
        order_id = f"o-{self.seed}-{p.idx}-{p.visits}"
        products = [{"product_id": pid, "category": cat, "brand": brand, "price": price,
                     "quantity": 1} for pid, cat, brand, price in cart]
        total = round(sum(x[3] for x in cart), 2)
        emit(type="track", event="Checkout Started",
             properties={"order_id": order_id, "value": total, "products": products})
        props: dict[str, Any] = {"order_id": order_id, "revenue": total, "currency": "EUR",
                                 "products": products}
        if p.price_sensitive or rng.random() < 0.1:
            props["discount"] = round(total * 0.1, 2)
            props["coupon"] = "SPRING10"
        emit(type="track", event="Order Completed", properties=props)
        if rng.random() < 0.03:
            emit(type="track", event="Order Refunded", properties={"order_id": order_id})

    def events(self, n_events: int | None = None) -> Iterator[dict[str, Any]]:
        """Events in timestamp order until `n_events` (or every persona lapsed)."""
        rng = self.rng
        heap: list[tuple[float, int]] = []
        for p in self.people:
            heapq.heappush(heap, (self.start + rng.uniform(0, 7) * DAY * self.time_scale, p.idx))
        pending: list[tuple[float, int, int, dict[str, Any]]] = []
        seq = 0
        emitted = 0
        while heap or pending:
            # release buffered session events that are due before the next session starts
            horizon = heap[0][0] if heap else float("inf")
            while pending and pending[0][0] <= horizon:
                _, _, _, ev = heapq.heappop(pending)
                for out in self._maybe_corrupt(ev):
                    yield out
                    emitted += 1
                    if n_events is not None and emitted >= n_events:
                        return
            if not heap:
                continue
            t, idx = heapq.heappop(heap)
            p = self.people[idx]
            for et, ev in self.session(p, t):
                seq += 1
                heapq.heappush(pending, (et, idx, seq, ev))
            if p.visits < p.lifetime_visits:
                gap = rng.expovariate(1 / p.visit_gap_days) * DAY * self.time_scale
                heapq.heappush(heap, (t + max(gap, 3600 * self.time_scale), idx))

    def _maybe_corrupt(self, ev: dict[str, Any]) -> Iterator[dict[str, Any]]:
        rng = self.rng
        if self.malformed_rate and rng.random() < self.malformed_rate:
            bad = dict(ev)
            choice = rng.randrange(3)
            if choice == 0:
                bad.pop("anonymousId", None)
                bad.pop("userId", None)
            elif choice == 1:
                bad["timestamp"] = "yesterday"
            else:
                bad["type"] = "trak"
            yield bad
            return
        yield ev
        if self.duplicate_rate and rng.random() < self.duplicate_rate:
            yield ev


def generate_events(
    n_consumers: int,
    n_events: int | None = None,
    seed: int = 7,
    start: float = DEFAULT_START,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Segment events of a synthetic bike shop, in timestamp order (see ShopSimulator)."""
    return ShopSimulator(n_consumers, seed=seed, start=start, **kwargs).events(n_events)


def main() -> None:
    """Write events as JSON lines: python -m connectors.sources.synthetic N_CONSUMERS [N_EVENTS]."""
    import argparse
    import sys

    import orjson

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("consumers", type=int)
    ap.add_argument("events", type=int, nargs="?")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--malformed", type=float, default=0.0)
    ap.add_argument("--duplicates", type=float, default=0.0)
    a = ap.parse_args()
    out = sys.stdout.buffer
    for ev in generate_events(a.consumers, a.events, a.seed, malformed_rate=a.malformed,
                              duplicate_rate=a.duplicates):
        out.write(orjson.dumps(ev) + b"\n")


if __name__ == "__main__":
    main()
